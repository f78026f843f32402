// FreeSwim dual path: cross-attention store and override hooks, and when the full branch runs.
#include "attention/freeswim.h"

#include "core/error.h"

namespace ditkit::attention {
namespace {

// On the full-branch pass: keeps each layer's cross-attention output.
class StoreCrossAttention final : public Hook {
 public:
  explicit StoreCrossAttention(std::shared_ptr<CrossAttentionStore> store) : store_(std::move(store)) {}
  bool applies(const Site& site) const override {
    return site.pass == Pass::FullBranch && site.role == Role::CrossAttention;
  }
  void after(const AttentionCall& call, Tensor& out) const override { store_->put(call.site.layer, out); }

 private:
  std::shared_ptr<CrossAttentionStore> store_;
};

// On the window passes that take the full branch's cross-attention: replaces the output.
class ReuseCrossAttention final : public Hook {
 public:
  ReuseCrossAttention(std::shared_ptr<CrossAttentionStore> store, bool uncond_too)
      : store_(std::move(store)), uncond_too_(uncond_too) {}
  bool applies(const Site& site) const override {
    return site.role == Role::CrossAttention &&
           (site.pass == Pass::Cond || (uncond_too_ && site.pass == Pass::Uncond));
  }
  void after(const AttentionCall& call, Tensor& out) const override {
    Tensor stored = store_->get(call.site.layer);
    DK_CHECK(stored.shape() == out.shape(), "FreeSwim dual path (layer ", call.site.layer,
             "): stored cross-attention output ", stored.str(), " does not match this pass's ", out.str());
    out = stored;
  }

 private:
  std::shared_ptr<CrossAttentionStore> store_;
  bool uncond_too_;
};

}  // namespace

void CrossAttentionStore::put(int layer, const Tensor& out) {
  std::lock_guard lock(mutex_);
  outputs_[layer] = out;
  if (layer == 0) ++passes_;
}

Tensor CrossAttentionStore::get(int layer) const {
  std::lock_guard lock(mutex_);
  auto it = outputs_.find(layer);
  DK_CHECK(it != outputs_.end(), "FreeSwim dual path: no full-branch cross-attention output stored for layer ", layer,
           " (the full branch must run before the window pass)");
  return it->second;
}

int CrossAttentionStore::full_branch_passes() const {
  std::lock_guard lock(mutex_);
  return passes_;
}

DualPath::DualPath(int cache_steps) : cache_steps_(cache_steps), store_(std::make_shared<CrossAttentionStore>()) {
  DK_CHECK(cache_steps >= 1, "sliding-window: cache_steps must be at least 1, got ", cache_steps);
  hooks_ = {std::make_shared<StoreCrossAttention>(store_),
            std::make_shared<ReuseCrossAttention>(store_, /*uncond_too=*/cache_steps == 1)};
}

std::unique_ptr<DualPath> DualPath::for_kind(const Kind& kind) {
  if (kind.name() != "sliding-window" || !kind.params().value("dual_path", true)) return nullptr;
  return std::make_unique<DualPath>(kind.params().value("cache_steps", 2));
}

bool DualPath::full_branch_before(int step, Pass pass) const {
  if (cache_steps_ == 1) return pass == Pass::Cond || pass == Pass::Uncond;
  return pass == Pass::Cond && step % cache_steps_ == 0;
}

}  // namespace ditkit::attention
