// Hook points of every attention call (../shared/spec/hooks.md §5): before attention a hook may
// read or replace q, k and v (append keys/values from another batch item or a cache, edit
// heads or token ranges); after attention it may read or replace the output. Hooks run around
// the fused kernels, so a hook that only touches q/k/v/outputs never forces a slow path.
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
// layout's canonical token order), after the model's norms and RoPE.
struct AttentionCall {
  Site site;
  TokenLayout layout;
  Tensor q, k, v;
  float scale = 0.0f;  // 0 = the kind's own
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
  virtual void before(AttentionCall&) const {}
  // out [B, Lq, H, D] as the kernel returned it (or as an earlier hook left it).
  virtual void after(const AttentionCall&, Tensor& out) const { (void)out; }
};

using Hooks = std::vector<std::shared_ptr<const Hook>>;

// The position ids for `site` after the control's hooks that apply there: false (and `moved`
// untouched) when none moves them, else true with `moved` = the rewritten copy of `ids`.
bool moved_positions(const Control& control, const Site& site, const TokenLayout& layout,
                     const std::vector<int64_t>& ids, std::vector<int64_t>& moved);

}  // namespace ditkit::attention
