// The "grat" kind against the goldens of tests/data/golden/attention (README there): the
// clusterify kernel order, the executed token mask through build_schedule(), the per-group
// block classes, classify() exactness, the block-sparse output and lse; groups that do not
// divide the grid (padding slots) against a direct definition; parameter errors; and the
// schedule build at Wan 480p (time printed).
#include <gtest/gtest.h>

#include <array>
#include <chrono>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>

#include "attention/block_sparse.h"
#include "attention/kind.h"
#include "attention/plan.h"
#include "attention_golden.h"
#include "test_util.h"
#include "weights/checkpoint.h"

using namespace ditkit;
using namespace ditkit::attention;

namespace {

const std::string kDir = test::kGolden + "attention/";

struct Golden {
  nlohmann::json config, params;  // params with the variant the golden names
  weights::Checkpoint data;
  TokenLayout layout;
  int64_t tokens = 0;
};

Golden load(const std::string& name) {
  Golden g{nlohmann::json::parse(std::ifstream(kDir + name + "/config.json")), {},
           weights::Checkpoint::open(kDir + name + "/data.safetensors"), {}};
  g.layout = layout_from_json(g.config["layout"], name);
  g.tokens = g.config["tokens_q"].get<int64_t>();
  g.params = g.config["params"];
  g.params["variant"] = g.config["variant"] == "GRAT-B" ? "b" : "x";
  return g;
}

std::vector<uint8_t> bytes(const Tensor& t) {
  std::vector<float> v = t.to_vector();
  return {v.begin(), v.end()};
}

std::vector<int64_t> indices(const Tensor& t) {
  std::vector<float> v = t.to_vector();
  return {v.begin(), v.end()};
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

const char* kCases[] = {"grat_x_3d_t4h12w16_g2x4x4_text32v20", "grat_b_3d_t4h12w16_g2x4x4_r1_text32v20",
                        "grat_x_2d_h16w24_g4x4_textprefix16"};

// GRAT by its definition in canonical order: groups of `group` (t, h, w) tokens, the joint
// text rule around them (spec §0.1, §4).
std::vector<uint8_t> reference_mask(const TokenLayout& l, std::array<int64_t, 3> group, bool criss_cross,
                                    int64_t radius, int64_t q_tokens, int64_t k_tokens) {
  const int64_t g = l.grid_tokens(), before = l.text_position == TextPosition::Prefix ? l.text_tokens : 0;
  // Group coordinates of a canonical token, or nullopt for text.
  auto coords = [&](int64_t i) -> std::optional<std::array<int64_t, 3>> {
    const int64_t v = i - before;
    if (v < 0 || v >= g) return std::nullopt;
    return std::array<int64_t, 3>{v / (l.height * l.width) / group[0], v / l.width % l.height / group[1],
                                  v % l.width / group[2]};
  };
  std::vector<uint8_t> mask(size_t(q_tokens * k_tokens));
  for (int64_t q = 0; q < q_tokens; ++q)
    for (int64_t k = 0; k < k_tokens; ++k) {
      const auto a = coords(q), b = coords(k);
      bool visible = !a || !b;
      if (a && b && criss_cross)
        visible = (l.frames > 1 && (*a)[0] == (*b)[0]) || (*a)[1] == (*b)[1] || (*a)[2] == (*b)[2];
      if (a && b && !criss_cross)
        visible = std::abs((*a)[0] - (*b)[0]) <= radius && std::abs((*a)[1] - (*b)[1]) <= radius &&
                  std::abs((*a)[2] - (*b)[2]) <= radius;
      mask[size_t(q * k_tokens + k)] = visible && (l.valid_keys < 0 || k < l.valid_keys);
    }
  return mask;
}

}  // namespace

TEST(AttentionGrat, GoldenOrderMaskAndBlockClasses) {
  for (const char* name : kCases) {
    SCOPED_TRACE(name);
    Golden g = load(name);
    const int64_t n = g.tokens, group_tokens = g.params["group_tokens"].get<int64_t>();
    const KindMask m = make_kind("grat", g.params)->mask(g.layout, n, n);
    const std::vector<int64_t> perm = indices(g.data.get("perm"));
    EXPECT_EQ(m.q_order, perm);
    EXPECT_EQ(m.k_order, perm);
    const std::vector<uint8_t> want = bytes(g.data.get("mask"));
    // The golden mask in kernel order: the rule's own positions.
    std::vector<uint8_t> permuted(want.size());
    for (int64_t qp = 0; qp < n; ++qp)
      for (int64_t kp = 0; kp < n; ++kp) {
        permuted[size_t(qp * n + kp)] = want[size_t(perm[size_t(qp)] * n + perm[size_t(kp)])];
        ASSERT_EQ(m.rule->visible(qp, kp), permuted[size_t(qp * n + kp)] != 0) << qp << ", " << kp;
      }
    for (auto [qb, kb] : {std::pair<int64_t, int64_t>{group_tokens, group_tokens}, {64, 64}, {24, 40}, {7, 100}})
      test::expect_exact_classes(*m.rule, permuted, n, n, qb, kb);

    const BlockSchedule s = build_schedule(*m.rule, n, n, group_tokens, group_tokens, m.q_order, m.k_order);
    const std::vector<uint8_t> classes_want = bytes(g.data.get("block_class_permuted"));
    const std::vector<BlockClass> classes = block_classes(s);
    ASSERT_EQ(classes.size(), classes_want.size());
    for (size_t i = 0; i < classes.size(); ++i) EXPECT_EQ(int(classes[i]), int(classes_want[i])) << "block " << i;
    EXPECT_EQ(token_mask(s), want);
    EXPECT_NEAR(s.density(), g.config["mask_density"].get<double>(), 1e-4);
    EXPECT_EQ(token_mask(build_schedule(*m.rule, n, n, 64, 64, m.q_order, m.k_order)), want);
  }
}

TEST(AttentionGrat, OutputAndLseMatchGolden) {
  for (const char* name : kCases) {
    SCOPED_TRACE(name);
    Golden g = load(name);
    const int64_t n = g.tokens;
    const auto kind = make_kind("grat", g.params);
    const KindMask m = kind->mask(g.layout, n, n);
    const BlockSchedule s = build_schedule(*m.rule, n, n, 64, 64, m.q_order, m.k_order);
    test::expect_engine_matches_golden(*kind, s, g.data, g.config["scale"].get<float>(), name);
  }
}

TEST(AttentionGrat, GroupsThatDoNotDivideTheGrid) {
  struct Case {
    int64_t t, h, w, text;
    TextPosition pos;
    int64_t valid_text;
    nlohmann::json params;
    std::array<int64_t, 3> group;  // what the parameters mean on this layout
  };
  const Case cases[] = {
      {3, 10, 13, 7, TextPosition::Suffix, 5, {{"group_shape", {2, 4, 4}}}, {2, 4, 4}},
      {3, 10, 13, 7, TextPosition::Suffix, 5, {{"variant", "b"}, {"group_shape", {2, 4, 4}}}, {2, 4, 4}},
      {1, 9, 14, 6, TextPosition::Prefix, 6, {{"group_shape", {4, 4}}}, {1, 4, 4}},
      {1, 9, 14, 0, TextPosition::None, 0, {{"variant", "b"}, {"group_shape", 3}, {"radius_groups", 2}}, {1, 3, 3}},
      // group_shape auto, clipped to the grid
      {5, 6, 7, 4, TextPosition::AdditionalKV, 4, {{"variant", "b"}, {"radius_groups", 0}}, {4, 6, 7}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(testing::Message() << c.params.dump() << " on " << c.t << "x" << c.h << "x" << c.w);
    TokenLayout l;
    l.frames = c.t, l.height = c.h, l.width = c.w, l.text_tokens = c.text, l.text_position = c.pos;
    const int64_t g = l.grid_tokens();
    const int64_t q_tokens = c.pos == TextPosition::None || c.pos == TextPosition::AdditionalKV ? g : g + c.text;
    const int64_t k_tokens = c.pos == TextPosition::None ? g : g + c.text;
    if (c.valid_text < c.text) l.valid_keys = g + c.valid_text;
    const KindMask m = make_kind("grat", c.params)->mask(l, q_tokens, k_tokens);
    // Every group is one contiguous run of group-sized slots, padding included.
    const int64_t group_tokens = c.group[0] * c.group[1] * c.group[2];
    const int64_t grid_slots = int64_t(m.k_order.size()) - (k_tokens - g);
    EXPECT_EQ(grid_slots % group_tokens, 0);
    EXPECT_GE(grid_slots, g);
    const std::vector<uint8_t> want = reference_mask(l, c.group, c.params.value("variant", "x") == "x",
                                                     c.params.value("radius_groups", 1), q_tokens, k_tokens);
    for (auto [qb, kb] : {std::pair<int64_t, int64_t>{64, 64}, {group_tokens, group_tokens}, {24, 40}})
      EXPECT_EQ(token_mask(build_schedule(*m.rule, q_tokens, k_tokens, qb, kb, m.q_order, m.k_order)), want)
          << qb << "x" << kb;
  }
}

TEST(AttentionGrat, Wan480pSchedule) {
  // Wan2.1 480x832x81f: 21x30x52 = 32760 tokens; the default (4, 8, 8) groups pad it to 24x32x56.
  TokenLayout layout;
  layout.frames = 21, layout.height = 30, layout.width = 52;
  const int64_t n = layout.grid_tokens();
  for (const char* variant : {"x", "b"}) {
    const auto kind = make_kind("grat", {{"variant", variant}});
    const auto start = std::chrono::steady_clock::now();
    const KindMask m = kind->mask(layout, n, n);
    const BlockSchedule s = build_schedule(*m.rule, n, n, 64, 64, m.q_order, m.k_order);
    std::printf("[ grat ] Wan 480p 21x30x52, GRAT-%s (defaults): schedule in %.3f s, density %.4f, "
                "block density %.4f\n",
                variant, seconds_since(start), s.density(), s.block_density());
    EXPECT_EQ(s.q_len, 24 * 32 * 56);
    EXPECT_GT(s.density(), 0.0);
    EXPECT_LT(s.density(), 1.0);
  }
}

TEST(AttentionGrat, Parameters) {
  const auto kind = make_kind("grat");
  EXPECT_EQ(kind->params(), (nlohmann::json{{"variant", "x"}, {"group_shape", "auto"}, {"radius_groups", 1}}));
  EXPECT_FALSE(kind->is_dense());
  Site site;
  site.step = 0, site.layer = 0;
  EXPECT_FALSE(kind->dense_at(site));
  EXPECT_FLOAT_EQ(make_kind("grat", {{"scale", 0.25}})->scale(64), 0.25f);
  test::expect_error([] { make_kind("grat", {{"variant", "z"}}); }, {"grat", "variant", "x, b"});
  test::expect_error([] { make_kind("grat", {{"group", 4}}); }, {"grat", "unknown parameter 'group'"});
  test::expect_error([] { make_kind("grat", {{"group_shape", {0, 4}}}); }, "group_shape");
  test::expect_error([] { make_kind("grat", {{"group_shape", {1, 2, 3, 4}}}); }, "group_shape");
  test::expect_error([] { make_kind("grat", {{"group_shape", "big"}}); }, "group_shape");
  test::expect_error([] { make_kind("grat", {{"radius_groups", -1}}); }, "radius_groups");

  TokenLayout image;
  image.height = 16, image.width = 24;
  test::expect_error([&] { make_kind("grat", {{"group_shape", {1, 4, 4}}})->mask(image, 384, 384); },
                     {"3-D group_shape", "single-frame", "dense"});
  TokenLayout video;
  video.frames = 4, video.height = 12, video.width = 16;
  test::expect_error([&] { make_kind("grat", {{"group_shape", {4, 4}}})->mask(video, 768, 768); },
                     {"group_shape", "needs 3 values"});
  test::expect_error([&] { kind->mask(video, 768, 700); }, {"grat", "768 keys", "700"});
}
