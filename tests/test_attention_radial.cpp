// The "radial" kind against the goldens of tests/data/golden/attention (README there): the
// official block masks (small cases and the three production sizes), the executed token mask
// through build_schedule(), classify() exactness, the block-sparse output and lse, the dense
// warm-up rule and parameter errors; plus the schedule build at Wan 480p (time printed).
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "attention/block_sparse.h"
#include "attention/kind.h"
#include "attention/plan.h"
#include "attention/radial.h"
#include "attention_golden.h"
#include "test_util.h"
#include "weights/checkpoint.h"

using namespace ditkit;
using namespace ditkit::attention;

namespace {

const std::string kDir = test::kGolden + "attention/";

struct Golden {
  nlohmann::json config;
  weights::Checkpoint data;
  TokenLayout layout;
  int64_t tokens = 0;
};

Golden load(const std::string& name) {
  Golden g{nlohmann::json::parse(std::ifstream(kDir + name + "/config.json")),
           weights::Checkpoint::open(kDir + name + "/data.safetensors"), {}};
  g.layout = layout_from_json(g.config["layout"], name);
  g.tokens = g.config["tokens_q"].get<int64_t>();
  return g;
}

std::vector<uint8_t> bytes(const Tensor& t) {
  std::vector<float> v = t.to_vector();
  return {v.begin(), v.end()};
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// The golden's official block mask from its parameters.
std::vector<uint8_t> block_mask_of(const nlohmann::json& params) {
  return radial_block_mask(params["num_frames"].get<int64_t>(), params["tokens_per_frame"].get<int64_t>(),
                           params["block_size"].get<int64_t>(), params["decay_factor"].get<double>(),
                           params["model_type"] == "wan");
}

const char* kSmallCases[] = {"radial_wan_t8h8w16_bs32_df1", "radial_hunyuan_t5h12w20_bs64_df095_text24v17"};

}  // namespace

TEST(AttentionRadial, BlockMaskMatchesOfficialSmall) {
  for (const char* name : kSmallCases) {
    Golden g = load(name);
    EXPECT_EQ(block_mask_of(g.config["params"]), bytes(g.data.get("block_mask"))) << name;
  }
}

TEST(AttentionRadial, BlockMaskMatchesOfficialProduction) {
  for (const char* name : {"radial_blockmask_wan21_768x1280_69f_bs128_df02",
                           "radial_blockmask_hunyuan_768x1280_117f_bs128_df095",
                           "radial_blockmask_wan22_768x1280_77f_bs64_df08"}) {
    Golden g = load(name);
    const auto start = std::chrono::steady_clock::now();
    const std::vector<uint8_t> mask = block_mask_of(g.config["params"]);
    const double secs = seconds_since(start);
    EXPECT_EQ(mask, bytes(g.data.get("block_mask"))) << name;
    int64_t kept = 0;
    for (uint8_t m : mask) kept += m;
    EXPECT_NEAR(double(kept) / double(mask.size()), g.config["block_mask_density"].get<double>(), 1e-12);
    std::printf("[ radial ] %s: block mask in %.3f s\n", name, secs);
  }
}

TEST(AttentionRadial, RuleAndScheduleMatchGoldenMask) {
  for (const char* name : kSmallCases) {
    SCOPED_TRACE(name);
    Golden g = load(name);
    const auto kind = make_kind("radial", g.config["params"]);
    const KindMask m = kind->mask(g.layout, g.tokens, g.tokens);
    EXPECT_TRUE(m.q_order.empty() && m.k_order.empty());
    const std::vector<uint8_t> want = bytes(g.data.get("mask"));
    for (int64_t q = 0; q < g.tokens; ++q)
      for (int64_t k = 0; k < g.tokens; ++k)
        ASSERT_EQ(m.rule->visible(q, k), want[size_t(q * g.tokens + k)] != 0) << "query " << q << ", key " << k;
    // Kernel blocks inside one radial block, straddling them, and lopsided.
    for (auto [qb, kb] : {std::pair{64, 64}, {32, 32}, {48, 80}, {100, 7}, {128, 128}}) {
      test::expect_exact_classes(*m.rule, want, g.tokens, g.tokens, qb, kb);
      const BlockSchedule s = build_schedule(*m.rule, g.tokens, g.tokens, qb, kb);
      EXPECT_EQ(token_mask(s), want) << qb << "x" << kb;
      EXPECT_NEAR(s.density(), g.config["mask_density"].get<double>(), 1e-12);
    }
  }
}

TEST(AttentionRadial, OutputAndLseMatchGolden) {
  for (const char* name : kSmallCases) {
    SCOPED_TRACE(name);
    Golden g = load(name);
    const auto kind = make_kind("radial", g.config["params"]);
    const KindMask m = kind->mask(g.layout, g.tokens, g.tokens);
    const BlockSchedule s = build_schedule(*m.rule, g.tokens, g.tokens, 64, 64);
    test::expect_engine_matches_golden(*kind, s, g.data, g.config["scale"].get<float>(), name);
  }
}

TEST(AttentionRadial, ProductionScheduleIsTheBlockMask) {
  // HunyuanVideo 768x1280x117f: 115200 tokens, radial blocks of 128 cut into 64x64 kernel blocks.
  Golden g = load("radial_blockmask_hunyuan_768x1280_117f_bs128_df095");
  const auto kind = make_kind("radial", g.config["params"]);
  const auto start = std::chrono::steady_clock::now();
  const KindMask m = kind->mask(g.layout, g.tokens, g.tokens);
  const BlockSchedule s = build_schedule(*m.rule, g.tokens, g.tokens, 64, 64);
  std::printf("[ radial ] HunyuanVideo 30x48x80: schedule in %.3f s, density %.4f\n", seconds_since(start),
              s.density());
  const std::vector<uint8_t> blocks = bytes(g.data.get("block_mask"));
  const std::vector<BlockClass> classes = block_classes(s);
  ASSERT_EQ(classes.size(), blocks.size() * 4);
  const int64_t n = s.k_blocks();
  for (int64_t r = 0; r < n; ++r)
    for (int64_t c = 0; c < n; ++c)
      ASSERT_EQ(int(classes[size_t(r * n + c)]),
                int(blocks[size_t(r / 2 * (n / 2) + c / 2)] ? BlockClass::Full : BlockClass::Empty))
          << r << ", " << c;
  EXPECT_TRUE(s.bits.empty());
}

TEST(AttentionRadial, Wan480pSchedule) {
  // Wan2.1 480x832x81f: 21x30x52 = 32760 tokens, not a multiple of the 128-token radial block.
  TokenLayout layout;
  layout.frames = 21, layout.height = 30, layout.width = 52;
  const int64_t n = layout.grid_tokens();
  const auto kind = make_kind("radial");
  const auto start = std::chrono::steady_clock::now();
  const KindMask m = kind->mask(layout, n, n);
  const BlockSchedule s = build_schedule(*m.rule, n, n, 64, 64);
  std::printf("[ radial ] Wan 480p 21x30x52 (defaults): schedule in %.3f s, density %.4f, block density %.4f\n",
              seconds_since(start), s.density(), s.block_density());
  EXPECT_GT(s.density(), 0.1);
  EXPECT_LT(s.density(), 0.5);
  // The padded tail (32760 = 255 * 128 + 120) is dense: its last query sees every key.
  const std::vector<BlockClass> classes = block_classes(s);
  for (int64_t c = 0; c < s.k_blocks(); ++c)
    EXPECT_NE(int(classes[size_t((s.q_blocks() - 1) * s.k_blocks() + c)]), int(BlockClass::Empty));
}

TEST(AttentionRadial, TinyFramesRunDense) {
  // 4 frames of 32 tokens with 128-token blocks: no block passes the density test (spec §2.3).
  const std::vector<uint8_t> official = radial_block_mask(4, 32, 128, 1.0, false);
  EXPECT_FALSE(radial_blocks_complete(official, 1));
  TokenLayout layout;
  layout.frames = 4, layout.height = 4, layout.width = 8;
  const auto kind = make_kind("radial", {{"model_type", "hunyuan"}});
  const KindMask m = kind->mask(layout, 128, 128);
  EXPECT_EQ(m.rule->classify(0, 128, 0, 128), BlockClass::Full);
}

TEST(AttentionRadial, DenseWarmUp) {
  const auto kind = make_kind("radial", {{"dense_timesteps", 2}, {"dense_layers", 1}});
  Site site;
  site.step = 1, site.layer = 5;
  EXPECT_TRUE(kind->dense_at(site));
  site.step = 2;
  EXPECT_FALSE(kind->dense_at(site));
  site.layer = 0;
  EXPECT_TRUE(kind->dense_at(site));
  site.step = -1, site.layer = -1;  // unknown: sparse
  EXPECT_FALSE(kind->dense_at(site));
  const auto defaults = make_kind("radial");
  site.step = 11, site.layer = 3;
  EXPECT_TRUE(defaults->dense_at(site));
  site.step = 12;
  EXPECT_FALSE(defaults->dense_at(site));
}

TEST(AttentionRadial, Parameters) {
  const auto kind = make_kind("radial");
  EXPECT_EQ(kind->params(), (nlohmann::json{{"block_size", 128},
                                            {"decay_factor", 0.2},
                                            {"model_type", "wan"},
                                            {"dense_timesteps", 12},
                                            {"dense_layers", 1}}));
  EXPECT_FLOAT_EQ(make_kind("radial", {{"scale", 0.5}})->scale(64), 0.5f);
  EXPECT_FLOAT_EQ(kind->scale(64), 0.125f);
  EXPECT_FALSE(kind->is_dense());
  test::expect_error([] { make_kind("radial", {{"bogus", 1}}); }, {"radial", "unknown parameter 'bogus'"});
  test::expect_error([] { make_kind("radial", {{"block_size", 0}}); }, {"block_size", ">= 1"});
  test::expect_error([] { make_kind("radial", {{"block_size", 1.5}}); }, "block_size");
  test::expect_error([] { make_kind("radial", {{"decay_factor", 0}}); }, {"decay_factor", "> 0"});
  test::expect_error([] { make_kind("radial", {{"model_type", "flux"}}); }, {"model_type", "wan, hunyuan"});
  test::expect_error([] { make_kind("radial", {{"dense_layers", -1}}); }, "dense_layers");
  test::expect_error([] { make_kind("radial", {{"scale", "big"}}); }, "scale");

  TokenLayout layout;
  layout.frames = 4, layout.height = 4, layout.width = 8;
  test::expect_error([&] { make_kind("radial", {{"num_frames", 5}})->mask(layout, 128, 128); },
                     {"num_frames", "4 frames"});
  test::expect_error([&] { make_kind("radial", {{"tokens_per_frame", 30}})->mask(layout, 128, 128); },
                     {"tokens_per_frame", "32"});
  test::expect_error([&] { kind->mask(layout, 128, 130); }, {"radial", "128 keys", "130"});
  layout.text_tokens = 8, layout.text_position = TextPosition::Suffix, layout.valid_keys = 200;
  test::expect_error([&] { kind->mask(layout, 136, 136); }, "valid_keys");
}
