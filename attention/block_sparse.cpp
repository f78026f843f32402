// block_sparse_attention(): checks the call against its schedule and runs the device's
// backend; kernel_block_shape() is the one place that says which block shape each backend runs.
#include "attention/block_sparse.h"
#include "core/error.h"

namespace ditkit::attention {

BlockShape kernel_block_shape(const Device&) {
  // Both backends run 64 x 64 blocks, so one cached schedule serves both. CUDA: its tile. CPU:
  // one mask word per row and key chunk; with K/V packed once per head, taller query blocks
  // are no faster and make sparse kinds visit more.
  return {64, 64};
}

Tensor block_sparse_attention(const Tensor& q, const Tensor& k, const Tensor& v, const BlockSchedule& schedule,
                              float scale, Tensor* lse) {
  DK_CHECK(q.ndim() == 4 && k.ndim() == 4 && v.ndim() == 4,
           "block_sparse_attention: q, k and v must be [B, L, H, D], got q ", q.str(), ", k ", k.str(), ", v ", v.str());
  DK_CHECK(k.dim(0) == q.dim(0) && k.dim(2) == q.dim(2) && k.dim(3) == q.dim(3) && v.shape() == k.shape(),
           "block_sparse_attention: k and v must be [B, Lk, H, D] matching q ", q.str(), ", got k ", k.str(), ", v ",
           v.str());
  DK_CHECK(q.device() == k.device() && q.device() == v.device(),
           "block_sparse_attention: q, k and v must be on one device, got ", q.device().str(), ", ", k.device().str(),
           ", ", v.device().str());
  for (const Tensor* t : {&q, &k, &v})
    DK_CHECK(t->dtype() == DType::F32 || t->dtype() == DType::F16 || t->dtype() == DType::BF16,
             "block_sparse_attention: q, k and v must be F32, F16 or BF16, got ", t->str());
  DK_CHECK(q.dim(3) > 0, "block_sparse_attention: head_dim must be positive, got q ", q.str());
  DK_CHECK(q.dim(1) == schedule.q_tokens && k.dim(1) == schedule.k_tokens,
           "block_sparse_attention: the schedule is for ", schedule.q_tokens, " queries and ", schedule.k_tokens,
           " keys, got q ", q.str(), ", k ", k.str());
  DK_CHECK(int64_t(schedule.row_ptr.size()) == schedule.q_blocks() + 1,
           "block_sparse_attention: the schedule has ", schedule.row_ptr.size(), " row pointers for ",
           schedule.q_blocks(), " query blocks (not made by build_schedule?)");
  DK_CHECK(scale > 0, "block_sparse_attention: scale must be positive, got ", scale);
  if (q.device().is_cpu()) return block_sparse_attention_cpu(q, k, v, schedule, scale, lse);
#ifdef DITKIT_WITH_CUDA
  return block_sparse_attention_cuda(q, k, v, schedule, scale, lse);
#else
  fail("block_sparse_attention: ", q.device().str(), " tensors need a build with CUDA");
#endif
}

}  // namespace ditkit::attention
