#include "samplers/flow.h"

#include <algorithm>
#include <cmath>

#include "core/ops.h"

namespace ditkit::samplers {

namespace {
double f32(double v) { return double(float(v)); }

// a * x + b * y, skipping a term whose coefficient is exactly 0 (it may meet inf/NaN-free zeros only).
Tensor axpby(double a, const Tensor& x, double b, const Tensor& y) {
  if (b == 0.0) return ops::affine(x, float(a), 0.0f);
  if (a == 0.0) return ops::affine(y, float(b), 0.0f);
  return ops::add(ops::affine(x, float(a), 0.0f), ops::affine(y, float(b), 0.0f));
}
}  // namespace

SamplerKind parse_sampler(const std::string& name) {
  if (name == "unipc") return SamplerKind::UniPC;
  if (name == "dpm++" || name == "dpmpp") return SamplerKind::DPMpp;
  if (name == "euler") return SamplerKind::Euler;
  fail("--sampler '", name, "': expected unipc, dpm++ or euler");
}

const char* sampler_name(SamplerKind kind) {
  switch (kind) {
    case SamplerKind::UniPC: return "unipc";
    case SamplerKind::DPMpp: return "dpm++";
    case SamplerKind::Euler: return "euler";
  }
  return "?";
}

double shift_sigma(double sigma, double shift) { return shift * sigma / (1.0 + (shift - 1.0) * sigma); }

FlowSchedule wan_schedule(SamplerKind kind, int steps, double shift, int num_train_timesteps) {
  DK_CHECK(steps >= 1, "--steps must be at least 1, got ", steps);
  DK_CHECK(shift > 0, "--shift must be positive, got ", shift);
  // UniPC's table is 1 - linspace(1, 1/N, N) reversed, in float32: its first entry is float32(1 - 1/N).
  double sigma_max = kind == SamplerKind::UniPC ? f32(1.0 - 1.0 / num_train_timesteps) : 1.0;
  FlowSchedule s;
  for (int i = 0; i < steps; ++i) {
    double lin = sigma_max + (0.0 - sigma_max) * double(i) / double(steps);  // numpy.linspace(sigma_max, 0, steps + 1)
    double sig = shift_sigma(lin, shift);
    s.timesteps.push_back(double(int64_t(sig * num_train_timesteps)));  // truncation, as official
    s.sigmas.push_back(f32(sig));
  }
  s.sigmas.push_back(0.0);
  return s;
}

double flux_mu(int64_t image_seq_len, double base_shift, double max_shift) {
  const double m = (max_shift - base_shift) / (4096.0 - 256.0);
  return m * double(image_seq_len) + (base_shift - m * 256.0);
}

FlowSchedule flux_schedule(int steps, int64_t image_seq_len, bool shift, double base_shift, double max_shift) {
  DK_CHECK(steps >= 1, "--steps must be at least 1, got ", steps);
  DK_CHECK(image_seq_len >= 1, "FLUX schedule: image_seq_len must be positive, got ", image_seq_len);
  // torch.linspace(1, 0, steps + 1) in float32: from the start up to the middle, from the end after it.
  const float step = -1.0f / float(steps);
  const float e_mu = float(std::exp(flux_mu(image_seq_len, base_shift, max_shift)));
  FlowSchedule s;
  for (int i = 0; i <= steps; ++i) {
    float t = i < (steps + 1) / 2 ? 1.0f + step * float(i) : 0.0f - step * float(steps - i);
    // time_shift(mu, 1, t): every tensor operation rounds to float32; t = 0 stays 0 (1/0 = inf).
    if (shift && t > 0.0f) t = e_mu / (e_mu + (1.0f / t - 1.0f));
    s.sigmas.push_back(double(t));
  }
  s.timesteps.assign(s.sigmas.begin(), s.sigmas.end() - 1);
  return s;
}

FlowSampler::FlowSampler(SamplerKind kind, FlowSchedule schedule) : kind_(kind), schedule_(std::move(schedule)) {
  DK_CHECK(schedule_.sigmas.size() == schedule_.timesteps.size() + 1, "sampler: ", schedule_.sigmas.size(),
           " sigmas for ", schedule_.timesteps.size(), " steps");
}

double FlowSampler::lambda(int i) const {
  double s = schedule_.sigmas[i];
  return std::log(1.0 - s) - std::log(s);  // -inf at sigma 1, +inf at sigma 0: the updates take the limits
}

Tensor FlowSampler::step(int i, const Tensor& x, const Tensor& v) {
  DK_CHECK(i >= 0 && i < steps(), "sampler step ", i, " out of range (", steps(), " steps)");
  double sigma = schedule_.sigmas[i];
  if (kind_ == SamplerKind::Euler) return axpby(1.0, x, schedule_.sigmas[i + 1] - sigma, v);
  Tensor x0 = axpby(1.0, x, -sigma, v);
  Tensor out = kind_ == SamplerKind::UniPC ? step_unipc(i, x, x0) : step_dpmpp(i, x, x0);
  x0s_.push_back(x0);
  if (x0s_.size() > 2) x0s_.erase(x0s_.begin());
  return out;
}

// UniPC, bh2 variant, predicting x0, order 2 with lower-order first and final steps. The
// corrector (UniC) refines the incoming sample with this step's x0 before the predictor (UniP).
Tensor FlowSampler::step_unipc(int i, const Tensor& x_in, const Tensor& x0) {
  Tensor x = x_in;
  if (i > 0) {
    double hh = -(lambda(i) - lambda(i - 1));
    double phi = std::expm1(hh), B = phi;
    const Tensor& m0 = x0s_.back();
    Tensor base = axpby(schedule_.sigmas[i] / schedule_.sigmas[i - 1], last_sample_, -alpha(i) * phi, m0);
    Tensor d_t = ops::sub(x0, m0);
    if (last_order_ == 1) {
      x = axpby(1.0, base, -alpha(i) * B * 0.5, d_t);
    } else {
      double r = (lambda(i - 2) - lambda(i - 1)) / (lambda(i) - lambda(i - 1));
      Tensor d1 = ops::affine(ops::sub(x0s_[0], m0), float(1.0 / r), 0.0f);
      double b1 = (phi / hh - 1.0) / B;
      double b2 = 2.0 * ((phi / hh - 1.0) / hh - 0.5) / B;
      // [[1, 1], [r, 1]] rho = [b1, b2]
      double rho0 = (b1 - b2) / (1.0 - r), rho1 = b1 - rho0;
      x = ops::sub(base, axpby(alpha(i) * B * rho0, d1, alpha(i) * B * rho1, d_t));
    }
  }
  int seen = int(x0s_.size()) + 1;
  int order = std::min({2, steps() - i, seen});
  double hh = -(lambda(i + 1) - lambda(i));
  double phi = std::expm1(hh), B = phi;
  Tensor out = axpby(schedule_.sigmas[i + 1] / schedule_.sigmas[i], x, -alpha(i + 1) * phi, x0);
  if (order == 2) {
    double r = (lambda(i - 1) - lambda(i)) / (lambda(i + 1) - lambda(i));
    Tensor d = ops::affine(ops::sub(x0s_.back(), x0), float(1.0 / r), 0.0f);
    out = axpby(1.0, out, -alpha(i + 1) * B * 0.5, d);
  }
  last_sample_ = x;
  last_order_ = order;
  return out;
}

// DPM-Solver++(2M), midpoint; first and last steps first order.
Tensor FlowSampler::step_dpmpp(int i, const Tensor& x, const Tensor& x0) {
  double h = lambda(i + 1) - lambda(i);
  double em = std::exp(-h) - 1.0;
  double sigma_ratio = schedule_.sigmas[i + 1] / schedule_.sigmas[i];
  Tensor out = axpby(sigma_ratio, x, -alpha(i + 1) * em, x0);
  bool first_order = i == 0 || i == steps() - 1 || x0s_.empty();
  if (!first_order) {
    double r0 = (lambda(i) - lambda(i - 1)) / h;
    double inv_r0 = std::isinf(r0) ? 0.0 : 1.0 / r0;  // sigma 1 at step 0 makes r0 infinite: D1 is 0
    if (inv_r0 != 0.0) {
      Tensor d1 = ops::affine(ops::sub(x0, x0s_.back()), float(inv_r0), 0.0f);
      out = axpby(1.0, out, -0.5 * alpha(i + 1) * em, d1);
    }
  }
  return out;
}

}  // namespace ditkit::samplers
