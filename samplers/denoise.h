// The sampler loop: classifier-free guidance around any model that predicts a flow velocity.
// The loop never knows which model it drives: the caller passes the model as a function.
#pragma once
#include <functional>

#include "core/progress.h"
#include "samplers/flow.h"

namespace ditkit::samplers {

// Velocity of the model at sample x, step `step` (timestep schedule().timesteps[step]) for
// the conditional (cond = true) or unconditional branch.
using VelocityFn = std::function<Tensor(const Tensor& x, int step, bool cond)>;

// Runs every step of `sampler` from noise x. With guidance_scale != 1 both branches run and
// v = v_uncond + guidance_scale * (v_cond - v_uncond); with 1 only the conditional one.
// `progress` (optional) ticks once per step.
Tensor denoise(FlowSampler& sampler, Tensor x, const VelocityFn& model, double guidance_scale,
               Progress* progress = nullptr);

}  // namespace ditkit::samplers
