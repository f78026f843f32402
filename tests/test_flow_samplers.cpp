// Wan2.1's UniPC and DPM++ schedules and updates against the official scheduler (golden e2e):
// fed the stored guided velocity of each step, the sampler must give the stored next latent.
#include <gtest/gtest.h>

#include <cmath>

#include "samplers/denoise.h"
#include "samplers/flow.h"
#include "weights/checkpoint.h"

using namespace ditkit;

namespace {

double max_abs_diff(const Tensor& a, const Tensor& b) {
  auto x = a.to_vector(), y = b.to_vector();
  EXPECT_EQ(x.size(), y.size());
  double m = 0;
  for (size_t i = 0; i < x.size() && i < y.size(); ++i) m = std::max(m, std::fabs(double(x[i]) - y[i]));
  return m;
}

void check_sampler(const std::string& file, samplers::SamplerKind kind) {
  auto io = weights::Checkpoint::open(std::string(DITKIT_TEST_DATA) + "/golden/wan_tiny/e2e/" + file);
  const int steps = 4;
  auto schedule = samplers::wan_schedule(kind, steps, 5.0);
  auto want_t = io.get("timesteps").to_vector();
  auto want_sigma = io.get("sigmas").to_vector();
  ASSERT_EQ(schedule.timesteps.size(), want_t.size());
  for (int i = 0; i < steps; ++i) EXPECT_EQ(schedule.timesteps[i], want_t[i]) << "timestep " << i;
  for (int i = 0; i <= steps; ++i) EXPECT_EQ(float(schedule.sigmas[i]), want_sigma[i]) << "sigma " << i;

  samplers::FlowSampler sampler(kind, schedule);
  Tensor x = io.get("step0_latent_in");
  for (int i = 0; i < steps; ++i) {
    std::string s = "step" + std::to_string(i);
    EXPECT_LE(max_abs_diff(x, io.get(s + "_latent_in")), 1e-5) << s;
    // The stored latent_in is what the official run fed the model; continue from ours.
    x = sampler.step(i, x, io.get(s + "_pred_cfg"));
    EXPECT_LE(max_abs_diff(x, io.get(s + "_latent_out")), 1e-5) << s << " of " << file;
  }
  EXPECT_LE(max_abs_diff(x, io.get("latent_final")), 1e-5);
}

}  // namespace

TEST(FlowSamplers, UniPCMatchesOfficial) { check_sampler("io_unipc.safetensors", samplers::SamplerKind::UniPC); }
TEST(FlowSamplers, DPMppMatchesOfficial) { check_sampler("io_dpmpp.safetensors", samplers::SamplerKind::DPMpp); }

TEST(FlowSamplers, EulerIsTheFlowOdeStep) {
  auto schedule = samplers::wan_schedule(samplers::SamplerKind::Euler, 2, 1.0);
  samplers::FlowSampler sampler(samplers::SamplerKind::Euler, schedule);
  Tensor x = Tensor::from_vector({1.0f, -2.0f}, {2});
  Tensor v = Tensor::from_vector({0.5f, 0.25f}, {2});
  auto out = sampler.step(0, x, v).to_vector();  // sigma 1 -> 0.5
  EXPECT_FLOAT_EQ(out[0], 1.0f - 0.5f * 0.5f);
  EXPECT_FLOAT_EQ(out[1], -2.0f - 0.5f * 0.25f);
}

TEST(FlowSamplers, BadArgumentsNameTheFlag) {
  EXPECT_THROW(samplers::parse_sampler("ddim"), Error);
  EXPECT_THROW(samplers::wan_schedule(samplers::SamplerKind::UniPC, 0, 5.0), Error);
}

// The loop with guidance: a stand-in model that returns the official run's per-step
// predictions must reproduce the guided prediction and the final latent.
TEST(FlowSamplers, DenoiseLoopAppliesGuidance) {
  auto io = weights::Checkpoint::open(std::string(DITKIT_TEST_DATA) + "/golden/wan_tiny/e2e/io_unipc.safetensors");
  samplers::FlowSampler sampler(samplers::SamplerKind::UniPC, samplers::wan_schedule(samplers::SamplerKind::UniPC, 4, 5.0));
  int calls = 0;
  auto model = [&](const Tensor&, int step, attention::Pass pass) {
    ++calls;
    return io.get("step" + std::to_string(step) + (pass == attention::Pass::Cond ? "_pred_cond" : "_pred_uncond"));
  };
  Tensor out = samplers::denoise(sampler, io.get("noise"), model, 5.0);
  EXPECT_EQ(calls, 8);
  EXPECT_LE(max_abs_diff(out, io.get("latent_final")), 1e-4);
}
