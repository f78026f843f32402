// Uni-Inv flow inversion (samplers/inversion.h): exact for a velocity that does not depend on
// the sample; on the tiny golden FLUX and Wan DiTs, inverting a generated latent and denoising
// the inverted noise again with the same prompt reconstructs it within a measured bound that
// shrinks with more steps; replay puts the trajectory into its row at every step; and the
// PSNR / SSIM metrics of io/metrics.h on known images, with and without a mask.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <functional>

#include "core/ops.h"
#include "dit/flux.h"
#include "dit/wan.h"
#include "io/metrics.h"
#include "samplers/inversion.h"
#include "samplers/torch_rng.h"
#include "test_util.h"
#include "weights/checkpoint.h"
#include "weights/model_files.h"

using namespace ditkit;
using attention::Pass;

namespace {

// Euler denoising of x with `model` on `schedule`.
Tensor regenerate(const samplers::FlowSchedule& schedule, const Tensor& x, const samplers::VelocityFn& model) {
  samplers::FlowSampler sampler(samplers::SamplerKind::Euler, schedule);
  return samplers::denoise(sampler, x, model, {});
}

// Inversion + regeneration at 4, 8 and 16 steps: `round_trip(steps)` is the relative RMS error of
// the regenerated latent, which must be small and shrink with the steps.
void expect_round_trips(const char* model, const std::function<double(int)>& round_trip) {
  const double e4 = round_trip(4), e8 = round_trip(8), e16 = round_trip(16);
  std::printf("%s inversion + regeneration, relative RMS error: 4 steps %.4g, 8 steps %.4g, 16 steps %.4g\n", model,
              e4, e8, e16);
  EXPECT_LT(e16, e8);
  EXPECT_LT(e8, e4);
  EXPECT_LT(e4, 0.15);   // measured 0.087 (FLUX), 0.075 (Wan)
  EXPECT_LT(e16, 0.02);  // measured 0.0072 (FLUX), 0.0102 (Wan)
}

TEST(Inversion, ExactWhenTheVelocityIgnoresTheSample) {
  const auto schedule = samplers::wan_schedule(samplers::SamplerKind::Euler, 5, 3.0);
  const Tensor clean = samplers::TorchGenerator(1).randn({2, 3, 4});
  std::vector<Tensor> field;  // one velocity per timestep, the clean end's last
  for (int i = 0; i <= 5; ++i) field.push_back(samplers::TorchGenerator(uint64_t(10 + i)).randn({2, 3, 4}));
  std::vector<int> steps_seen;
  const auto model = [&](const Tensor&, int step, Pass pass) {
    EXPECT_EQ(pass, Pass::Cond);
    steps_seen.push_back(step);
    return field[size_t(step)];
  };
  const samplers::Inversion inv = samplers::invert(schedule, clean, model);
  ASSERT_EQ(inv.trajectory.size(), 6u);
  EXPECT_EQ(steps_seen, (std::vector<int>{5, 4, 3, 2, 1, 0}));  // the clean end first, then every step's timestep
  EXPECT_LE(test::compare(inv.trajectory[5], clean).max_abs, 0.0);
  EXPECT_LE(test::compare(regenerate(schedule, inv.noise(), model), clean).max_abs, 1e-5);
  EXPECT_EQ(samplers::inversion_timesteps(schedule).back(), 0.0);
  EXPECT_EQ(samplers::inversion_timesteps(schedule).size(), 6u);
}

TEST(Inversion, ReplayPutsTheTrajectoryIntoItsRow) {
  const auto schedule = samplers::wan_schedule(samplers::SamplerKind::Euler, 4, 3.0);
  std::vector<Tensor> trajectory;
  for (int i = 0; i <= 4; ++i) trajectory.push_back(samplers::TorchGenerator(uint64_t(i)).randn({3, 5}));
  samplers::FlowSampler s0(samplers::SamplerKind::Euler, schedule), s1(samplers::SamplerKind::Euler, schedule);
  std::vector<std::vector<Tensor>> seen(2);
  const auto model = [&](const Tensor& x, int, Pass, int row) {
    seen[size_t(row)].push_back(x);
    return ops::affine(x, 0.5f, 0.0f);
  };
  const Tensor other = samplers::TorchGenerator(99).randn({3, 5});
  samplers::denoise_rows({&s0, &s1}, {trajectory[0], other}, model, {}, nullptr, samplers::replay(trajectory, 0));
  ASSERT_EQ(seen[0].size(), 4u);
  for (size_t i = 0; i < 4; ++i) EXPECT_EQ(seen[0][i].to_vector(), trajectory[i].to_vector()) << "step " << i;
  EXPECT_NE(seen[1][1].to_vector(), trajectory[1].to_vector());  // the other row runs freely
  test::expect_error([&] { samplers::replay(trajectory, 0)(5, seen[0]); }, "past the trajectory");
}

class TinyFlux : public testing::Test {
 protected:
  static void SetUpTestSuite() {
    dit_ = new weights::LoadedComponent(test::load_family(test::kGolden + "flux_tiny/dit", weights::Family::flux_dit));
    model_ = new dit::FluxModel(*dit_->weights, dit_->config.as<weights::FluxDitConfig>());
  }
  static void TearDownTestSuite() {
    delete model_;
    delete dit_;
  }
  // Relative RMS error of the regenerated latent after inverting `clean` in `steps` steps.
  double round_trip(const Tensor& clean, int steps) const {
    const auto io = weights::Checkpoint::open(test::kGolden + "flux_tiny/e2e/io.safetensors");
    const Tensor txt = io.get("txt").select(0, 0), txt_ids = io.get("txt_ids").select(0, 0),
                 vec = io.get("vec").select(0, 0), img_ids = io.get("img_ids").select(0, 0);
    const auto schedule = samplers::flux_schedule(steps, 64, true);
    const std::vector<double> timesteps = samplers::inversion_timesteps(schedule);
    const samplers::VelocityFn model = [&](const Tensor& x, int step, Pass pass) {
      return model_->forward(x, img_ids, txt, txt_ids, timesteps[size_t(step)], vec, 3.5, step, {}, pass);
    };
    const samplers::Inversion inv = samplers::invert(schedule, clean, model);
    return test::compare(regenerate(schedule, inv.noise(), model), clean).rel_rms;
  }
  static weights::LoadedComponent* dit_;
  static dit::FluxModel* model_;
};
weights::LoadedComponent* TinyFlux::dit_ = nullptr;
dit::FluxModel* TinyFlux::model_ = nullptr;

// The golden's generated latent (the official 4-step run) stands for an encoded image.
TEST_F(TinyFlux, InvertAndRegenerateReconstructs) {
  const Tensor clean = weights::Checkpoint::open(test::kGolden + "flux_tiny/e2e/io.safetensors")
                           .get("latent_final")
                           .select(0, 0)
                           .contiguous();
  expect_round_trips("flux_tiny", [&](int steps) { return round_trip(clean, steps); });
}

TEST(InversionWan, InvertAndRegenerateReconstructs) {
  const std::string g = test::kGolden + "wan_tiny/";
  const auto dit_c = test::load_family(g + "dit", weights::Family::wan_dit);
  const dit::WanModel model(*dit_c.weights, dit_c.config.as<weights::WanDitConfig>());
  const auto io = weights::Checkpoint::open(g + "e2e/io_unipc.safetensors");
  const Tensor context = io.get("context_cond"), clean = io.get("latent_final");
  expect_round_trips("wan_tiny", [&](int steps) {
    const auto schedule = samplers::wan_schedule(samplers::SamplerKind::Euler, steps, 5.0);
    const std::vector<double> timesteps = samplers::inversion_timesteps(schedule);
    const samplers::VelocityFn v = [&](const Tensor& x, int step, Pass pass) {
      return model.forward(x, timesteps[size_t(step)], context, step, {}, pass);
    };
    return test::compare(regenerate(schedule, samplers::invert(schedule, clean, v).noise(), v), clean).rel_rms;
  });
}

// ---- metrics ----

Image gradient(int w, int h, int offset) {
  Image im(w, h, 3);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int c = 0; c < 3; ++c) im.at(x, y)[c] = uint8_t((x * 7 + y * 3 + c * 40 + offset) % 256);
  return im;
}

TEST(Metrics, PsnrAndSsimOfKnownImages) {
  const Image a = gradient(24, 16, 0);
  Image b = a;
  EXPECT_TRUE(std::isinf(psnr({a}, {b})));
  EXPECT_NEAR(ssim({a}, {b}), 1.0, 1e-12);
  for (auto& p : b.pixels) p = uint8_t(std::min(255, p + 5));  // MSE 25 (no value reaches 251)
  EXPECT_NEAR(psnr({a}, {b}), 10 * std::log10(255.0 * 255.0 / 25.0), 0.05);
  EXPECT_GT(ssim({a}, {b}), 0.9);
  // Changing the right half only: inside a mask of the left half the frames are equal.
  Image c = a;
  for (int y = 0; y < 16; ++y)
    for (int x = 12; x < 24; ++x) c.at(x, y)[0] = uint8_t(255 - c.at(x, y)[0]);
  PixelMask left{24, 16, std::vector<uint8_t>(24 * 16, 0)};
  for (int y = 0; y < 16; ++y)
    for (int x = 0; x < 12; ++x) left.values[size_t(y * 24 + x)] = 1;
  EXPECT_TRUE(std::isinf(psnr({a}, {c}, left)));
  EXPECT_LT(psnr({a}, {c}), 20.0);
  EXPECT_GT(ssim({a}, {c}, left), ssim({a}, {c}));
  EXPECT_LT(ssim({a}, {c}), 0.9);
  // Two frames, one mask for both or one per frame.
  PixelMask both = left;
  both.values.insert(both.values.end(), left.values.begin(), left.values.end());
  EXPECT_TRUE(std::isinf(psnr({a, a}, {c, c}, both)));
  test::expect_error([&] { psnr({a}, {gradient(20, 16, 0)}, {}, "--reference r.mp4"); },
                     {"--reference r.mp4", "20x16"});
  test::expect_error([&] { psnr({a}, {c}, PixelMask{24, 16, std::vector<uint8_t>(24 * 16, 0)}); }, "selects no pixel");
  test::expect_error([&] { ssim({a}, {c}, PixelMask{8, 8, std::vector<uint8_t>(64, 1)}); }, "the mask is 8x8");
}

}  // namespace
