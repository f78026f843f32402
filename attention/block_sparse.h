// The block-sparse attention kernels: one engine for every sparse kind. Inputs are in the
// canonical token order; the kernels read them through the schedule's kernel order (so NATTEN
// tiles and GRAT groups need no permute copies) and write the output back in canonical order.
#pragma once
#include "attention/schedule.h"
#include "core/tensor.h"

namespace ditkit::attention {

// q [B, q_tokens, H, D], k and v [B, k_tokens, H, D] (strided views allowed, F32/F16/BF16);
// returns [B, q_tokens, H, D] in q's dtype. The same schedule serves every batch item and head.
// lse (optional) receives [B, H, q_tokens] f32 natural-log logsumexp of the scaled visible
// scores. A query that sees no key gets output 0 and lse -inf.
Tensor block_sparse_attention(const Tensor& q, const Tensor& k, const Tensor& v, const BlockSchedule& schedule,
                              float scale, Tensor* lse = nullptr);

// Block shape the backend of `device` wants its schedules built with.
struct BlockShape {
  int64_t q_block, k_block;
};
BlockShape kernel_block_shape(const Device& device);

// Backends (arguments checked by block_sparse_attention()).
Tensor block_sparse_attention_cpu(const Tensor& q, const Tensor& k, const Tensor& v, const BlockSchedule& schedule,
                                  float scale, Tensor* lse);
#ifdef DITKIT_WITH_CUDA
Tensor block_sparse_attention_cuda(const Tensor& q, const Tensor& k, const Tensor& v, const BlockSchedule& schedule,
                                   float scale, Tensor* lse);
#endif

}  // namespace ditkit::attention
