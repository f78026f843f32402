// Normalisations and softmax: rows are converted to f32 scratch, statistics accumulate in double.
#include <cmath>

#include "core/cpu/kernels.h"

namespace ditkit::cpu {
namespace {

// Runs fn(row, n) on every row of x along `dim` (an f32 copy, changed in place) and writes the
// result to the same position of out.
template <typename Fn>
void rows_along(const Tensor& x, int64_t dim, const Tensor& out, Fn fn) {
  DK_CHECK(x.dtype() != DType::Q8_0, "cannot normalise Q8_0 tensor ", x.str());
  Shape shape, xs, os;
  for (int64_t d = 0; d < x.ndim(); ++d) {
    if (d == dim) continue;
    shape.push_back(x.dim(d));
    xs.push_back(x.strides()[d]);
    os.push_back(out.strides()[d]);
  }
  const int64_t n = x.dim(dim), rows = shape_numel(shape);
  if (n == 0 || rows == 0) return;
  parallel_for(0, rows, std::max<int64_t>(1, 16384 / n), [&](int64_t b, int64_t e) {
    thread_local std::vector<float> row;
    row.resize(size_t(n));
    Cursor cur(shape, {xs, os});
    cur.seek(b);
    for (int64_t r = b; r < e; ++r, cur.next()) {
      load_f32(x.dtype(), x.raw(), cur.offset(0), x.strides()[dim], n, row.data());
      fn(row.data(), n);
      store_f32(row.data(), out.dtype(), out.raw(), cur.offset(1), out.strides()[dim], n);
    }
  });
}

// y = (v - mean) * rstd * w + b with optional (empty) w and b.
void normalise(float* v, int64_t n, float mean, float rstd, const std::vector<float>& w, const std::vector<float>& b) {
  for (int64_t i = 0; i < n; ++i) v[i] = (v[i] - mean) * rstd;
  if (!w.empty())
    for (int64_t i = 0; i < n; ++i) v[i] *= w[size_t(i)];
  if (!b.empty())
    for (int64_t i = 0; i < n; ++i) v[i] += b[size_t(i)];
}

}  // namespace

Tensor layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, float eps) {
  Tensor out = Tensor::empty(x.shape(), x.dtype());
  const std::vector<float> w = vector_f32(weight), b = vector_f32(bias);
  rows_along(x, x.ndim() - 1, out, [&](float* v, int64_t n) {
    const double mean = sum_f64(v, n) / double(n);
    const double var = sum_sq_dev_f64(v, n, mean) / double(n);
    normalise(v, n, float(mean), float(1.0 / std::sqrt(var + double(eps))), w, b);
  });
  return out;
}

Tensor rms_norm(const Tensor& x, const Tensor& weight, float eps) {
  Tensor out = Tensor::empty(x.shape(), x.dtype());
  const std::vector<float> w = vector_f32(weight);
  rows_along(x, x.ndim() - 1, out, [&](float* v, int64_t n) {
    const double ms = sum_sq_dev_f64(v, n, 0.0) / double(n);
    normalise(v, n, 0.0f, float(1.0 / std::sqrt(ms + double(eps))), w, {});
  });
  return out;
}

Tensor softmax(const Tensor& x, int64_t dim) {
  Tensor out = Tensor::empty(x.shape(), x.dtype());
  rows_along(x, dim, out, [](float* v, int64_t n) {
    const float mx = max_f32(v, n);
    for (int64_t i = 0; i < n; ++i) v[i] -= mx;
    exp_f32(v, v, n);
    const float inv = float(1.0 / sum_f64(v, n));
    for (int64_t i = 0; i < n; ++i) v[i] *= inv;
  });
  return out;
}

Tensor group_norm(const Tensor& x, int64_t groups, const Tensor& weight, const Tensor& bias, float eps) {
  DK_CHECK(x.dtype() != DType::Q8_0, "group_norm: cannot read Q8_0 tensor ", x.str());
  const Tensor xc = x.contiguous();
  Tensor out = Tensor::empty(x.shape(), x.dtype());
  const int64_t channels = x.dim(1), cg = channels / groups, spatial = x.numel() / std::max<int64_t>(x.dim(0) * channels, 1);
  const int64_t blocks = x.dim(0) * groups, len = cg * spatial;
  if (out.numel() == 0) return out;
  const std::vector<float> w = vector_f32(weight), b = vector_f32(bias);
  // Each (n, group) block is contiguous; it is cut into chunks that are processed in parallel.
  const int64_t per_block = (len + kChunk - 1) / kChunk, items = blocks * per_block;
  std::vector<double> partial(static_cast<size_t>(items)), mean(static_cast<size_t>(blocks)), rstd(mean);
  auto chunks = [&](auto body) {
    parallel_for(0, items, 4, [&](int64_t i0, int64_t i1) {
      thread_local std::vector<float> buf;
      buf.resize(size_t(kChunk));
      for (int64_t i = i0; i < i1; ++i) {
        const int64_t blk = i / per_block, start = (i % per_block) * kChunk, n = std::min(kChunk, len - start);
        load_f32(xc.dtype(), xc.raw(), blk * len + start, 1, n, buf.data());
        body(i, blk, start, buf.data(), n);
      }
    });
  };
  auto block_sums = [&](std::vector<double>& dst) {
    for (int64_t blk = 0; blk < blocks; ++blk) {
      double s = 0;
      for (int64_t j = 0; j < per_block; ++j) s += partial[size_t(blk * per_block + j)];
      dst[size_t(blk)] = s / double(len);
    }
  };
  chunks([&](int64_t i, int64_t, int64_t, const float* v, int64_t n) { partial[size_t(i)] = sum_f64(v, n); });
  block_sums(mean);
  chunks([&](int64_t i, int64_t blk, int64_t, const float* v, int64_t n) {
    partial[size_t(i)] = sum_sq_dev_f64(v, n, mean[size_t(blk)]);
  });
  block_sums(rstd);
  for (double& r : rstd) r = 1.0 / std::sqrt(r + double(eps));
  chunks([&](int64_t, int64_t blk, int64_t start, float* v, int64_t n) {
    const float m = float(mean[size_t(blk)]), r = float(rstd[size_t(blk)]);
    // Walk the chunk in runs of one channel so that its weight and bias are scalars.
    for (int64_t p = 0; p < n;) {
      const int64_t c = (blk % groups) * cg + (start + p) / spatial;
      const int64_t run = std::min(n - p, spatial - (start + p) % spatial);
      const float scale = r * (w.empty() ? 1.0f : w[size_t(c)]), shift = b.empty() ? 0.0f : b[size_t(c)];
      for (int64_t q = p; q < p + run; ++q) v[q] = (v[q] - m) * scale + shift;
      p += run;
    }
    store_f32(v, out.dtype(), out.raw(), blk * len + start, 1, n);
  });
  return out;
}

}  // namespace ditkit::cpu
