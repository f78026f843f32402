// The sampler loop: classifier-free guidance, and optionally perturbed-attention guidance
// (PAG/SoftPAG, ../shared/spec/hooks.md §3.1-3.2), around any model that predicts a flow
// velocity. The loop never knows which model it drives: the caller passes the model as a
// function and decides what each pass means.
#pragma once
#include <functional>
#include <vector>

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

// A lockstep batch (style-aligned sets, source + edit rows): row `row` of the batch.
using RowVelocityFn = std::function<Tensor(const Tensor& x, int step, attention::Pass pass, int row)>;
// Called at the start of every step with every row's sample; may overwrite rows (replaying a
// reference's or a source's trajectory into its row).
using StepFn = std::function<void(int step, std::vector<Tensor>& xs)>;

// denoise() for several samples at once, one sampler each (all with the same number of
// steps). Within a step each pass runs for rows 0, 1, ... in order before the next pass, so
// attention hooks can hand what row 0 computed to the later rows of the same step and pass.
std::vector<Tensor> denoise_rows(const std::vector<FlowSampler*>& samplers, std::vector<Tensor> xs,
                                 const RowVelocityFn& model, Guidance guidance, Progress* progress = nullptr,
                                 const StepFn& before_step = {});

}  // namespace ditkit::samplers
