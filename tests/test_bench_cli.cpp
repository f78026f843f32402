// `ditkit bench t2v --random-weights` at the golden wan_tiny sizes (its config.json files), and
// the pieces it stands on: random weights for every expected tensor and the in-memory
// Checkpoint. Times are printed, never asserted.
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <cstdio>
#include <sstream>

#include "test_util.h"
#include "weights/checkpoint.h"
#include "weights/layout.h"
#include "weights/random_weights.h"

using namespace ditkit;

namespace {

const std::string kGolden = std::string(DITKIT_TEST_DATA) + "/golden/wan_tiny/";
const std::string kTinyConfigs = " --config " + kGolden + "dit/config.json --text-encoder-config " + kGolden +
                                 "t5/config.json --vae-config " + kGolden + "vae/config.json";


// The output line starting with `prefix` ("" when there is none).
std::string line_of(const std::string& out, const std::string& prefix) {
  std::istringstream in(out);
  std::string line;
  while (std::getline(in, line))
    if (line.compare(0, prefix.size(), prefix) == 0) return line;
  return "";
}

// The number right after `prefix` on its line (NaN when absent).
double number_after(const std::string& out, const std::string& prefix) {
  const std::string line = line_of(out, prefix);
  double v = NAN;
  if (!line.empty()) std::sscanf(line.c_str() + prefix.size(), "%lf", &v);
  return v;
}

TEST(BenchT2vCli, TinyPipelineReportsEveryStage) {
  const auto [rc, out] = test::run_ditkit("bench t2v --random-weights" + kTinyConfigs +
                                     " --frames 5 -W 64 -H 64 --steps 3 --dtype f32");
  ASSERT_EQ(rc, 0) << out;
  EXPECT_NE(line_of(out, "size: 5 frames 64x64, latent [16, 2, 8, 8], 32 video tokens, text-len 32, 3 steps"), "")
      << out;
  EXPECT_NE(line_of(out, "bench t2v: ").find("random F32 weights on cpu"), std::string::npos) << out;
  EXPECT_GE(number_after(out, "text encoder: "), 0.0) << out;
  EXPECT_NE(line_of(out, "text encoder: ").find("(2 prompts x 32 tokens)"), std::string::npos) << out;
  for (int i = 1; i <= 3; ++i) EXPECT_GE(number_after(out, "step " + std::to_string(i) + "/3: "), 0.0) << out;
  EXPECT_EQ(line_of(out, "step 4/3"), "");
  EXPECT_GE(number_after(out, "denoise: "), 0.0) << out;
  EXPECT_NE(line_of(out, "denoise: ").find("for 3 steps"), std::string::npos) << out;
  EXPECT_NE(line_of(out, "denoise: ").find("6 model passes (2 per step)"), std::string::npos) << out;
  EXPECT_EQ(line_of(out, "latents: "), "latents: finite") << out;
  EXPECT_NE(line_of(out, "vae decode: ").find("latent [16, 2, 8, 8] -> video [3, 5, 64, 64]"), std::string::npos)
      << out;
  EXPECT_EQ(line_of(out, "video: "), "video: finite") << out;
  for (const char* stage : {"text encoder memory: ", "dit memory: ", "vae memory: "})
    EXPECT_NE(line_of(out, stage).find("peak RSS so far"), std::string::npos) << stage << "\n" << out;
  EXPECT_NE(line_of(out, "total: weights "), "") << out;
}

// PAG adds a perturbed pass per step; FreeSwim's dual path counts its full-branch passes.
TEST(BenchT2vCli, CountsModelPasses) {
  const std::string tiny = "bench t2v --random-weights" + kTinyConfigs +
                           " --frames 5 -W 64 -H 64 --steps 2 --skip-text-encoder --skip-vae";
  const auto [rc, out] = test::run_ditkit(tiny + " --pag-scale 2");
  ASSERT_EQ(rc, 0) << out;
  EXPECT_NE(line_of(out, "denoise: ").find("6 model passes (3 per step)"), std::string::npos) << out;
  const auto [rc2, out2] = test::run_ditkit(tiny + " --attention sliding-window:train_tokens_hw=2x2");
  ASSERT_EQ(rc2, 0) << out2;
  EXPECT_EQ(line_of(out2, "freeswim full-branch passes: "),
            "freeswim full-branch passes: 1 (inside the model passes above)") << out2;
}

TEST(BenchT2vCli, SkipsAreStated) {
  const auto [rc, out] = test::run_ditkit("bench t2v --random-weights" + kTinyConfigs +
                                     " --frames 1 -W 32 -H 32 --steps 1 --text-len 48 --skip-text-encoder --skip-vae"
                                     " --threads 1");
  ASSERT_EQ(rc, 0) << out;
  EXPECT_EQ(line_of(out, "text encoder: "), "text encoder: skipped (--skip-text-encoder; random contexts [48, 64])")
      << out;
  EXPECT_EQ(line_of(out, "text encoder weights"), "") << out;
  EXPECT_EQ(line_of(out, "vae decode: "), "vae decode: skipped (--skip-vae)") << out;
  EXPECT_EQ(line_of(out, "vae weights"), "") << out;
  EXPECT_NE(line_of(out, "bench t2v: ").find("random BF16 weights on cpu, 1 threads"), std::string::npos) << out;
  EXPECT_GE(number_after(out, "step 1/1: "), 0.0) << out;
  EXPECT_EQ(line_of(out, "latents: "), "latents: finite") << out;
}

TEST(BenchT2vCli, BadArgumentsAreNamed) {
  const std::string tiny = "bench t2v" + kTinyConfigs + " --skip-text-encoder --skip-vae --steps 1";
  const std::string small = " --frames 1 -W 32 -H 32";
  const std::pair<std::string, std::string> cases[] = {
      {tiny + small, "give --random-weights"},
      {tiny + " --random-weights --frames 6 -W 32 -H 32", "--frames 6: must be 4k+1"},
      {tiny + " --random-weights --frames 1 -W 40 -H 32", "-W/--width 40: must be a positive multiple of 16"},
      {tiny + small + " --random-weights --dtype q8", "--dtype q8: expected bf16, f16 or f32"},
      {tiny + small + " --random-weights --text-len -1", "--text-len -1: must be positive"},
      {"bench t2v --random-weights --config wan9", "unknown model config \"wan9\""},
      {"bench t2v --random-weights --config wan2.1-vae", "--config wan2.1-vae: a wan_vae config, expected wan_dit"},
      {"bench t2v --random-weights --config " + kGolden + "dit/config.json" + small,
       "--text-encoder-config umt5-xxl: width 4096 does not match the DiT's text_dim 64"},
  };
  for (const auto& [args, message] : cases) {
    const auto [rc, out] = test::run_ditkit(args);
    EXPECT_NE(rc, 0) << args;
    EXPECT_NE(out.find(message), std::string::npos) << args << "\n" << out;
  }
}

TEST(RandomWeights, EveryExpectedTensorWithRealInitScales) {
  const auto config = weights::known_config("wan2.1-t2v-1.3b");
  auto tiny = config;
  auto& c = std::get<weights::WanDitConfig>(tiny.params);
  c.num_layers = 1;
  c.dim = 256, c.ffn_dim = 512, c.text_dim = 64, c.num_heads = 2;
  const auto tensors = weights::random_weights(tiny, DType::BF16, 7);
  const auto expected = weights::expected_tensors(tiny);
  ASSERT_EQ(tensors.size(), expected.size());
  for (const auto& e : expected) {
    const Tensor& t = tensors.at(e.name);
    EXPECT_EQ(t.shape(), e.shape) << e.name;
    EXPECT_EQ(t.dtype(), DType::BF16) << e.name;
  }
  auto stats = [&](const std::string& name) {
    const auto v = tensors.at(name).to_vector();
    double sum = 0, sq = 0, max_abs = 0;
    for (float x : v) sum += x, sq += double(x) * x, max_abs = std::max(max_abs, std::fabs(double(x)));
    const double mean = sum / double(v.size());
    return std::array<double, 3>{mean, std::sqrt(sq / double(v.size()) - mean * mean), max_abs};
  };
  // Linear: std 1/sqrt(fan_in), uniform so bounded by sqrt(3) std.
  auto ffn = stats("blocks.0.ffn.0.weight");  // [512, 256]
  EXPECT_NEAR(ffn[0], 0.0, 0.002);
  EXPECT_NEAR(ffn[1], 1.0 / 16, 0.002);
  EXPECT_LE(ffn[2], std::sqrt(3.0) / 16 * 1.01);
  auto patch = stats("patch_embedding.weight");  // fan_in 16 * 1 * 2 * 2
  EXPECT_NEAR(patch[1], 1.0 / 8, 0.005);
  auto mod = stats("blocks.0.modulation");  // randn / dim**0.5 in the official init
  EXPECT_NEAR(mod[1], 1.0 / 16, 0.006);
  EXPECT_EQ(stats("blocks.0.ffn.0.bias")[2], 0.0);
  auto norm = stats("blocks.0.self_attn.norm_q.weight");
  EXPECT_EQ(norm[0], 1.0);
  EXPECT_EQ(norm[1], 0.0);

  // Same seed: same values; another seed: different values.
  const auto again = weights::random_weights(tiny, DType::BF16, 7);
  const auto other = weights::random_weights(tiny, DType::BF16, 8);
  EXPECT_EQ(again.at("blocks.0.ffn.0.weight").to_vector(), tensors.at("blocks.0.ffn.0.weight").to_vector());
  EXPECT_NE(other.at("blocks.0.ffn.0.weight").to_vector(), tensors.at("blocks.0.ffn.0.weight").to_vector());
}

TEST(RandomWeights, ModelWeightsOverGeneratedTensorsValidate) {
  auto config = weights::known_config("wan2.1-vae");
  std::get<weights::WanVaeConfig>(config.params).dim = 12;  // the real layout at a small width
  const auto w = weights::random_model_weights(config, DType::F16, 1);
  EXPECT_EQ(w.family(), weights::Family::wan_vae);
  EXPECT_TRUE(weights::check_tensors(config, w.shapes()).ok());
  size_t expected_bytes = 0, stored_bytes = 0;
  for (const auto& e : weights::expected_tensors(config)) expected_bytes += size_t(shape_numel(e.shape)) * 2;
  for (const auto& n : w.checkpoint().names()) stored_bytes += w.checkpoint().info(n).bytes;
  EXPECT_EQ(stored_bytes, expected_bytes);
  EXPECT_EQ(w.get("decoder.head.0.gamma").to_vector(), std::vector<float>(w.get("decoder.head.0.gamma").numel(), 1.0f));
}

TEST(RandomWeights, RejectsOtherDtypes) {
  test::expect_error([] { weights::random_tensor({4}, DType::I8, 1.0f, 0); }, "random_tensor: dtype I8");
}

TEST(MemoryCheckpoint, ServesTheGivenTensors) {
  Tensor a = Tensor::from_vector({1, 2, 3, 4, 5, 6}, {2, 3});
  Tensor b = Tensor::from_vector({7}, {1}, DType::BF16);
  const auto ck = weights::Checkpoint::from_tensors({{"b", b}, {"a", a}});
  EXPECT_EQ(ck.size(), 2u);
  EXPECT_EQ(ck.names(), (std::vector<std::string>{"a", "b"}));
  EXPECT_TRUE(ck.contains("a"));
  EXPECT_EQ(ck.info("a").shape, (Shape{2, 3}));
  EXPECT_EQ(ck.info("a").bytes, 24u);
  EXPECT_EQ(ck.info("b").dtype, DType::BF16);
  EXPECT_EQ(ck.get("a").raw(), a.raw());  // no copy
  EXPECT_EQ(ck.get("b").to_vector(), std::vector<float>{7});
  test::expect_error([&] { ck.get("c"); }, {"tensor 'c' not found", "<memory>"});
  test::expect_error([] { weights::Checkpoint::from_tensors({{"x", Tensor()}}); }, "tensor 'x' is undefined");
}

}  // namespace
