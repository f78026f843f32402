// Host side of the elementwise ops: argument layout, dtype rules, fast paths.
#include <cmath>

#include "core/cuda/host.h"

namespace ditkit::cuda {
namespace {

UnaryOp kernel_op(ops::Unary op) {
  switch (op) {
    case ops::Unary::Neg: return UnaryOp::Neg;
    case ops::Unary::Abs: return UnaryOp::Abs;
    case ops::Unary::Exp: return UnaryOp::Exp;
    case ops::Unary::Log: return UnaryOp::Log;
    case ops::Unary::Sqrt: return UnaryOp::Sqrt;
    case ops::Unary::Rsqrt: return UnaryOp::Rsqrt;
    case ops::Unary::Square: return UnaryOp::Square;
    case ops::Unary::Sin: return UnaryOp::Sin;
    case ops::Unary::Cos: return UnaryOp::Cos;
    case ops::Unary::Tanh: return UnaryOp::Tanh;
    case ops::Unary::Sigmoid: return UnaryOp::Sigmoid;
    case ops::Unary::Relu: return UnaryOp::Relu;
    case ops::Unary::Silu: return UnaryOp::Silu;
    case ops::Unary::GeluErf: return UnaryOp::GeluErf;
    case ops::Unary::GeluTanh: return UnaryOp::GeluTanh;
    case ops::Unary::QuickGelu: return UnaryOp::QuickGelu;
  }
  fail("CUDA unary: unknown op ", int(op));
}

BinaryOp kernel_op(ops::Binary op) {
  switch (op) {
    case ops::Binary::Add: return BinaryOp::Add;
    case ops::Binary::Sub: return BinaryOp::Sub;
    case ops::Binary::Mul: return BinaryOp::Mul;
    case ops::Binary::Div: return BinaryOp::Div;
    case ops::Binary::Max: return BinaryOp::Max;
    case ops::Binary::Min: return BinaryOp::Min;
    case ops::Binary::Pow: return BinaryOp::Pow;
  }
  fail("CUDA binary: unknown op ", int(op));
}

// Runs `a` over `shape` with the inputs broadcast to it; the dense result has the first
// input's dtype.
template <int N>
Tensor pointwise(PointwiseArgs a, const Shape& shape, const Tensor* const (&inputs)[N]) {
  Tensor out = Tensor::empty(shape, inputs[0]->dtype(), inputs[0]->device());
  int64_t n = out.numel();
  if (n == 0) return out;
  std::vector<Shape> strides;
  for (int k = 0; k < N; ++k) {
    DK_CHECK(inputs[k]->dtype() != DType::Q8_0 || inputs[k]->shape() == shape, "CUDA elementwise op: Q8_0 operand ",
             inputs[k]->str(), " cannot broadcast to ", shape_str(shape));
    strides.push_back(broadcast_strides(*inputs[k], shape));
    a.in[k] = inputs[k]->raw();
    a.in_t[k] = inputs[k]->dtype();
  }
  a.out = out.raw();
  a.out_t = out.dtype();
  launch_pointwise<N>(make_indexer<N>(shape, strides), a, n, stream(out));
  return out;
}

}  // namespace

void copy_(Tensor& dst, const Tensor& src) {
  int64_t n = dst.numel();
  if (n == 0) return;
  cudaStream_t s = stream(dst);
  if (dst.dtype() == src.dtype() && dst.is_contiguous() && src.is_contiguous()) {
    DK_CUDA(cudaMemcpyAsync(dst.raw(), src.raw(), dst.nbytes(), cudaMemcpyDeviceToDevice, s));
    return;
  }
  DK_CHECK(dst.dtype() != DType::Q8_0, "CUDA copy into ", dst.str(), ": Q8_0 is only copied whole, not converted");
  launch_copy(make_indexer<2>(dst.shape(), {dst.strides(), src.strides()}), dst.raw(), dst.dtype(), src.raw(),
              src.dtype(), n, s);
}

void fill_(Tensor& dst, float value) {
  int64_t n = dst.numel();
  if (n == 0) return;
  DK_CHECK(dst.dtype() != DType::Q8_0, "CUDA fill of ", dst.str(), ": Q8_0 is not supported");
  cudaStream_t s = stream(dst);
  if (value == 0.0f && !std::signbit(value) && dst.is_contiguous()) {
    DK_CUDA(cudaMemsetAsync(dst.raw(), 0, dst.nbytes(), s));
    return;
  }
  launch_fill(make_indexer<1>(dst.shape(), {dst.strides()}), dst.raw(), dst.dtype(), value, n, s);
}

Tensor unary(ops::Unary op, const Tensor& x) {
  PointwiseArgs a;
  a.kind = PointwiseKind::Unary;
  a.unary = kernel_op(op);
  const Tensor* in[1] = {&x};
  return pointwise<1>(a, x.shape(), in);
}

Tensor binary(ops::Binary op, const Tensor& a, const Tensor& b) {
  PointwiseArgs args;
  args.kind = PointwiseKind::Binary;
  args.binary = kernel_op(op);
  const Tensor* in[2] = {&a, &b};
  return pointwise<2>(args, ops::broadcast_shapes(a.shape(), b.shape()), in);
}

Tensor affine(const Tensor& x, float scale, float shift) {
  PointwiseArgs a;
  a.kind = PointwiseKind::Affine;
  a.scale = scale;
  a.shift = shift;
  const Tensor* in[1] = {&x};
  return pointwise<1>(a, x.shape(), in);
}

Tensor modulate(const Tensor& x, const Tensor& scale, const Tensor& shift) {
  PointwiseArgs a;
  a.kind = PointwiseKind::Modulate;
  const Tensor* in[3] = {&x, &scale, &shift};
  return pointwise<3>(a, x.shape(), in);
}

Tensor rope(const Tensor& x, const Tensor& cos, const Tensor& sin) {
  Tensor out = Tensor::empty(x.shape(), x.dtype(), x.device());
  int64_t pairs = x.numel() / 2;
  if (pairs == 0) return out;
  Shape half = x.shape();
  half.back() /= 2;
  Shape x_even = x.strides();
  x_even.back() *= 2;
  Indexer<3> ix = make_indexer<3>(half, {x_even, broadcast_strides(cos, half), broadcast_strides(sin, half)});
  launch_rope(ix, x.raw(), x.dtype(), x.strides().back(), cos.raw(), cos.dtype(), sin.raw(), sin.dtype(), out.raw(),
              pairs, stream(x));
  return out;
}

}  // namespace ditkit::cuda
