#include "samplers/denoise.h"

#include "core/ops.h"

namespace ditkit::samplers {

Tensor denoise(FlowSampler& sampler, Tensor x, const VelocityFn& model, double guidance_scale, Progress* progress) {
  for (int i = 0; i < sampler.steps(); ++i) {
    Tensor v = model(x, i, true);
    if (guidance_scale != 1.0) {
      Tensor v_uncond = model(x, i, false);
      v = ops::add(v_uncond, ops::affine(ops::sub(v, v_uncond), float(guidance_scale), 0.0f));
    }
    x = sampler.step(i, x, v);
    if (progress) progress->tick();
  }
  return x;
}

}  // namespace ditkit::samplers
