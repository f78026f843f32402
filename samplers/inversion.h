// Flow inversion for editing real images and videos (ConsistEdit's real-image path,
// ../shared/spec/hooks.md §2): Uni-Inv, the Euler-based inversion of UniEdit-Flow as ConsistEdit's
// consistEdit/scheduler.py UniInvEulerScheduler runs it, CFG 1, from the clean latent up to noise.
// It keeps the latent at every noise level, so the edit run can replay them into its source row
// (denoise_rows' before_step) instead of caching the source's attention features ([ours], §5.5).
#pragma once
#include <vector>

#include "core/progress.h"
#include "samplers/denoise.h"
#include "samplers/flow.h"

namespace ditkit::samplers {

// The timesteps of the inversion's model evaluations: schedule.timesteps, then 0 for the clean
// end (sigma 0; FLUX's t = sigma and Wan's 1000 sigma are both 0 there). A VelocityFn indexing
// this list serves both invert() (steps 0..N) and the edit's denoising (steps 0..N-1).
std::vector<double> inversion_timesteps(const FlowSchedule& schedule);

// trajectory[i] is the latent at schedule.sigmas[i]: trajectory[0] the inverted noise,
// trajectory[N] the clean latent that was inverted.
struct Inversion {
  std::vector<Tensor> trajectory;
  const Tensor& noise() const { return trajectory.front(); }
};

// Uni-Inv on the Euler schedule sigma_0 = 1 > ... > sigma_N = 0, from x_N = clean:
//   v = model(x_N, N);  x~ = x_N + (sigma_{N-1} - sigma_N) v
//   for i = N-1 .. 0:   v = model(x~, i);  x_i = x_{i+1} + (sigma_i - sigma_{i+1}) v;
//                       x~ = x_i + (sigma_{i-1} - sigma_i) v
// i.e. each step is the exact inverse of an Euler denoising step whose velocity is taken at the
// predicted x~_i instead of the unknown x_i: N + 1 evaluations, all Pass::Cond (CFG 1), step i
// meaning inversion_timesteps(schedule)[i]. The error is first order in the step size (more steps,
// smaller error). `progress` (optional) ticks once per evaluation.
Inversion invert(const FlowSchedule& schedule, const Tensor& clean, const VelocityFn& model,
                 Progress* progress = nullptr);

// A denoise_rows before_step that sets row `row` to trajectory[step] at the start of every step
// (the source row of an edit follows the inverted trajectory exactly). The trajectory must hold
// at least as many latents as there are steps; it is referenced, not copied.
StepFn replay(const std::vector<Tensor>& trajectory, int row);

}  // namespace ditkit::samplers
