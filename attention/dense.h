// Backends of dense_attention(): arguments are checked by the caller (attend.cpp), so each
// backend gets q [B, Lq, H, D], k and v [B, Lk, H, D] on its device, a resolved scale and a
// key count 1..Lk, and returns a contiguous [B, Lq, H, D] tensor in q's dtype.
#pragma once
#include <cstdint>

#include "core/tensor.h"

namespace ditkit::attention {

Tensor dense_attention_cpu(const Tensor& q, const Tensor& k, const Tensor& v, float scale, int64_t keys);
#ifdef DITKIT_WITH_CUDA
Tensor dense_attention_cuda(const Tensor& q, const Tensor& k, const Tensor& v, float scale, int64_t keys);
#endif

}  // namespace ditkit::attention
