// The sampler loop: classifier-free guidance, and optionally perturbed-attention guidance
// (PAG/SoftPAG, ../shared/spec/hooks.md §3.1-3.2), around any model that predicts a flow
// velocity. The loop never knows which model it drives: the caller passes the model as a
// function and decides what each pass means.
#pragma once
#include <functional>

#include "attention/attention.h"
#include "core/progress.h"
#include "samplers/flow.h"

namespace ditkit::samplers {

// Velocity of the model at sample x, step `step` (timestep schedule().timesteps[step]) for
// one pass: Cond (the prompt), Uncond (the negative prompt) or Perturbed (the prompt with
// perturbed attention).
using VelocityFn = std::function<Tensor(const Tensor& x, int step, attention::Pass pass)>;

struct Guidance {
  Guidance(double cfg = 1.0, double perturbed = 0.0) : cfg(cfg), perturbed(perturbed) {}
  double cfg;        // s: the Uncond pass runs when s != 1
  double perturbed;  // w: the Perturbed pass runs when w != 0
};

// Runs every step of `sampler` from noise x with
//   v = v_u + s (v_c - v_u) + w (v_c - v_ptb)
// (without CFG, s == 1: v = v_c + w (v_c - v_ptb)). Passes run in the order cond, uncond,
// perturbed. `progress` (optional) ticks once per step.
Tensor denoise(FlowSampler& sampler, Tensor x, const VelocityFn& model, Guidance guidance,
               Progress* progress = nullptr);

}  // namespace ditkit::samplers
