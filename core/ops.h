// Tensor ops used by the models. Each op has a CPU implementation (core/cpu/) and a CUDA
// implementation (core/cuda/); ops.cpp dispatches on the device of the inputs, which must
// all be on one device.
//
// Numerics: inputs of any float dtype (f32/f16/bf16, and fp8/Q8_0 for weights) are read,
// math is done in f32 (f32 accumulation for GEMM/conv/reductions), and the result has the
// dtype of the first (activation) input unless stated otherwise. Inputs may be strided
// views; outputs are new contiguous tensors.
#pragma once
#include <array>
#include <optional>
#include <vector>

#include "core/tensor.h"

namespace ditkit::ops {

// ---- copies and conversion ------------------------------------------------------------
// dst = src elementwise (shapes equal, src may broadcast by stride 0), converting dtype.
// Same device, or one side CPU and the other CUDA (then src is made contiguous first).
void copy_(Tensor& dst, const Tensor& src);
void fill_(Tensor& dst, float value);
Tensor cast(const Tensor& x, DType dtype);

// ---- elementwise ----------------------------------------------------------------------
enum class Unary {
  Neg, Abs, Exp, Log, Sqrt, Rsqrt, Square, Sin, Cos, Tanh, Sigmoid,
  Relu, Silu,
  GeluErf,   // x * 0.5 * (1 + erf(x / sqrt(2)))
  GeluTanh,  // x * 0.5 * (1 + tanh(sqrt(2/pi) * (x + 0.044715 x^3)))
  QuickGelu, // x * sigmoid(1.702 x)
};
Tensor unary(Unary op, const Tensor& x);
inline Tensor silu(const Tensor& x) { return unary(Unary::Silu, x); }
inline Tensor gelu(const Tensor& x, bool tanh_approx = false) {
  return unary(tanh_approx ? Unary::GeluTanh : Unary::GeluErf, x);
}

enum class Binary { Add, Sub, Mul, Div, Max, Min, Pow };
// Numpy/torch broadcasting of a and b; result dtype is a's.
Tensor binary(Binary op, const Tensor& a, const Tensor& b);
inline Tensor add(const Tensor& a, const Tensor& b) { return binary(Binary::Add, a, b); }
inline Tensor sub(const Tensor& a, const Tensor& b) { return binary(Binary::Sub, a, b); }
inline Tensor mul(const Tensor& a, const Tensor& b) { return binary(Binary::Mul, a, b); }
inline Tensor div(const Tensor& a, const Tensor& b) { return binary(Binary::Div, a, b); }
// x * scale + shift with scalars.
Tensor affine(const Tensor& x, float scale, float shift);
// x * (1 + scale) + shift, scale and shift broadcast to x (adaLN modulation, used in every DiT block).
Tensor modulate(const Tensor& x, const Tensor& scale, const Tensor& shift);

// ---- linear algebra -------------------------------------------------------------------
// y[..., N] = x[..., K] @ w[N, K]^T + bias[N]. w may be f32/f16/bf16/fp8/Q8_0 (stored dtype,
// never copied whole to f32); bias optional (undefined Tensor).
Tensor linear(const Tensor& x, const Tensor& w, const Tensor& bias = {});
// Batched c[..., M, N] = op(a)[..., M, K] @ op(b)[..., K, N]; batch dims broadcast.
Tensor matmul(const Tensor& a, const Tensor& b, bool transpose_a = false, bool transpose_b = false);

// ---- convolution ----------------------------------------------------------------------
// x [N, C, H, W], w [O, C/groups, kh, kw], bias [O] optional; zero padding.
Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor& bias,
              std::array<int64_t, 2> stride = {1, 1}, std::array<int64_t, 2> padding = {0, 0},
              std::array<int64_t, 2> dilation = {1, 1}, int64_t groups = 1);
// x [N, C, T, H, W], w [O, C, kt, kh, kw], bias [O] optional. Zero padding given per side as
// {t_front, t_back, h_top, h_bottom, w_left, w_right}, so causal time padding is {2p, 0, ...}.
Tensor conv3d(const Tensor& x, const Tensor& w, const Tensor& bias,
              std::array<int64_t, 3> stride = {1, 1, 1},
              std::array<int64_t, 6> padding = {0, 0, 0, 0, 0, 0});

// ---- normalisation --------------------------------------------------------------------
// Over the last dimension; weight/bias optional.
Tensor layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, float eps);
// x * rsqrt(mean(x^2) + eps) * weight over the last dimension; weight optional.
Tensor rms_norm(const Tensor& x, const Tensor& weight, float eps);
// x [N, C, ...]: statistics per (n, group) over C/groups channels and all trailing dims.
Tensor group_norm(const Tensor& x, int64_t groups, const Tensor& weight, const Tensor& bias, float eps);
// Softmax along `dim` (max-subtracted, f32).
Tensor softmax(const Tensor& x, int64_t dim = -1);

// ---- positions ------------------------------------------------------------------------
// Rotary embedding on adjacent pairs of the last dimension D:
//   y[2i] = x[2i] cos_i - x[2i+1] sin_i,  y[2i+1] = x[2i] sin_i + x[2i+1] cos_i,
// with cos/sin [..., D/2] broadcast against x[..., D] (e.g. x [B, S, H, D], cos [S, 1, D/2]).
Tensor rope(const Tensor& x, const Tensor& cos, const Tensor& sin);
// Looks up rows of table [V, D] for integer ids of any shape: result [..., D] in f32
// (or `out_dtype`). Ids outside [0, V) throw.
Tensor embedding(const Tensor& table, const Tensor& ids, DType out_dtype = DType::F32);

// ---- shape ----------------------------------------------------------------------------
Tensor concat(const std::vector<Tensor>& xs, int64_t dim);
// Views of consecutive pieces of `sizes` along dim (sizes sum to the dim's size).
std::vector<Tensor> split(const Tensor& x, const std::vector<int64_t>& sizes, int64_t dim);
// Contiguous copy in the permuted order.
Tensor permute(const Tensor& x, const std::vector<int64_t>& dims);
// Constant padding; pads holds (before, after) pairs starting at the LAST dimension, as torch's F.pad.
Tensor pad(const Tensor& x, const std::vector<int64_t>& pads, float value = 0.0f);

enum class Resize { Nearest, NearestExact, Bilinear };
// x [N, C, H, W] -> [N, C, out_h, out_w]; semantics of torch's F.interpolate
// (mode 'nearest', 'nearest-exact', 'bilinear' with align_corners=False, no antialias).
Tensor resize(const Tensor& x, int64_t out_h, int64_t out_w, Resize mode);

// ---- reductions -----------------------------------------------------------------------
enum class Reduce { Sum, Mean, Max, Min };
// Reduces over the given dims (negative allowed); all dims when `dims` is empty.
Tensor reduce(Reduce op, const Tensor& x, const std::vector<int64_t>& dims = {}, bool keepdim = false);
inline Tensor sum(const Tensor& x, const std::vector<int64_t>& dims = {}, bool keepdim = false) {
  return reduce(Reduce::Sum, x, dims, keepdim);
}
inline Tensor mean(const Tensor& x, const std::vector<int64_t>& dims = {}, bool keepdim = false) {
  return reduce(Reduce::Mean, x, dims, keepdim);
}

// Broadcast shape of two shapes (torch rules); throws naming both.
Shape broadcast_shapes(const Shape& a, const Shape& b);

}  // namespace ditkit::ops
