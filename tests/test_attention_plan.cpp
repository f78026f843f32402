// Attention plans: the JSON forms (a golden's config.json, default + rules), errors naming the
// file and key, kind_at / dense_at (radial's warm-up by step and layer), cross-attention always
// dense, the schedule cache, layouts in the goldens' schema, and attend() running a golden
// through a plan.
#include <gtest/gtest.h>

#include <climits>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "attention/plan.h"
#include "test_util.h"
#include "weights/checkpoint.h"

namespace ditkit {
namespace {

using attention::Pass;
using attention::Plan;
using attention::Role;
using attention::Site;
using nlohmann::json;

const std::string kAttention = test::kGolden + "attention/";

json read_json(const std::string& path) {
  std::ifstream in(path);
  return json::parse(in);
}

Site self_at(int layer, int step, Pass pass = Pass::Cond) { return Site{Role::SelfAttention, layer, step, pass}; }

// Every golden's config.json is a one-kind plan: the kind and its layout load, the plan
// round-trips through to_json.
TEST(AttentionPlan, GoldenConfigsAreOneKindPlans) {
  int cases = 0;
  for (const auto& entry : std::filesystem::directory_iterator(kAttention)) {
    if (!entry.is_directory()) continue;
    const std::string path = (entry.path() / "config.json").string();
    const json config = read_json(path);
    SCOPED_TRACE(path);
    const Plan plan = Plan::from_json(config, path);
    const std::string kind = config["kind"];
    EXPECT_EQ(plan.default_kind().name(), kind == "natten" ? "neighborhood" : kind == "freeswim" ? "sliding-window" : kind);
    EXPECT_EQ(plan.kind_at(self_at(3, 20)).name(), plan.default_kind().name());
    if (config["scale"].is_number()) {
      EXPECT_FLOAT_EQ(plan.default_kind().scale(64), config["scale"].get<float>());
    }
    const json again = Plan::from_json(plan.to_json(), "round trip").to_json();
    EXPECT_EQ(again, plan.to_json());

    const attention::TokenLayout l = attention::layout_from_json(config["layout"], path);
    const json& lj = config["layout"];
    int64_t grid = 1;
    for (const auto& n : lj["video_shape"]) grid *= n.get<int64_t>();
    EXPECT_EQ(l.grid_tokens(), grid);
    EXPECT_EQ(l.text_tokens, lj["text_tokens"].get<int64_t>());
    if (config.contains("tokens_k") && lj["text_valid"] != lj["text_tokens"]) {
      const int64_t padded = lj["text_tokens"].get<int64_t>() - lj["text_valid"].get<int64_t>();
      EXPECT_EQ(l.valid_keys, config["tokens_k"].get<int64_t>() - padded);
    }
    ++cases;
  }
  EXPECT_GE(cases, 19);
}

TEST(AttentionPlan, LayoutSchema) {
  const auto l = attention::layout_from_json(
      json::parse(R"({"video_shape": [12, 14], "text_tokens": 20, "text_valid": 13, "text_position": "suffix"})"), "x");
  EXPECT_EQ(l.frames, 1);
  EXPECT_EQ(l.height, 12);
  EXPECT_EQ(l.width, 14);
  EXPECT_EQ(l.text_position, attention::TextPosition::Suffix);
  EXPECT_EQ(l.valid_keys, 12 * 14 + 13);
  const auto one = attention::layout_from_json(json::parse(R"({"video_shape": [40]})"), "x");
  EXPECT_EQ(one.width, 40);
  EXPECT_EQ(one.grid_tokens(), 40);
  EXPECT_EQ(one.valid_keys, -1);
  const auto cross = attention::layout_from_json(
      json::parse(R"({"video_shape": [3, 6, 6], "text_tokens": 24, "text_valid": 20, "text_position": "cross"})"), "x");
  EXPECT_EQ(cross.valid_keys, 20);
  test::expect_error([] { attention::layout_from_json(json::parse(R"({"video_shape": [2, 0]})"), "lay.json"); },
                     {"lay.json", "video_shape"});
  test::expect_error(
      [] {
        attention::layout_from_json(json::parse(R"({"video_shape": [4], "text_tokens": 3, "text_position": "middle"})"),
                                    "lay.json");
      },
      {"lay.json", "text_position", "middle"});
}

// Rules: first match wins; layers, steps [begin, end) (null = open), passes, roles.
TEST(AttentionPlan, RulesByLayerStepAndPass) {
  const json j = json::parse(R"({
    "default": {"kind": "dense"},
    "rules": [
      {"layers": [1, 2], "steps": [2, null], "kind": "dense", "params": {"scale": 0.5}},
      {"passes": ["uncond"], "kind": "dense", "params": {"scale": 0.25}},
      {"steps": [0, 3], "kind": "dense", "params": {"scale": 0.125}}
    ]})");
  const Plan plan = Plan::from_json(j, "plan.json");
  auto scale_at = [&](const Site& s) { return plan.kind_at(s).scale(16); };
  EXPECT_FLOAT_EQ(scale_at(self_at(1, 2)), 0.5f);
  EXPECT_FLOAT_EQ(scale_at(self_at(2, 100)), 0.5f);
  EXPECT_FLOAT_EQ(scale_at(self_at(1, 1)), 0.125f);            // steps [0, 3) of the third rule
  EXPECT_FLOAT_EQ(scale_at(self_at(1, 1, Pass::Uncond)), 0.25f);  // second rule before the third
  EXPECT_FLOAT_EQ(scale_at(self_at(0, 3)), 0.25f);  // default: 1/sqrt(16)
  EXPECT_FLOAT_EQ(scale_at(self_at(0, 5, Pass::Perturbed)), 0.25f);
  EXPECT_FLOAT_EQ(scale_at(self_at(3, 5)), 0.25f);
  // A call without a step label is outside step-limited rules.
  EXPECT_FLOAT_EQ(scale_at(self_at(0, -1)), 0.25f);
  // Round trip keeps the rules.
  const Plan again = Plan::from_json(plan.to_json(), "again");
  EXPECT_EQ(again.to_json(), plan.to_json());
  EXPECT_FLOAT_EQ(again.kind_at(self_at(2, 7)).scale(16), 0.5f);
}

TEST(AttentionPlan, CrossAttentionIsAlwaysDense) {
  const Plan plan(attention::parse_kind("sliding-window:train_tokens_hw=4x4"));
  EXPECT_EQ(plan.kind_at(self_at(0, 0)).name(), "sliding-window");
  const attention::Kind& cross = plan.kind_at(Site{Role::CrossAttention, 0, 0, Pass::Cond});
  EXPECT_TRUE(cross.is_dense());
  EXPECT_FLOAT_EQ(cross.scale(64), 0.125f);  // cross-attention keeps 1/sqrt(d)
  const Plan rules = Plan::from_json(json::parse(R"({"rules": [{"kind": "radial"}]})"), "p");
  EXPECT_EQ(rules.kind_at(self_at(0, 0)).name(), "radial");
  EXPECT_TRUE(rules.kind_at(Site{Role::CrossAttention, 0, 0, Pass::Cond}).is_dense());
}

// Radial's dense warm-up: dense on the first dense_timesteps steps and dense_layers layers.
TEST(AttentionPlan, RadialWarmUpByStepAndLayer) {
  const Plan plan = Plan::from_json(
      json::parse(R"({"kind": "radial", "params": {"dense_timesteps": 2, "dense_layers": 1}})"), "radial.json");
  const attention::Kind& k = plan.kind_at(self_at(5, 5));
  EXPECT_EQ(k.name(), "radial");
  EXPECT_TRUE(k.dense_at(self_at(0, 5)));   // layer 0 < dense_layers
  EXPECT_TRUE(k.dense_at(self_at(3, 1)));   // step 1 < dense_timesteps
  EXPECT_FALSE(k.dense_at(self_at(1, 2)));  // sparse from layer 1 and step 2 on
  EXPECT_FALSE(k.dense_at(self_at(7, 30)));
  // FreeSwim's full branch runs dense.
  const Plan sw(attention::parse_kind("sliding-window"));
  EXPECT_TRUE(sw.kind_at(self_at(0, 0, Pass::FullBranch)).dense_at(self_at(0, 0, Pass::FullBranch)));
  EXPECT_FALSE(sw.kind_at(self_at(0, 0)).dense_at(self_at(0, 0)));
}

TEST(AttentionPlan, ErrorsNameTheFileAndKey) {
  auto from = [](const char* text) { Plan::from_json(json::parse(text), "my_plan.json"); };
  test::expect_error([&] { from(R"({"kind": "sparse-magic"})"); }, {"my_plan.json", "sparse-magic"});
  test::expect_error([&] { from(R"({"kind": "radial", "params": {"blok_size": 4}})"); }, {"my_plan.json", "blok_size"});
  test::expect_error([&] { from(R"({"rules": [{"kind": "dense", "layerz": [1]}]})"); },
                     {"my_plan.json", "rules[0]", "layerz"});
  test::expect_error([&] { from(R"({"rules": [{"kind": "dense", "steps": [3, 1]}]})"); },
                     {"my_plan.json", "rules[0].steps"});
  test::expect_error([&] { from(R"({"rules": [{"kind": "dense", "passes": ["sideways"]}]})"); },
                     {"my_plan.json", "rules[0].passes[0]", "sideways"});
  test::expect_error([&] { from(R"({"rules": [{"kind": "dense", "layers": ["a"]}]})"); },
                     {"my_plan.json", "rules[0].layers[0]"});
  test::expect_error([&] { from(R"({"default": {"kind": "dense"}, "extra": 1})"); }, {"my_plan.json", "extra"});
  test::expect_error([&] { from(R"({"rules": [{"layers": [1]}]})"); }, {"my_plan.json", "rules[0]", "kind"});
  const std::string missing = test::temp_path("no_plan.json");
  test::expect_error([&] { Plan::load(missing); }, missing);
  const std::string bad = test::write_temp("bad_plan.json", "{ not json");
  test::expect_error([&] { Plan::load(bad); }, {bad, "JSON"});
  const std::string ok = test::write_temp("ok_plan.json", R"({"rules": [{"layers": [0], "kind": "radial"}]})");
  EXPECT_EQ(Plan::load(ok).kind_at(self_at(0, 0)).name(), "radial");
}

TEST(AttentionPlan, SchedulesAreCachedPerKindLayoutAndBlock) {
  const auto kind = attention::parse_kind("neighborhood:kernel_size=3x3");
  attention::TokenLayout l;
  l.height = 8, l.width = 8;
  const auto a = attention::cached_schedule(*kind, l, 64, 64, {16, 16});
  const auto b = attention::cached_schedule(*attention::parse_kind("neighborhood:kernel_size=3x3"), l, 64, 64, {16, 16});
  EXPECT_EQ(a.get(), b.get());
  EXPECT_NE(a.get(), attention::cached_schedule(*kind, l, 64, 64, {32, 16}).get());
  EXPECT_NE(a.get(), attention::cached_schedule(*attention::parse_kind("neighborhood:kernel_size=5x5"), l, 64, 64,
                                                {16, 16})
                         .get());
  EXPECT_EQ(a->q_block, 16);
  EXPECT_LT(a->density(), 0.2);
}

// A golden through attend() with its config as the plan: the kind, its scale and the layout
// come from config.json alone.
TEST(AttentionPlan, AttendRunsGoldensThroughThePlan) {
  for (const char* name : {"natten_2d_12x14_k5x7_d2x1", "dense_joint_t3h6w6_text20v13_suffix",
                           "grat_x_3d_t4h12w16_g2x4x4_text32v20"}) {
    SCOPED_TRACE(name);
    const std::string dir = kAttention + name + "/";
    const json config = read_json(dir + "config.json");
    const Plan plan = Plan::from_json(config, dir + "config.json");
    const attention::TokenLayout layout = attention::layout_from_json(config["layout"], dir);
    auto data = weights::Checkpoint::open(dir + "data.safetensors");
    auto bthd = [&](const char* t) { return data.get(t).permute({1, 0, 2}).unsqueeze(0); };  // [1, L, H, D]
    const attention::Control control{&plan, nullptr};
    const Tensor out = attention::attend(bthd("q"), bthd("k"), bthd("v"), layout, self_at(4, 30), control);
    const std::vector<float> got = out.contiguous().to_vector(), want = bthd("out").contiguous().to_vector();
    ASSERT_EQ(got.size(), want.size());
    double err = 0, peak = 0;
    for (size_t i = 0; i < got.size(); ++i) {
      err = std::max(err, std::fabs(double(got[i]) - want[i]));
      peak = std::max(peak, std::fabs(double(want[i])));
    }
    EXPECT_TRUE(err <= 1e-5 || err <= 1e-4 * peak) << "max |diff| " << err;
  }
}

}  // namespace
}  // namespace ditkit
