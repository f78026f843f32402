// Block-sparse attention on the CPU: the dense kernel's flash tiles (cpu_flash.h) fed only the
// key blocks of each query block's schedule row, FULL ones unmasked and PARTIAL ones with
// their element mask, one 64-key mask word per row and chunk. Queries and keys are read
// through the kernel order, outputs written at canonical positions. Each task owns one
// (batch, head, query block).
#include <algorithm>
#include <numbers>

#include "attention/block_sparse.h"
#include "attention/cpu_flash.h"

namespace ditkit::attention {

Tensor block_sparse_attention_cpu(const Tensor& q, const Tensor& k, const Tensor& v, const BlockSchedule& s,
                                  float scale, Tensor* lse) {
  Tensor out = Tensor::empty(q.shape(), q.dtype(), q.device());
  const int64_t B = q.dim(0), H = q.dim(2);
  if (lse) *lse = Tensor::empty({B, H, s.q_tokens}, DType::F32, q.device());
  const cpu::Problem pb{cpu::Operand(q), cpu::Operand(k), cpu::Operand(v), static_cast<char*>(out.raw()),
                        out.dtype(), B, s.q_tokens, H, q.dim(3), s.k_len,
                        s.k_order.empty() ? nullptr : s.k_order.data(), scale * std::numbers::log2e_v<float>,
                        lse ? lse->data<float>() : nullptr};
  const int64_t* q_order = s.q_order.empty() ? nullptr : s.q_order.data();
  const int64_t words = s.mask_words();
  cpu::run_heads(pb, s.q_blocks(), s.q_block, [&](cpu::FlashTile& tile, int64_t b, int64_t h, int64_t qb) {
    const int64_t q0 = qb * s.q_block;
    tile.start(b, h, q0, std::min(s.q_block, s.q_len - q0), q_order);
    for (int64_t e = s.row_ptr[size_t(qb)]; e < s.row_ptr[size_t(qb) + 1]; ++e) {
      const int64_t k0 = int64_t(s.cols[size_t(e)]) * s.k_block, nk = std::min(s.k_block, s.k_len - k0);
      const int64_t offset = s.mask_offset[size_t(e)];
      for (int64_t c = 0; c * cpu::kKeyChunk < nk; ++c)
        tile.add(k0 + c * cpu::kKeyChunk, std::min(cpu::kKeyChunk, nk - c * cpu::kKeyChunk),
                 offset < 0 ? nullptr : s.bits.data() + offset + c, words);
    }
    tile.finish();
  });
  return out;
}

}  // namespace ditkit::attention
