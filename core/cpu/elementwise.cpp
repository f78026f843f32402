// Elementwise ops: unary, binary with broadcasting, affine, adaLN modulation, rotary embedding.
#include <cmath>

#include "core/cpu/kernels.h"

namespace ditkit::cpu {
namespace {

template <typename F>
void map1(const float* in, float* out, int64_t n, F f) {
  for (int64_t i = 0; i < n; ++i) out[i] = f(in[i]);
}

template <typename F>
void map2(const float* a, const float* b, float* out, int64_t n, F f) {
  for (int64_t i = 0; i < n; ++i) out[i] = f(a[i], b[i]);
}

float identity(float v) { return v; }

// y = num(x) / (1 + exp(-u(x))): the sigmoid family, in passes that vectorise.
template <typename U, typename Num>
void over_one_plus_exp(const float* x, float* y, int64_t n, U u, Num num) {
  for (int64_t i = 0; i < n; ++i) y[i] = -u(x[i]);
  exp_f32(y, y, n);
  for (int64_t i = 0; i < n; ++i) y[i] = num(x[i]) / (1.0f + y[i]);
}

void unary_chunk(ops::Unary op, const float* x, float* y, int64_t n) {
  using U = ops::Unary;
  switch (op) {
    case U::Neg: return map1(x, y, n, [](float v) { return -v; });
    case U::Abs: return map1(x, y, n, [](float v) { return std::fabs(v); });
    case U::Exp: return exp_f32(x, y, n);
    case U::Log: return map1(x, y, n, [](float v) { return std::log(v); });
    case U::Sqrt: return map1(x, y, n, [](float v) { return std::sqrt(v); });
    case U::Rsqrt: return map1(x, y, n, [](float v) { return 1.0f / std::sqrt(v); });
    case U::Square: return map1(x, y, n, [](float v) { return v * v; });
    case U::Sin: return map1(x, y, n, [](float v) { return std::sin(v); });
    case U::Cos: return map1(x, y, n, [](float v) { return std::cos(v); });
    case U::Tanh: return map1(x, y, n, [](float v) { return std::tanh(v); });
    case U::Sigmoid: return over_one_plus_exp(x, y, n, identity, [](float) { return 1.0f; });
    // NaN passes through relu, as in torch.
    case U::Relu: return map1(x, y, n, [](float v) { return v > 0.0f || v != v ? v : 0.0f; });
    case U::Silu: return over_one_plus_exp(x, y, n, identity, identity);
    case U::GeluErf: return map1(x, y, n, [](float v) { return v * 0.5f * (1.0f + std::erf(v * float(M_SQRT1_2))); });
    case U::GeluTanh:
      // 0.5 (1 + tanh(u)) = sigmoid(2u).
      return over_one_plus_exp(x, y, n, [](float v) {
        const float k = float(M_2_SQRTPI * M_SQRT1_2);  // sqrt(2 / pi)
        return 2.0f * k * (v + 0.044715f * v * v * v);
      }, identity);
    case U::QuickGelu: return over_one_plus_exp(x, y, n, [](float v) { return 1.702f * v; }, identity);
  }
}

// torch.maximum / minimum propagate NaN from either side.
float nan_max(float a, float b) { return a != a || b != b ? a + b : std::max(a, b); }
float nan_min(float a, float b) { return a != a || b != b ? a + b : std::min(a, b); }

void binary_chunk(ops::Binary op, const float* a, const float* b, float* y, int64_t n) {
  using B = ops::Binary;
  switch (op) {
    case B::Add: return map2(a, b, y, n, [](float u, float v) { return u + v; });
    case B::Sub: return map2(a, b, y, n, [](float u, float v) { return u - v; });
    case B::Mul: return map2(a, b, y, n, [](float u, float v) { return u * v; });
    case B::Div: return map2(a, b, y, n, [](float u, float v) { return u / v; });
    case B::Max: return map2(a, b, y, n, nan_max);
    case B::Min: return map2(a, b, y, n, nan_min);
    case B::Pow: return map2(a, b, y, n, [](float u, float v) { return std::pow(u, v); });
  }
}

}  // namespace

Tensor unary(ops::Unary op, const Tensor& x) {
  Tensor out = Tensor::empty(x.shape(), x.dtype());
  elementwise<1>(out, {x}, [op](const float* const* in, float* y, int64_t n) { unary_chunk(op, in[0], y, n); });
  return out;
}

Tensor binary(ops::Binary op, const Tensor& a, const Tensor& b) {
  const Shape shape = ops::broadcast_shapes(a.shape(), b.shape());
  Tensor out = Tensor::empty(shape, a.dtype());
  elementwise<2>(out, {a.expand(shape), b.expand(shape)},
                 [op](const float* const* in, float* y, int64_t n) { binary_chunk(op, in[0], in[1], y, n); });
  return out;
}

Tensor affine(const Tensor& x, float scale, float shift) {
  Tensor out = Tensor::empty(x.shape(), x.dtype());
  elementwise<1>(out, {x}, [=](const float* const* in, float* y, int64_t n) {
    for (int64_t i = 0; i < n; ++i) y[i] = in[0][i] * scale + shift;
  });
  return out;
}

Tensor modulate(const Tensor& x, const Tensor& scale, const Tensor& shift) {
  Tensor out = Tensor::empty(x.shape(), x.dtype());
  elementwise<3>(out, {x, scale.expand(x.shape()), shift.expand(x.shape())},
                 [](const float* const* in, float* y, int64_t n) {
                   for (int64_t i = 0; i < n; ++i) y[i] = in[0][i] * (1.0f + in[1][i]) + in[2][i];
                 });
  return out;
}

Tensor rope(const Tensor& x, const Tensor& cos, const Tensor& sin) {
  DK_CHECK(x.dtype() != DType::Q8_0, "rope: cannot read Q8_0 tensor ", x.str());
  Tensor out = Tensor::empty(x.shape(), x.dtype());
  // Iterate over pairs: the even element of each pair, with the odd one `step` elements further.
  Shape half = x.shape();
  half.back() /= 2;
  Shape out_even = out.strides(), x_even = x.strides();
  out_even.back() *= 2;
  x_even.back() *= 2;
  const int64_t x_odd = x.strides().back();
  const Tensor c = cos.expand(half), s = sin.expand(half);
  for_each_chunk(half, {out_even, x_even, c.strides(), s.strides()},
                 [&](const int64_t* offs, const int64_t* steps, int64_t n) {
                   thread_local std::vector<float> buf;
                   buf.resize(size_t(kChunk) * 4);
                   float *x0 = buf.data(), *x1 = x0 + kChunk, *cv = x1 + kChunk, *sv = cv + kChunk;
                   load_f32(x.dtype(), x.raw(), offs[1], steps[1], n, x0);
                   load_f32(x.dtype(), x.raw(), offs[1] + x_odd, steps[1], n, x1);
                   load_f32(c.dtype(), c.raw(), offs[2], steps[2], n, cv);
                   load_f32(s.dtype(), s.raw(), offs[3], steps[3], n, sv);
                   for (int64_t i = 0; i < n; ++i) {
                     const float a = x0[i], b = x1[i];
                     x0[i] = a * cv[i] - b * sv[i];
                     x1[i] = a * sv[i] + b * cv[i];
                   }
                   store_f32(x0, out.dtype(), out.raw(), offs[0], steps[0], n);
                   store_f32(x1, out.dtype(), out.raw(), offs[0] + 1, steps[0], n);
                 });
  return out;
}

}  // namespace ditkit::cpu
