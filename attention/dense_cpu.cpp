// Dense attention on the CPU, flash-style (cpu_flash.h): each task owns one (batch, head, query
// tile) and streams every valid key through it unmasked; keys past the valid ones are never
// packed. The block-sparse kernel is the same loop over its schedule's blocks.
#include <algorithm>
#include <numbers>

#include "attention/cpu_flash.h"
#include "attention/dense.h"

namespace ditkit::attention {
namespace {

constexpr int64_t kQueryTile = 64;  // query rows per task

}  // namespace

Tensor dense_attention_cpu(const Tensor& q, const Tensor& k, const Tensor& v, float scale, int64_t keys,
                           Tensor* lse) {
  Tensor out = Tensor::empty(q.shape(), q.dtype(), q.device());
  const int64_t Lq = q.dim(1);
  if (lse) *lse = Tensor::empty({q.dim(0), q.dim(2), Lq}, DType::F32, q.device());
  const cpu::Problem pb{cpu::Operand(q), cpu::Operand(k), cpu::Operand(v), static_cast<char*>(out.raw()),
                        out.dtype(), q.dim(0), Lq, q.dim(2), q.dim(3), keys, nullptr,
                        scale * std::numbers::log2e_v<float>, lse ? lse->data<float>() : nullptr};
  const int64_t tiles = (Lq + kQueryTile - 1) / kQueryTile;
  cpu::run_heads(pb, tiles, kQueryTile, [&](cpu::FlashTile& tile, int64_t b, int64_t h, int64_t t) {
    const int64_t q0 = t * kQueryTile;
    tile.start(b, h, q0, std::min(kQueryTile, Lq - q0), nullptr);
    for (int64_t k0 = 0; k0 < keys; k0 += cpu::kKeyChunk) tile.add(k0, std::min(cpu::kKeyChunk, keys - k0), nullptr, 0);
    tile.finish();
  });
  return out;
}

}  // namespace ditkit::attention
