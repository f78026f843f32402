// PAG / SoftPAG (../shared/spec/hooks.md §3.1-3.2): in the perturbed pass, the self-attention
// (or joint attention) output of the selected layers and heads becomes (1 - u) O + u V
// (u = 1: PAG's full identity map, O = V; 0 < u < 1: SoftPAG), for every batch item. The
// guidance term that uses the perturbed pass lives in samplers/denoise.h.
#pragma once
#include <vector>

#include "attention/hooks.h"

namespace ditkit::attention {

class PerturbedAttentionHook : public Hook {
 public:
  // `layers`: the perturbed layers (empty = none, so the pass equals the unperturbed one);
  // `heads`: the perturbed heads (empty = all); u in [0, 1].
  PerturbedAttentionHook(std::vector<int> layers, std::vector<int> heads, float u = 1.0f);
  bool applies(const Site& site) const override;
  void after(const AttentionCall& call, Tensor& out) const override;

 private:
  std::vector<int> layers_, heads_;
  float u_;
};

}  // namespace ditkit::attention
