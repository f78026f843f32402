// The flash-attention machinery shared by the CPU kernels (dense_cpu.cpp, block_sparse_cpu.cpp;
// internal). A tile of query rows of one (batch, head) keeps its queries, running max, running
// sum and output rows in f32 while chunks of up to kKeyChunk keys stream past with an online
// softmax in base 2, so Lq x Lk is never formed. Keys and values are converted to f32 once per
// head, not once per visit: a pass packs a few heads' K (transposed in 64-key chunks, the score
// loop's layout) and V, then runs every tile of those heads in parallel. The dense kernel feeds
// a tile every key chunk unmasked; the block-sparse kernel only its schedule's blocks, with the
// element mask of PARTIAL ones. Queries and keys are addressed through an optional kernel order
// (position -> canonical index, -1 = padding slot, read as a zero row).
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "core/tensor.h"

namespace ditkit::attention::cpu {

constexpr int64_t kKeyChunk = 64;  // keys per online-softmax step: one 64-bit mask word per row

// A [B, L, H, D] operand: element (b, l, h, d) at base + (b sb + l sl + h sh + d sd) elements.
struct Operand {
  const char* base;
  DType dtype;
  int64_t elem, sb, sl, sh, sd;
  explicit Operand(const Tensor& t);
  // Row (b, l, h) as D f32 values; l = -1 (a padding slot) gives zeros.
  void load_row(int64_t b, int64_t l, int64_t h, int64_t D, float* dst) const;
};

// One attention call: q [B, q_tokens, H, D], k and v [B, k_tokens, H, D] read at kernel
// positions [0, k_len) through k_order (nullptr = identity); out contiguous [B, q_tokens, H, D]
// in out_dtype; lse (optional) [B, H, q_tokens] f32, natural log.
struct Problem {
  Operand q, k, v;
  char* out;
  DType out_dtype;
  int64_t B, q_tokens, H, D;
  int64_t k_len;
  const int64_t* k_order;
  float scale_log2;  // scale * log2(e): scores come out in base 2
  float* lse = nullptr;
};

// K and V of a run of (batch, head) pairs in f32 at kernel positions: K as [chunk][Dp][64],
// V as [chunk * 64][Dp], one spare chunk at the end; padding slots and positions past k_len
// are zero.
class PackedKV {
 public:
  // Room for `pairs` pairs.
  PackedKV(const Problem& pb, int64_t pairs);
  // Packs pairs [bh0, bh0 + n) (bh = b H + h, n <= pairs), in parallel.
  void pack(int64_t bh0, int64_t n);
  const float* kt(int64_t bh, int64_t chunk) const;
  const float* v(int64_t bh, int64_t key) const;

 private:
  const Problem& pb_;
  int64_t Dp_, chunks_, bh0_ = 0;
  std::shared_ptr<void> kt_, v_;
};

class FlashTile {
 public:
  FlashTile(const Problem& pb, const PackedKV& kv, int64_t max_rows);
  // Starts query rows [p0, p0 + n) of `order` (nullptr = identity) for batch item b, head h.
  void start(int64_t b, int64_t h, int64_t p0, int64_t n, const int64_t* order);
  // Keys at positions [k0, k0 + n), n <= kKeyChunk. mask: nullptr = every pair visible, else
  // row i sees key k0 + j when bit j of mask[i * mask_stride] is set.
  void add(int64_t k0, int64_t n, const uint64_t* mask, int64_t mask_stride);
  // Writes the rows' outputs (and lse) at their canonical positions; rows that saw no key get
  // 0 (lse -inf); padding rows are not written.
  void finish();

 private:
  void scores(const float* kt);
  void update(int64_t nk, const float* v, const uint64_t* mask, int64_t mask_stride);

  const Problem& pb_;
  const PackedKV& kv_;
  int64_t Dp_;  // head_dim padded to whole vectors with zeros that stay zero
  int64_t b_ = 0, h_ = 0, p0_ = 0, rows_ = 0;
  const int64_t* order_ = nullptr;
  std::vector<float> q_, kt_, s_, o_, m_, l_, row_;
};

// Runs fn(tile, b, h, task) for tasks [0, tasks_per_head) of every (batch, head), a few heads'
// packed K/V at a time, the tasks of a pass spread over the thread pool.
void run_heads(const Problem& pb, int64_t tasks_per_head, int64_t max_rows,
               const std::function<void(FlashTile&, int64_t b, int64_t h, int64_t task)>& fn);

}  // namespace ditkit::attention::cpu
