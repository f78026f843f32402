// FreeSwim's dual path (../shared/spec/attention.md §5.4) as hooks: a full-branch pass
// (Pass::FullBranch: the sliding-window kind runs dense there) stores every layer's
// cross-attention output, and the window pass replaces its own cross-attention output by the
// stored one. The velocity function of the pipeline drives it: before a window pass it runs the
// full-branch pass when full_branch_before() says so, with the same Control.
//   cache mode (cache_steps >= 2, the official default 2): the full branch runs on the cond pass
//     of steps with step % cache_steps == 0; other cond steps reuse the stored outputs; the
//     uncond pass is window-only with its own cross-attention;
//   no-cache mode (cache_steps = 1): the full branch runs before every cond and uncond pass.
// Other passes (PAG's perturbed pass) are window-only.
#pragma once
#include <map>
#include <memory>
#include <mutex>

#include "attention/hooks.h"
#include "attention/kind.h"

namespace ditkit::attention {

// Each layer's cross-attention output of the last full-branch pass.
class CrossAttentionStore {
 public:
  void put(int layer, const Tensor& out);
  Tensor get(int layer) const;  // throws when the layer has none
  int full_branch_passes() const;  // full-branch passes seen (layer 0 stores counted)

 private:
  mutable std::mutex mutex_;
  std::map<int, Tensor> outputs_;
  int passes_ = 0;
};

class DualPath {
 public:
  explicit DualPath(int cache_steps = 2);
  // The dual path the kind asks for: the sliding-window kind with dual_path true (cache_steps
  // from its params); null for every other kind.
  static std::unique_ptr<DualPath> for_kind(const Kind& kind);

  int cache_steps() const { return cache_steps_; }
  // Whether the window pass `pass` of `step` needs a full-branch pass just before it.
  bool full_branch_before(int step, Pass pass) const;
  // The store and override hooks; add them to the Control's hooks.
  const Hooks& hooks() const { return hooks_; }
  const CrossAttentionStore& store() const { return *store_; }

 private:
  int cache_steps_;
  std::shared_ptr<CrossAttentionStore> store_;
  Hooks hooks_;
};

}  // namespace ditkit::attention
