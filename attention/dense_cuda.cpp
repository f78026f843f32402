// Host side of CUDA dense attention: Tensor checks and strides, then the kernel in
// dense_cuda.cu on the device's stream.
#ifdef DITKIT_WITH_CUDA
#include <numbers>

#include "attention/dense.h"
#include "attention/dense_cuda.h"
#include "core/cuda/host.h"

namespace ditkit::attention {
namespace {

DenseOperand operand(const Tensor& t) {
  const Shape& st = t.strides();
  return {t.raw(), t.dtype(), st[0], st[1], st[2], st[3]};
}

}  // namespace

Tensor dense_attention_cuda(const Tensor& q, const Tensor& k, const Tensor& v, float scale, int64_t keys) {
  DK_CHECK(q.dim(3) <= kCudaMaxHeadDim, "attention: CUDA dense attention takes head_dim up to ", kCudaMaxHeadDim,
           ", got q ", q.str());
  DK_CHECK(q.dim(0) * q.dim(2) <= 65535, "attention: CUDA dense attention takes batch x heads up to 65535, got q ",
           q.str());
  Tensor out = Tensor::empty(q.shape(), q.dtype(), q.device());
  DenseArgs a;
  a.q = operand(q);
  a.k = operand(k);
  a.v = operand(v);
  a.out = out.raw();
  a.out_dtype = out.dtype();
  a.B = q.dim(0);
  a.Lq = q.dim(1);
  a.H = q.dim(2);
  a.D = q.dim(3);
  a.keys = keys;
  a.scale_log2 = scale * std::numbers::log2e_v<float>;
  launch_dense_attention(a, cuda::stream(q));
  return out;
}

}  // namespace ditkit::attention
#endif
