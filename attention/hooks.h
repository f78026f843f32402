// Hook points of every attention call (../shared/spec/hooks.md §5), in call order:
//   positions()  move the RoPE position ids of the call (ShiftPE, reposition);
//   normed()     q, k, v after the QK norm, before RoPE (AdaIN, copying from another row);
//   before()     q, k, v after RoPE: read or replace them (append keys/values, edit heads or
//                token ranges), and ask for the row log-sum-exp of the call (want_lse);
//   after()      read or replace the output, with lse when asked for (partial-attention
//                merges, column probabilities).
// Rows of a lockstep batch (Site::row) are evaluated one after another in row order within
// each step and pass, so a hook may keep what row 0 computed and use it in later rows.
// Hooks run around the fused kernels, so a hook that only touches q/k/v/outputs/lse never
// forces a slow path.
#pragma once
#include <climits>
#include <memory>
#include <vector>

#include "attention/attention.h"
#include "core/tensor.h"

namespace ditkit::attention {

// Selects the sites a hook acts on. Empty lists mean "all".
struct Where {
  std::vector<int> layers;
  int step_begin = 0, step_end = INT_MAX;  // steps [step_begin, step_end)
  std::vector<Pass> passes;
  std::vector<Role> roles;
  bool matches(const Site& site) const;
};

// One attention call as hooks see it: q, k, v are [B, L, H, D] (queries and keys in the
// layout's canonical token order), after the model's norms (and, from before() on, RoPE).
struct AttentionCall {
  Site site;
  TokenLayout layout;
  Tensor q, k, v;
  float scale = 0.0f;  // 0 = the kind's own
  const Positions* positions = nullptr;  // self/joint attention of RoPE models, else null
  bool want_lse = false;  // set in before(): attention also returns lse
  Tensor lse;             // [B, H, Lq] f32 natural log, for after() when asked for
};

class Hook {
 public:
  virtual ~Hook() = default;
  virtual bool applies(const Site& site) const = 0;
  // Before RoPE: the position ids the model rotates this call's q and k by, [tokens x axes]
  // row-major (Wan: frame, row, column of each grid token). A hook may move them (ShiftPE,
  // reposition) and returns true when it did.
  virtual bool positions(const Site&, const TokenLayout&, std::vector<int64_t>& ids) const {
    (void)ids;
    return false;
  }
  // After the QK norm, before RoPE: q, k, v may be replaced by tensors of the same shape.
  virtual void normed(AttentionCall&) const {}
  // After RoPE. Keys appended to a self/joint call (more keys than queries) are visible to
  // every query; such a call runs the dense kernel.
  virtual void before(AttentionCall&) const {}
  // out [B, Lq, H, D] as the kernel returned it (or as an earlier hook left it).
  virtual void after(const AttentionCall&, Tensor& out) const { (void)out; }
};

using Hooks = std::vector<std::shared_ptr<const Hook>>;

// The position ids for `site` after the control's hooks that apply there: false (and `moved`
// untouched) when none moves them, else true with `moved` = the rewritten copy of `ids`.
bool moved_positions(const Control& control, const Site& site, const TokenLayout& layout,
                     const std::vector<int64_t>& ids, std::vector<int64_t>& moved);

// The normed() stage: runs the control's hooks that apply at `site` on q, k, v [B, L, H, D]
// (replaced in place when a hook changes them). Models call it between QK norm and RoPE.
void run_normed_hooks(const Control& control, const Site& site, const TokenLayout& layout,
                      const Positions* positions, Tensor& q, Tensor& k, Tensor& v);

}  // namespace ditkit::attention
