// conv2d / conv3d: vol2col of bounded chunks of output positions + sgemm per weight panel.
// conv2d runs as a conv3d with a time extent of 1.
#include <cstring>

#include "core/cpu/kernels.h"

namespace ditkit::cpu {
namespace {

// Bound on the f32 scratch of one im2col chunk and one output chunk (16 MiB each).
constexpr int64_t kScratchFloats = int64_t(1) << 22;

struct Conv {
  std::array<int64_t, 3> in, kernel, stride, pad, dilation, outs;  // per spatial dim (t, h, w); pad = front
  int64_t groups;
};

// Writes col[kc, p - p0] for kc over (channel, kt, kh, kw) of one group and p in [p0, p0 + np).
void im2col(const Conv& cv, const float* x, int64_t channels, int64_t p0, int64_t np, float* col) {
  const auto [T, H, W] = cv.in;
  const auto [kt, kh, kw] = cv.kernel;
  const int64_t OH = cv.outs[1], OW = cv.outs[2];
  parallel_for(0, channels * kt * kh * kw, 1, [&](int64_t b, int64_t e) {
    for (int64_t kc = b; kc < e; ++kc) {
      const int64_t c = kc / (kt * kh * kw), a = kc / (kh * kw) % kt, i = kc / kw % kh, j = kc % kw;
      const float* xc = x + c * T * H * W;
      float* dst = col + kc * np;
      int64_t p = p0;
      while (p < p0 + np) {
        const int64_t ot = p / (OH * OW), oh = p / OW % OH, ow0 = p % OW;
        const int64_t len = std::min(OW - ow0, p0 + np - p);
        const int64_t it = ot * cv.stride[0] - cv.pad[0] + a * cv.dilation[0];
        const int64_t ih = oh * cv.stride[1] - cv.pad[1] + i * cv.dilation[1];
        float* d = dst + (p - p0);
        if (it < 0 || it >= T || ih < 0 || ih >= H) {
          std::fill(d, d + len, 0.0f);
        } else {
          const float* row = xc + (it * H + ih) * W;
          const int64_t off = j * cv.dilation[2] - cv.pad[2];
          for (int64_t q = 0; q < len; ++q) {
            const int64_t iw = (ow0 + q) * cv.stride[2] + off;
            d[q] = iw >= 0 && iw < W ? row[iw] : 0.0f;
          }
        }
        p += len;
      }
    }
  });
}

Tensor conv_nd(const Tensor& x, const Tensor& w, const Tensor& bias, const Conv& cv) {
  const int64_t N = x.dim(0), C = x.dim(1), O = w.dim(0), G = cv.groups;
  const int64_t Cg = C / G, Og = O / G;
  const int64_t taps = cv.kernel[0] * cv.kernel[1] * cv.kernel[2], Kc = Cg * taps;
  const int64_t S = cv.outs[0] * cv.outs[1] * cv.outs[2], Sin = cv.in[0] * cv.in[1] * cv.in[2];
  Tensor out = Tensor::empty({N, O, cv.outs[0], cv.outs[1], cv.outs[2]}, x.dtype());
  if (out.numel() == 0) return out;
  const Tensor xf = contiguous_f32(x);
  const Tensor w2 = w.reshape({O, Kc});
  const std::vector<float> b = bias.defined() ? vector_f32(bias) : std::vector<float>(size_t(O), 0.0f);
  // A 1x1x1 kernel with unit stride and no padding reads the input directly as the B matrix.
  bool pointwise = taps == 1;
  for (int d = 0; d < 3; ++d) pointwise = pointwise && cv.stride[d] == 1 && cv.pad[d] == 0 && cv.outs[d] == cv.in[d];
  // Weight panels: the whole group when it fits the scratch bound (converted once), else kPanelRows.
  const int64_t panel = is_blas_matrix(w2) || Og * Kc <= kScratchFloats ? Og : kPanelRows;
  const int64_t P = std::max<int64_t>(1, std::min(S, kScratchFloats / std::max(pointwise ? panel : Kc, panel)));
  std::vector<float> col(pointwise ? 0 : size_t(Kc * P)), cbuf(static_cast<size_t>(panel * P)), wscratch;
  for (int64_t g = 0; g < G; ++g) {
    for (int64_t o0 = 0; o0 < Og; o0 += panel) {
      const int64_t ob = std::min(panel, Og - o0), orow = g * Og + o0;
      int64_t ldw;
      const float* wp = weight_rows_f32(w2, orow, ob, wscratch, &ldw);
      for (int64_t n = 0; n < N; ++n) {
        const float* xg = xf.data<float>() + (n * C + g * Cg) * Sin;
        for (int64_t p0 = 0; p0 < S; p0 += P) {
          const int64_t np = std::min(P, S - p0);
          if (!pointwise) im2col(cv, xg, Cg, p0, np, col.data());
          const float* bmat = pointwise ? xg + p0 : col.data();
          sgemm(false, false, ob, np, Kc, 1.0f, wp, ldw, bmat, pointwise ? Sin : np, 0.0f, cbuf.data(), np);
          parallel_for(0, ob, std::max<int64_t>(1, 16384 / np), [&](int64_t r0, int64_t r1) {
            for (int64_t r = r0; r < r1; ++r) {
              float* row = cbuf.data() + r * np;
              const float bv = b[size_t(orow + r)];
              for (int64_t q = 0; q < np; ++q) row[q] += bv;
              store_f32(row, out.dtype(), out.raw(), (n * O + orow + r) * S + p0, 1, np);
            }
          });
        }
      }
    }
  }
  return out;
}

int64_t out_size(int64_t in, int64_t k, int64_t stride, int64_t pad_total, int64_t dilation, const char* op) {
  const int64_t span = dilation * (k - 1) + 1;
  DK_CHECK(stride > 0 && dilation > 0 && k > 0, op, ": stride, dilation and kernel size must be positive");
  DK_CHECK(in + pad_total >= span, op, ": padded input size ", in + pad_total, " is smaller than the kernel extent ",
           span);
  return (in + pad_total - span) / stride + 1;
}

}  // namespace

Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor& bias, std::array<int64_t, 2> stride,
              std::array<int64_t, 2> padding, std::array<int64_t, 2> dilation, int64_t groups) {
  DK_CHECK(padding[0] >= 0 && padding[1] >= 0, "conv2d: negative padding");
  Conv cv;
  cv.in = {1, x.dim(2), x.dim(3)};
  cv.kernel = {1, w.dim(2), w.dim(3)};
  cv.stride = {1, stride[0], stride[1]};
  cv.pad = {0, padding[0], padding[1]};
  cv.dilation = {1, dilation[0], dilation[1]};
  cv.groups = groups;
  for (int d = 0; d < 3; ++d)
    cv.outs[d] = out_size(cv.in[d], cv.kernel[d], cv.stride[d], 2 * cv.pad[d], cv.dilation[d], "conv2d");
  return conv_nd(x.unsqueeze(2), w.unsqueeze(2), bias, cv).squeeze(2);
}

Tensor conv3d(const Tensor& x, const Tensor& w, const Tensor& bias, std::array<int64_t, 3> stride,
              std::array<int64_t, 6> padding) {
  Conv cv;
  cv.in = {x.dim(2), x.dim(3), x.dim(4)};
  cv.kernel = {w.dim(2), w.dim(3), w.dim(4)};
  cv.stride = stride;
  cv.pad = {padding[0], padding[2], padding[4]};
  cv.dilation = {1, 1, 1};
  cv.groups = 1;
  for (int d = 0; d < 3; ++d) {
    DK_CHECK(padding[2 * d] >= 0 && padding[2 * d + 1] >= 0, "conv3d: negative padding");
    cv.outs[d] = out_size(cv.in[d], cv.kernel[d], cv.stride[d], padding[2 * d] + padding[2 * d + 1], 1, "conv3d");
  }
  return conv_nd(x, w, bias, cv);
}

}  // namespace ditkit::cpu
