// The block-sparse engine's description of one attention pattern: every sparse kind reduces to
// this. Tokens run in a kernel order (a permutation of the canonical row-major order, with
// optional padding slots, so that e.g. NATTEN tiles or GRAT groups are contiguous); the sequence
// is cut into query blocks and key blocks; each query block lists the key blocks it visits, in
// CSR form, each FULL (every pair visible) or PARTIAL (a packed element mask says which pairs).
// Built once per (layout, kind parameters, block shape) and shared by the CPU and CUDA kernels.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

namespace ditkit::attention {

enum class BlockClass : uint8_t { Empty = 0, Partial = 1, Full = 2 };

struct BlockSchedule {
  int64_t q_tokens = 0, k_tokens = 0;  // canonical token counts (what the caller's q and k hold)
  int64_t q_len = 0, k_len = 0;        // kernel-order sequence lengths (>= tokens with padding slots)
  int64_t q_block = 64, k_block = 64;  // block shape (the last block of each axis may be short)
  // Kernel order: q_order[p] = canonical query index at position p, -1 = padding slot; empty
  // means identity (then q_len == q_tokens). Same for keys.
  std::vector<int64_t> q_order, k_order;
  std::vector<int64_t> row_ptr;      // [q_blocks + 1]: entries of query block i are row_ptr[i]..row_ptr[i+1)
  std::vector<int32_t> cols;         // key block of each entry, ascending within a row
  std::vector<int64_t> mask_offset;  // per entry: -1 = FULL, else the first word of its element mask in bits
  // PARTIAL element masks: q_block rows of mask_words() words each; bit j of row r (word j / 64,
  // bit j % 64) = key k0 + j visible to query q0 + r. Rows and keys past the sequence are 0.
  std::vector<uint64_t> bits;
  int64_t visible_pairs = 0;  // visible (query, key) pairs among real tokens

  int64_t q_blocks() const { return (q_len + q_block - 1) / q_block; }
  int64_t k_blocks() const { return (k_len + k_block - 1) / k_block; }
  int64_t mask_words() const { return (k_block + 63) / 64; }
  int64_t entries() const { return int64_t(cols.size()); }
  // Visible pairs over all q_tokens x k_tokens pairs.
  double density() const { return double(visible_pairs) / (double(q_tokens) * double(k_tokens)); }
  // Share of (query block, key block) area the kernel visits (what its time follows).
  double block_density() const;
  // Canonical query and key at kernel positions (identity when no order is stored).
  int64_t q_token(int64_t p) const { return q_order.empty() ? p : q_order[size_t(p)]; }
  int64_t k_token(int64_t p) const { return k_order.empty() ? p : k_order[size_t(p)]; }

  // The CUDA backend's device copy of the arrays above, uploaded on first use.
  mutable std::shared_ptr<void> device_copy;
};

// A visibility pattern over kernel positions, given to build_schedule(). Positions holding
// padding slots are never asked about.
class MaskRule {
 public:
  virtual ~MaskRule() = default;
  // Key at kernel position kp visible to the query at kernel position qp.
  virtual bool visible(int64_t qp, int64_t kp) const = 0;
  // Class of the block [q0, q1) x [k0, k1) when the rule knows it without looking at the
  // elements, Partial when it does not (then visible() decides element by element). Must never
  // answer Empty or Full wrongly; a good answer here is what keeps building fast at real sizes.
  virtual BlockClass classify(int64_t q0, int64_t q1, int64_t k0, int64_t k1) const = 0;
};

// Builds the schedule of `rule` on the kernel order given by q_order/k_order (empty = identity
// over q_tokens/k_tokens). Blocks that classify() calls Partial are resolved element by element
// (and may turn out Empty or Full). Multi-threaded over query blocks.
BlockSchedule build_schedule(const MaskRule& rule, int64_t q_tokens, int64_t k_tokens, int64_t q_block,
                             int64_t k_block, std::vector<int64_t> q_order = {}, std::vector<int64_t> k_order = {});

// The executed mask in canonical order, [q_tokens x k_tokens] row-major, 1 = visible.
std::vector<uint8_t> token_mask(const BlockSchedule& s);
// The class of every (query block, key block) in kernel order, [q_blocks x k_blocks] row-major.
std::vector<BlockClass> block_classes(const BlockSchedule& s);

}  // namespace ditkit::attention
