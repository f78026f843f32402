// Uni-Inv flow inversion and trajectory replay (samplers/inversion.h).
#include "samplers/inversion.h"

#include "core/error.h"
#include "core/ops.h"

namespace ditkit::samplers {

namespace {
// x + dt * v
Tensor euler(const Tensor& x, double dt, const Tensor& v) { return ops::add(x, ops::affine(v, float(dt), 0.0f)); }
}  // namespace

std::vector<double> inversion_timesteps(const FlowSchedule& schedule) {
  std::vector<double> t = schedule.timesteps;
  t.push_back(0.0);
  return t;
}

Inversion invert(const FlowSchedule& schedule, const Tensor& clean, const VelocityFn& model, Progress* progress) {
  const int n = int(schedule.timesteps.size());
  const std::vector<double>& s = schedule.sigmas;
  DK_CHECK(n >= 1 && s.size() == size_t(n) + 1 && s.back() == 0.0, "invert: the schedule must run ", n,
           " steps down to sigma 0, got ", s.size(), " sigmas ending in ", s.empty() ? -1.0 : s.back());
  Inversion inv;
  inv.trajectory.assign(size_t(n) + 1, Tensor());
  inv.trajectory[size_t(n)] = clean;
  Tensor v = model(clean, n, attention::Pass::Cond);
  if (progress) progress->tick();
  Tensor predicted = euler(clean, s[size_t(n) - 1] - s[size_t(n)], v);
  for (int i = n - 1; i >= 0; --i) {
    v = model(predicted, i, attention::Pass::Cond);
    if (progress) progress->tick();
    inv.trajectory[size_t(i)] = euler(inv.trajectory[size_t(i) + 1], s[size_t(i)] - s[size_t(i) + 1], v);
    if (i > 0) predicted = euler(inv.trajectory[size_t(i)], s[size_t(i) - 1] - s[size_t(i)], v);
  }
  return inv;
}

StepFn replay(const std::vector<Tensor>& trajectory, int row) {
  return [&trajectory, row](int step, std::vector<Tensor>& xs) {
    DK_CHECK(step >= 0 && size_t(step) < trajectory.size(), "replay: step ", step, " is past the trajectory's ",
             trajectory.size(), " latents");
    DK_CHECK(row >= 0 && size_t(row) < xs.size(), "replay: row ", row, " of ", xs.size(), " rows");
    xs[size_t(row)] = trajectory[size_t(step)];
  };
}

}  // namespace ditkit::samplers
