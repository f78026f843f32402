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
  virtual void before(AttentionCall&) const {}
  // out [B, Lq, H, D] as the kernel returned it (or as an earlier hook left it).
  virtual void after(const AttentionCall&, Tensor& out) const { (void)out; }
};

using Hooks = std::vector<std::shared_ptr<const Hook>>;

}  // namespace ditkit::attention
