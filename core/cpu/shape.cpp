// Embedding lookup, concat, constant pad, and resize (torch F.interpolate semantics).
#include <cmath>

#include "core/cpu/kernels.h"
#include "core/shape_common.h"

namespace ditkit::cpu {

Tensor embedding(const Tensor& table, const Tensor& ids, DType out_dtype) {
  const int64_t vocab = table.dim(0), dim = table.dim(1), count = ids.numel();
  std::vector<int64_t> rows(static_cast<size_t>(count));
  const Tensor idc = ids.contiguous();
  for (int64_t i = 0; i < count; ++i) {
    rows[size_t(i)] = ids.dtype() == DType::I64 ? idc.data<int64_t>()[i] : int64_t(idc.data<int32_t>()[i]);
    DK_CHECK(rows[size_t(i)] >= 0 && rows[size_t(i)] < vocab, "embedding: id ", rows[size_t(i)], " (position ", i,
             ") is outside the table's ", vocab, " rows");
  }
  Shape shape = ids.shape();
  shape.push_back(dim);
  Tensor out = Tensor::empty(shape, out_dtype);
  parallel_for(0, count, std::max<int64_t>(1, 16384 / std::max<int64_t>(dim, 1)), [&](int64_t b, int64_t e) {
    thread_local std::vector<float> buf;
    buf.resize(size_t(dim));
    for (int64_t i = b; i < e; ++i) {
      load_f32(table.dtype(), table.raw(), rows[size_t(i)] * table.strides()[0], table.strides()[1], dim, buf.data());
      store_f32(buf.data(), out_dtype, out.raw(), i * dim, 1, dim);
    }
  });
  return out;
}

Tensor concat(const std::vector<Tensor>& xs, int64_t dim) { return concat_by_copy(xs, dim, copy_); }

Tensor pad(const Tensor& x, const std::vector<int64_t>& pads, float value) {
  return pad_by_copy(x, pads, value, copy_, fill_);
}

namespace {

// Source taps of one output coordinate: value = l0 * in[i0] + l1 * in[i1] (nearest: l1 = 0).
struct Taps {
  std::vector<int64_t> i0, i1;
  std::vector<float> l0, l1;
};

Taps taps(int64_t in, int64_t out, ops::Resize mode) {
  Taps t;
  const float scale = float(in) / float(out);
  for (int64_t o = 0; o < out; ++o) {
    int64_t i0, i1;
    float l1 = 0.0f;
    if (mode == ops::Resize::Bilinear) {
      // align_corners=False; torch clamps negative source coordinates to 0.
      const float src = std::max(scale * (float(o) + 0.5f) - 0.5f, 0.0f);
      i0 = int64_t(src);
      i1 = i0 + (i0 < in - 1 ? 1 : 0);
      l1 = std::clamp(src - float(i0), 0.0f, 1.0f);
    } else {
      const float src = mode == ops::Resize::Nearest ? float(o) * scale : (float(o) + 0.5f) * scale;
      i0 = i1 = std::min(int64_t(std::floor(src)), in - 1);
    }
    t.i0.push_back(i0);
    t.i1.push_back(i1);
    t.l0.push_back(1.0f - l1);
    t.l1.push_back(l1);
  }
  return t;
}

}  // namespace

Tensor resize(const Tensor& x, int64_t out_h, int64_t out_w, ops::Resize mode) {
  DK_CHECK(x.dtype() != DType::Q8_0, "resize: cannot read Q8_0 tensor ", x.str());
  const int64_t H = x.dim(2), W = x.dim(3), planes = x.dim(0) * x.dim(1);
  Tensor out = Tensor::empty({x.dim(0), x.dim(1), out_h, out_w}, x.dtype());
  if (out.numel() == 0) return out;
  DK_CHECK(H > 0 && W > 0, "resize: empty input ", x.str());
  const Tensor xc = x.contiguous();
  const Taps th = taps(H, out_h, mode), tw = taps(W, out_w, mode);
  parallel_for(0, planes * out_h, std::max<int64_t>(1, 4096 / out_w), [&](int64_t b, int64_t e) {
    thread_local std::vector<float> buf;
    buf.resize(size_t(2 * W + out_w));
    float *r0 = buf.data(), *r1 = r0 + W, *y = r1 + W;
    for (int64_t row = b; row < e; ++row) {
      const int64_t plane = row / out_h, oh = row % out_h;
      load_f32(xc.dtype(), xc.raw(), (plane * H + th.i0[size_t(oh)]) * W, 1, W, r0);
      if (mode == ops::Resize::Bilinear) {
        load_f32(xc.dtype(), xc.raw(), (plane * H + th.i1[size_t(oh)]) * W, 1, W, r1);
        const float h0 = th.l0[size_t(oh)], h1 = th.l1[size_t(oh)];
        for (int64_t ow = 0; ow < out_w; ++ow) {
          const size_t a = size_t(tw.i0[size_t(ow)]), c = size_t(tw.i1[size_t(ow)]);
          y[ow] = h0 * (tw.l0[size_t(ow)] * r0[a] + tw.l1[size_t(ow)] * r0[c]) +
                  h1 * (tw.l0[size_t(ow)] * r1[a] + tw.l1[size_t(ow)] * r1[c]);
        }
      } else {
        for (int64_t ow = 0; ow < out_w; ++ow) y[ow] = r0[tw.i0[size_t(ow)]];
      }
      store_f32(y, out.dtype(), out.raw(), row * out_w, 1, out_w);
    }
  });
  return out;
}

}  // namespace ditkit::cpu
