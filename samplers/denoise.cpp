#include "samplers/denoise.h"

#include "core/ops.h"

namespace ditkit::samplers {

using attention::Pass;

Tensor denoise(FlowSampler& sampler, Tensor x, const VelocityFn& model, Guidance guidance, Progress* progress) {
  for (int i = 0; i < sampler.steps(); ++i) {
    const Tensor v_cond = model(x, i, Pass::Cond);
    Tensor v = v_cond;
    if (guidance.cfg != 1.0) {
      const Tensor v_uncond = model(x, i, Pass::Uncond);
      v = ops::add(v_uncond, ops::affine(ops::sub(v_cond, v_uncond), float(guidance.cfg), 0.0f));
    }
    if (guidance.perturbed != 0.0) {
      const Tensor v_ptb = model(x, i, Pass::Perturbed);
      v = ops::add(v, ops::affine(ops::sub(v_cond, v_ptb), float(guidance.perturbed), 0.0f));
    }
    x = sampler.step(i, x, v);
    if (progress) progress->tick();
  }
  return x;
}

}  // namespace ditkit::samplers
