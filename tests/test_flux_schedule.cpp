// FLUX.1's get_schedule (golden flux_tiny/e2e: the e2e timesteps and the extra tables of
// schedules.json, shifted and unshifted, within 2 float32 ulp), mu from the packed token count,
// and the Euler update bit-exact against the golden's stored per-step latents.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

#include "samplers/flow.h"
#include "test_util.h"
#include "weights/checkpoint.h"

using namespace ditkit;

namespace {

const std::string kDir = ditkit::test::kGolden + "flux_tiny/e2e/";

// Distance in float32 units in the last place.
int64_t ulps(float a, float b) {
  auto key = [](float f) {
    int32_t i;
    std::memcpy(&i, &f, 4);
    return i < 0 ? int64_t(INT32_MIN) - i : int64_t(i);
  };
  return std::llabs(key(a) - key(b));
}

void expect_schedule(const samplers::FlowSchedule& s, const std::vector<float>& want, const std::string& what) {
  ASSERT_EQ(s.sigmas.size(), want.size()) << what;
  ASSERT_EQ(s.timesteps.size() + 1, want.size()) << what;
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_LE(ulps(float(s.sigmas[i]), want[i]), 2) << what << " t[" << i << "] " << s.sigmas[i] << " vs " << want[i];
    if (i + 1 < want.size()) {
      EXPECT_EQ(s.timesteps[i], s.sigmas[i]) << what;
    }
  }
  EXPECT_EQ(s.sigmas.front(), 1.0) << what;
  EXPECT_EQ(s.sigmas.back(), 0.0) << what;
}

TEST(FluxSchedule, MuFromPackedTokens) {
  EXPECT_NEAR(samplers::flux_mu(256), 0.5, 1e-12);
  EXPECT_NEAR(samplers::flux_mu(4096), 1.15, 1e-12);
  EXPECT_NEAR(samplers::flux_mu(64), 0.4675, 1e-12);
  EXPECT_NEAR(samplers::flux_mu(4080, 0.5, 1.15), 1.1472916666666666, 1e-12);
}

TEST(FluxSchedule, E2eTimesteps) {
  std::ifstream f(kDir + "config.json");
  const auto cfg = nlohmann::json::parse(f);
  const auto s = samplers::flux_schedule(cfg["num_steps"].get<int>(), cfg["image_seq_len"].get<int64_t>(),
                                         cfg["shift"].get<bool>());
  expect_schedule(s, weights::Checkpoint::open(kDir + "io.safetensors").get("timesteps").to_vector(), "e2e");
}

TEST(FluxSchedule, ExtraTablesShiftedAndNot) {
  std::ifstream f(kDir + "schedules.json");
  const auto tables = nlohmann::json::parse(f);
  const auto io = weights::Checkpoint::open(kDir + "io.safetensors");
  ASSERT_FALSE(tables.empty());
  for (const auto& t : tables) {
    const std::string key = t["key"].get<std::string>();
    if (!t["mu"].is_null()) {
      EXPECT_NEAR(samplers::flux_mu(t["image_seq_len"].get<int64_t>()), t["mu"].get<double>(), 1e-12) << key;
    }
    const auto s = samplers::flux_schedule(t["num_steps"].get<int>(), t["image_seq_len"].get<int64_t>(),
                                           t["shift"].get<bool>());
    expect_schedule(s, io.get(key).to_vector(), key);
    expect_schedule(s, t["timesteps"].get<std::vector<float>>(), key + " (json)");
  }
}

// img <- img + (t_next - t_curr) pred, fed the stored predictions: the stored latents exactly.
TEST(FluxSchedule, EulerStepsBitExact) {
  const auto io = weights::Checkpoint::open(kDir + "io.safetensors");
  const std::vector<float> t = io.get("timesteps").to_vector();
  const int steps = int(t.size()) - 1;
  samplers::FlowSchedule schedule;
  for (float v : t) schedule.sigmas.push_back(v);
  schedule.timesteps.assign(schedule.sigmas.begin(), schedule.sigmas.end() - 1);
  samplers::FlowSampler sampler(samplers::SamplerKind::Euler, schedule);
  Tensor x = io.get("img");
  for (int i = 0; i < steps; ++i) {
    const std::string s = "step" + std::to_string(i);
    EXPECT_EQ(float(schedule.timesteps[size_t(i)]), io.get(s + ".t_curr").item()) << s;
    x = sampler.step(i, x, io.get(s + ".pred"));
    EXPECT_EQ(x.to_vector(), io.get(s + ".latent_out").to_vector()) << s;
  }
  EXPECT_EQ(x.to_vector(), io.get("latent_final").to_vector());
}

// The multistep samplers start at sigma 1 here (Wan's UniPC table stops at 0.999): their
// first-step limits must stay finite.
TEST(FluxSchedule, MultistepSamplersStayFinite) {
  for (auto kind : {samplers::SamplerKind::UniPC, samplers::SamplerKind::DPMpp}) {
    samplers::FlowSampler sampler(kind, samplers::flux_schedule(6, 1024, true));
    Tensor x = Tensor::from_vector({1.0f, -0.5f, 0.25f}, {3});
    for (int i = 0; i < sampler.steps(); ++i) x = sampler.step(i, x, Tensor::from_vector({0.3f, -0.2f, 0.1f}, {3}));
    for (float v : x.to_vector()) EXPECT_TRUE(std::isfinite(v)) << samplers::sampler_name(kind);
  }
}

TEST(FluxSchedule, BadArguments) {
  ditkit::test::expect_error([] { samplers::flux_schedule(0, 64, true); }, "--steps");
}

}  // namespace
