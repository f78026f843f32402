// The "sliding-window" kind (FreeSwim) against the goldens of tests/data/golden/attention (README
// there): the window branch's mask and block classes, FreeSwim's scale, branch 0 through the
// block-sparse kernel, branch 1 (the full branch, dense with the same scale) and the
// cross-attention override; the window against the spec's formula on other layouts (inward
// windows wider than an axis, no-inward, tiles); parameters; the schedule at Wan 480p (printed).
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "attention/block_sparse.h"
#include "attention/kind.h"
#include "attention/plan.h"
#include "test_util.h"
#include "weights/checkpoint.h"

using namespace ditkit;
using namespace ditkit::attention;
using nlohmann::json;

namespace {

const std::string kDir = test::kGolden + "attention/";
const char* kCases[] = {"freeswim_t3h12w16_train6x8", "freeswim_t2h10w12_train4x6_noinward"};

std::vector<uint8_t> bytes(const Tensor& t) {
  std::vector<float> v = t.to_vector();
  return {v.begin(), v.end()};
}

// Max |a - b| over `ref`, and max |ref|.
std::pair<double, double> max_error(const Tensor& got, const Tensor& ref) {
  const std::vector<float> a = got.contiguous().to_vector(), b = ref.contiguous().to_vector();
  EXPECT_EQ(a.size(), b.size());
  double err = 0, top = 0;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) {
    err = std::max(err, double(std::fabs(a[i] - b[i])));
    top = std::max(top, double(std::fabs(b[i])));
  }
  return {err, top};
}

// [heads, L, d] -> [1, L, heads, d]
Tensor blhd(const Tensor& t) { return t.permute({1, 0, 2}).unsqueeze(0); }
// [1, L, heads, d] -> [heads, L, d]
Tensor hld(const Tensor& t) { return t.squeeze(0).permute({1, 0, 2}); }

// FreeSwim's window (spec §5.1) over canonical tokens, inward or clipped at the borders.
std::vector<uint8_t> reference_mask(int64_t T, int64_t H, int64_t W, int64_t dh, int64_t dw, bool inward) {
  const int64_t n = T * H * W;
  auto allowed = [&](int64_t x, int64_t y, int64_t L, int64_t d) {
    if (!inward) return std::abs(x - y) <= d;
    if (2 * d + 1 > L) return true;
    const int64_t start = std::clamp(x - d, int64_t(0), L - 1 - 2 * d);
    return start <= y && y <= start + 2 * d;
  };
  std::vector<uint8_t> mask(size_t(n * n));
  for (int64_t q = 0; q < n; ++q)
    for (int64_t k = 0; k < n; ++k)
      mask[size_t(q * n + k)] = allowed(q / W % H, k / W % H, H, dh) && allowed(q % W, k % W, W, dw);
  return mask;
}

}  // namespace

TEST(AttentionSlidingWindow, GoldenMaskScaleAndBranches) {
  for (const char* name : kCases) {
    SCOPED_TRACE(name);
    const json config = json::parse(std::ifstream(kDir + name + "/config.json"));
    const auto data = weights::Checkpoint::open(kDir + name + "/data.safetensors");
    const TokenLayout layout = layout_from_json(config["layout"], name);
    const int64_t n = config["tokens_q"], d = config["head_dim"];
    const json& params = config["params"];

    // Mask and block classes in canonical order (FreeSwim's own order).
    json canonical = params;
    canonical["tile_shape"] = "none";
    const auto kind = make_kind("sliding-window", canonical);
    const KindMask m = kind->mask(layout, n, n);
    const int64_t bs = params["block_size_for_block_class"];
    const BlockSchedule s = build_schedule(*m.rule, n, n, bs, bs);
    const std::vector<uint8_t> want = bytes(data.get("mask"));
    EXPECT_EQ(token_mask(s), want);
    const std::vector<BlockClass> classes = block_classes(s);
    const std::vector<uint8_t> classes_want = bytes(data.get("block_class"));
    ASSERT_EQ(classes.size(), classes_want.size());
    for (size_t i = 0; i < classes.size(); ++i) EXPECT_EQ(int(classes[i]), int(classes_want[i])) << "block " << i;
    const float scale = kind->scale(d);
    EXPECT_FLOAT_EQ(scale, config["scale"].get<float>());

    // Branch 0: the window through the block-sparse kernel (default tiles); branch 1: dense.
    const auto tiled = make_kind("sliding-window", params);
    const KindMask t = tiled->mask(layout, n, n);
    EXPECT_EQ(token_mask(build_schedule(*t.rule, n, n, 64, 64, t.q_order, t.k_order)), want);
    const BlockSchedule run = build_schedule(*t.rule, n, n, 64, 64, t.q_order, t.k_order);
    const Tensor q = data.get("q"), k = data.get("k"), v = data.get("v"), out = data.get("out"), lse = data.get("lse");
    Tensor lse0;
    const Tensor out0 =
        block_sparse_attention(blhd(q.select(0, 0)), blhd(k.select(0, 0)), blhd(v.select(0, 0)), run, scale, &lse0);
    const auto [err0, top0] = max_error(hld(out0), out.select(0, 0));
    const auto [lse_err0, lse_top0] = max_error(lse0.squeeze(0), lse.select(0, 0));
    EXPECT_LE(err0, std::max(1e-5, 1e-4 * top0));
    EXPECT_LE(lse_err0, 1e-5);
    EXPECT_FALSE(tiled->dense_at(Site{}));
    Site full_branch;
    full_branch.pass = Pass::FullBranch;
    EXPECT_TRUE(tiled->dense_at(full_branch));
    const Tensor out1 = dense_attention(blhd(q.select(0, 1)), blhd(k.select(0, 1)), blhd(v.select(0, 1)), scale);
    const auto [err1, top1] = max_error(hld(out1), out.select(0, 1));
    EXPECT_LE(err1, std::max(1e-5, 1e-4 * top1));
    (void)lse_top0;

    // Cross-attention override: both branches get branch 1's cross-attention (scale 1/sqrt(d)).
    const Tensor cross = dense_attention(blhd(data.get("q_cross").select(0, 1)), blhd(data.get("k_text")),
                                         blhd(data.get("v_text")), float(params["cross_scale"].get<double>()));
    for (int64_t b = 0; b < 2; ++b) {
      const auto [err, top] = max_error(hld(cross), data.get("out_cross").select(0, b));
      EXPECT_LE(err, std::max(1e-5, 1e-4 * top)) << "branch " << b;
    }
    std::printf("[ sliding-window ] %s: branch 0 out err %.3g lse err %.3g, branch 1 out err %.3g\n", name, err0,
                lse_err0, err1);
  }
}

TEST(AttentionSlidingWindow, WindowOnOtherLayouts) {
  struct Case {
    int64_t t, h, w;
    json params;
    int64_t dh, dw;
    bool inward;
  };
  const Case cases[] = {
      {2, 9, 13, {{"train_tokens_hw", {6, 8}}}, 3, 4, true},
      {3, 5, 7, {{"train_tokens_hw", {12, 4}}}, 6, 2, true},  // window taller than the grid: every row
      {2, 9, 13, {{"train_tokens_hw", {5, 9}}, {"inward", false}}, 2, 4, false},
      {1, 17, 20, {{"train_tokens_hw", {6, 6}}, {"tile_shape", {1, 4, 8}}}, 3, 3, true},
      {2, 7, 30, {{"train_tokens_hw", {4, 40}}, {"inward", false}, {"tile_shape", "none"}}, 2, 20, false},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.params.dump());
    TokenLayout l;
    l.frames = c.t, l.height = c.h, l.width = c.w;
    const int64_t n = l.grid_tokens();
    const KindMask m = make_kind("freeswim", c.params)->mask(l, n, n);
    const std::vector<uint8_t> want = reference_mask(c.t, c.h, c.w, c.dh, c.dw, c.inward);
    for (auto [qb, kb] : {std::pair<int64_t, int64_t>{64, 64}, {16, 48}, {5, 7}})
      EXPECT_EQ(token_mask(build_schedule(*m.rule, n, n, qb, kb, m.q_order, m.k_order)), want) << qb << "x" << kb;
  }
}

TEST(AttentionSlidingWindow, Parameters) {
  const auto kind = make_kind("sliding-window");
  const json& p = kind->params();
  EXPECT_EQ(p["train_tokens_hw"], json({30, 52}));
  EXPECT_EQ(p["inward"], true);
  EXPECT_EQ(p["cache_steps"], 2);
  EXPECT_EQ(p["dual_path"], true);
  EXPECT_EQ(p["tile_shape"], "auto");
  EXPECT_NEAR(kind->scale(128), std::sqrt(std::log(3120.0) / std::log(1560.0) / 128), 1e-7);
  EXPECT_FLOAT_EQ(make_kind("freeswim", {{"scale", 0.25}})->scale(128), 0.25f);
  EXPECT_EQ(make_kind("freeswim", {{"cache_steps", 1}, {"dual_path", false}})->params()["dual_path"], false);
  const json parsed = parse_kind("freeswim:train_tokens_hw=15x26,inward=false,cache_steps=1")->params();
  EXPECT_EQ(parsed["train_tokens_hw"], json({15, 26}));
  EXPECT_EQ(parsed["inward"], false);
  EXPECT_EQ(parsed["cache_steps"], 1);

  using test::expect_error;
  expect_error([] { make_kind("sliding-window", {{"window", 3}}); }, {"sliding-window", "unknown parameter 'window'"});
  expect_error([] { make_kind("sliding-window", {{"train_tokens_hw", 30}}); }, "train_tokens_hw");
  expect_error([] { make_kind("sliding-window", {{"train_tokens_hw", {30, 0}}}); }, "train_tokens_hw");
  expect_error([] { make_kind("sliding-window", {{"inward", "yes"}}); }, "inward must be true or false");
  expect_error([] { make_kind("sliding-window", {{"cache_steps", 0}}); }, "cache_steps");
  expect_error([] { make_kind("sliding-window", {{"tile_shape", {8, 8}}}); }, {"tile_shape", "3 entries"});
  expect_error([] { make_kind("sliding-window", {{"scale", -1}}); }, "scale");
}

// Not a speed test: prints what building the schedule costs at Wan 480p for a model trained at
// half that size (a 2x upscale: window 15x27 over 30x52), and how sparse it is.
TEST(AttentionSlidingWindow, ScheduleAtWan480p) {
  TokenLayout l;
  l.frames = 21, l.height = 30, l.width = 52;
  const int64_t n = l.grid_tokens();
  const auto start = std::chrono::steady_clock::now();
  const KindMask m = make_kind("sliding-window", {{"train_tokens_hw", {15, 26}}})->mask(l, n, n);
  const BlockSchedule s = build_schedule(*m.rule, n, n, 64, 64, m.q_order, m.k_order);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const std::vector<BlockClass> c = block_classes(s);
  std::printf("[ sliding-window ] Wan 480p 21x30x52, train 15x26 (tiles 1x8x8): %.3f s, density %.4f, block density "
              "%.4f, %lld full + %lld partial of %lld blocks\n",
              seconds, s.density(), s.block_density(), (long long)std::count(c.begin(), c.end(), BlockClass::Full),
              (long long)std::count(c.begin(), c.end(), BlockClass::Partial), (long long)c.size());
  EXPECT_EQ(s.visible_pairs, n * 21 * 15 * 27);
}
