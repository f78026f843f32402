// Backends of dense_attention(): arguments are checked by the caller (attend.cpp), so each
// backend gets q [B, Lq, H, D], k and v [B, Lk, H, D] on its device, a resolved scale and a
// key count 1..Lk, and returns a contiguous [B, Lq, H, D] tensor in q's dtype.
#pragma once
#include <cstdint>

#include "core/tensor.h"

namespace ditkit::attention {

// Throws, naming `who`, unless q is [B, Lq, H, D] and k, v are [B, Lk, H, D] on q's device, in
// F32/F16/BF16, with head_dim > 0.
void check_operands(const char* who, const Tensor& q, const Tensor& k, const Tensor& v);

// lse: null, or set to [B, H, Lq] f32.
Tensor dense_attention_cpu(const Tensor& q, const Tensor& k, const Tensor& v, float scale, int64_t keys,
                           Tensor* lse = nullptr);
#ifdef DITKIT_WITH_CUDA
Tensor dense_attention_cuda(const Tensor& q, const Tensor& k, const Tensor& v, float scale, int64_t keys);
#endif

}  // namespace ditkit::attention
