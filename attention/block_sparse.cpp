// block_sparse_attention(): checks the call against its schedule and runs the device's
// backend; kernel_block_shape() is the one place that says which block shape each backend runs.
#include "attention/block_sparse.h"
#include "attention/dense.h"
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
  check_operands("block_sparse_attention", q, k, v);
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
