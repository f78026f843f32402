// Flow-matching samplers as the official Wan2.1 code runs them, and FLUX.1's schedule
// (src/flux/sampling.py get_schedule) for the same samplers. The model predicts the
// velocity v; at noise level sigma the data estimate is x0 = x - sigma * v, alpha = 1 - sigma,
// lambda = ln(alpha) - ln(sigma). A sampler never knows which model it drives.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace ditkit::samplers {

enum class SamplerKind { UniPC, DPMpp, Euler };
// "unipc", "dpm++", "euler"; throws naming the text otherwise.
SamplerKind parse_sampler(const std::string& name);
const char* sampler_name(SamplerKind kind);

struct FlowSchedule {
  std::vector<double> sigmas;      // steps + 1 values, float32-rounded, ending in 0
  std::vector<double> timesteps;   // what the model receives at each step
};

// sigma -> shift * sigma / (1 + (shift - 1) * sigma)
double shift_sigma(double sigma, double shift);

// Wan2.1's schedules: UniPC starts from the 1000-step training table's sigma_max
// (float32(0.999)); DPM++ and Euler start from 1. Timesteps are int64(sigma * 1000).
FlowSchedule wan_schedule(SamplerKind kind, int steps, double shift, int num_train_timesteps = 1000);

// FLUX.1's resolution-dependent shift: mu on the line through (256 tokens, base_shift) and
// (4096 tokens, max_shift), image_seq_len = packed image tokens ((H/16) * (W/16)).
double flux_mu(int64_t image_seq_len, double base_shift = 0.5, double max_shift = 1.15);
// FLUX.1's get_schedule: t = linspace(1, 0, steps + 1), shifted by t -> e^mu / (e^mu + 1/t - 1)
// when `shift` (dev; schnell runs unshifted), all in float32 as the official code. sigmas are
// these t values; the model receives t itself (in [0, 1]), so timesteps = sigmas[0 .. steps).
FlowSchedule flux_schedule(int steps, int64_t image_seq_len, bool shift, double base_shift = 0.5,
                           double max_shift = 1.15);

// Multistep state for one sampling run.
class FlowSampler {
 public:
  FlowSampler(SamplerKind kind, FlowSchedule schedule);
  int steps() const { return int(schedule_.timesteps.size()); }
  const FlowSchedule& schedule() const { return schedule_; }
  // Advances sample x from step i to i + 1 given the model's velocity v at step i. Steps
  // must be taken in order 0, 1, ...
  Tensor step(int i, const Tensor& x, const Tensor& v);

 private:
  Tensor step_unipc(int i, const Tensor& x, const Tensor& x0);
  Tensor step_dpmpp(int i, const Tensor& x, const Tensor& x0);
  double lambda(int i) const;
  double alpha(int i) const { return 1.0 - schedule_.sigmas[i]; }

  SamplerKind kind_;
  FlowSchedule schedule_;
  std::vector<Tensor> x0s_;  // data estimates of earlier steps, newest last (at most 2 kept)
  Tensor last_sample_;       // UniPC: the (corrected) sample the previous predictor started from
  int last_order_ = 0;       // UniPC: order of the previous predictor
};

}  // namespace ditkit::samplers
