#include "samplers/denoise.h"

#include "core/error.h"
#include "core/ops.h"

namespace ditkit::samplers {

using attention::Pass;

Tensor denoise(FlowSampler& sampler, Tensor x, const VelocityFn& model, Guidance guidance, Progress* progress) {
  return denoise_rows({&sampler}, {std::move(x)}, [&](const Tensor& xr, int step, Pass pass, int) {
           return model(xr, step, pass);
         }, guidance, progress)[0];
}

std::vector<Tensor> denoise_rows(const std::vector<FlowSampler*>& samplers, std::vector<Tensor> xs,
                                 const RowVelocityFn& model, Guidance guidance, Progress* progress,
                                 const StepFn& before_step) {
  DK_CHECK(!xs.empty() && samplers.size() == xs.size(), "denoise: ", xs.size(), " samples need as many samplers, got ",
           samplers.size());
  const int rows = int(xs.size()), steps = samplers[0]->steps();
  for (const FlowSampler* s : samplers)
    DK_CHECK(s->steps() == steps, "denoise: every row's sampler must take ", steps, " steps, got ", s->steps());
  auto all_rows = [&](int step, Pass pass) {
    std::vector<Tensor> v;
    for (int r = 0; r < rows; ++r) v.push_back(model(xs[size_t(r)], step, pass, r));
    return v;
  };
  for (int i = 0; i < steps; ++i) {
    if (before_step) before_step(i, xs);
    const std::vector<Tensor> v_cond = all_rows(i, Pass::Cond);
    std::vector<Tensor> v = v_cond;
    if (guidance.cfg != 1.0) {
      const std::vector<Tensor> v_uncond = all_rows(i, Pass::Uncond);
      for (int r = 0; r < rows; ++r)
        v[r] = ops::add(v_uncond[r], ops::affine(ops::sub(v_cond[r], v_uncond[r]), float(guidance.cfg), 0.0f));
    }
    if (guidance.perturbed != 0.0) {
      const std::vector<Tensor> v_ptb = all_rows(i, Pass::Perturbed);
      for (int r = 0; r < rows; ++r)
        v[r] = ops::add(v[r], ops::affine(ops::sub(v_cond[r], v_ptb[r]), float(guidance.perturbed), 0.0f));
    }
    for (int r = 0; r < rows; ++r) xs[r] = samplers[r]->step(i, xs[r], v[r]);
    if (progress) progress->tick();
  }
  return xs;
}

}  // namespace ditkit::samplers
