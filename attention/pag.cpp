// PAG / SoftPAG output hook: out = O (1 - w_h) + V w_h with w_h = u on perturbed heads and 0
// elsewhere, so unselected heads (and u = 0) keep O exactly and u = 1 gives V exactly.
#include "attention/pag.h"

#include <algorithm>

#include "core/error.h"
#include "core/ops.h"

namespace ditkit::attention {

PerturbedAttentionHook::PerturbedAttentionHook(std::vector<int> layers, std::vector<int> heads, float u)
    : layers_(std::move(layers)), heads_(std::move(heads)), u_(u) {
  DK_CHECK(u >= 0.0f && u <= 1.0f, "PAG: the identity weight u must be in [0, 1], got ", u);
  for (int h : heads_) DK_CHECK(h >= 0, "PAG: head indices must be non-negative, got ", h);
}

bool PerturbedAttentionHook::applies(const Site& site) const {
  return site.pass == Pass::Perturbed && site.role != Role::CrossAttention &&
         std::find(layers_.begin(), layers_.end(), site.layer) != layers_.end();
}

void PerturbedAttentionHook::after(const AttentionCall& call, Tensor& out) const {
  const int64_t H = out.dim(2);
  DK_CHECK(call.v.dim(1) == out.dim(1), "PAG (layer ", call.site.layer, "): the identity map needs as many keys as ",
           "queries, got v ", call.v.str(), " and output ", out.str());
  std::vector<float> w(size_t(H), heads_.empty() ? u_ : 0.0f);
  for (int h : heads_) {
    DK_CHECK(h < H, "PAG (layer ", call.site.layer, "): head ", h, " does not exist (", H, " heads)");
    w[size_t(h)] = u_;
  }
  std::vector<float> keep(w.size());
  std::transform(w.begin(), w.end(), keep.begin(), [](float x) { return 1.0f - x; });
  const Tensor w_t = Tensor::from_vector(w, {1, 1, H, 1}).to(out.device());
  const Tensor keep_t = Tensor::from_vector(keep, {1, 1, H, 1}).to(out.device());
  out = ops::add(ops::mul(out, keep_t), ops::mul(call.v, w_t));
}

}  // namespace ditkit::attention
