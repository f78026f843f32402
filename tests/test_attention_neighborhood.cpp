// The "neighborhood" kind (NATTEN / GNA) against the goldens of tests/data/golden/attention
// (README there): executed token mask, block classes in canonical and tile order, the tile
// permutation, neighbours per query, classify() exactness, the block-sparse output and lse;
// random configurations (ranks 1-3, even kernels, stride, dilation, causal axes, tiles with
// padding, text) against the spec's predicate written out here; parameter errors; and schedule
// builds at Wan 480p (time, density and block counts printed).
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <numeric>
#include <random>

#include "attention/block_sparse.h"
#include "attention/kind.h"
#include "attention/neighborhood.h"
#include "attention/plan.h"
#include "attention_golden.h"
#include "test_util.h"
#include "weights/checkpoint.h"

using namespace ditkit;
using namespace ditkit::attention;
using nlohmann::json;

namespace {

const std::string kDir = test::kGolden + "attention/";

const char* kCases[] = {"natten_1d_l40_k7",
                        "natten_1d_l37_k6_s2_d3_causal",
                        "natten_2d_12x14_k5x7_d2x1",
                        "natten_2d_16x16_k12_s4_tile4x4_gna",
                        "natten_3d_4x8x10_k3x5x5_s1x2x3_d1x1x2_causalT",
                        "natten_3d_4x8x8_blocked_k2x4x4_text12"};

struct Golden {
  json config;
  weights::Checkpoint data;
  TokenLayout layout;
  int64_t q_tokens = 0, k_tokens = 0;
};

Golden load(const std::string& name) {
  Golden g{json::parse(std::ifstream(kDir + name + "/config.json")),
           weights::Checkpoint::open(kDir + name + "/data.safetensors"), {}};
  g.layout = layout_from_json(g.config["layout"], name);
  g.q_tokens = g.config["tokens_q"].get<int64_t>();
  g.k_tokens = g.config["tokens_k"].get<int64_t>();
  return g;
}

template <typename T>
std::vector<T> values(const Tensor& t) {
  std::vector<float> v = t.to_vector();
  return {v.begin(), v.end()};
}

// The golden's parameters with another tile_shape.
json with_tiles(json params, const json& tile_shape) {
  params["tile_shape"] = tile_shape;
  return params;
}

// The mask over kernel positions: mask[order_q[p], order_k[r]], 0 where either is padding.
std::vector<uint8_t> in_kernel_order(const std::vector<uint8_t>& mask, int64_t k_tokens, const std::vector<int64_t>& qo,
                                     const std::vector<int64_t>& ko) {
  std::vector<uint8_t> out(qo.size() * ko.size());
  for (size_t p = 0; p < qo.size(); ++p)
    for (size_t r = 0; r < ko.size(); ++r)
      if (qo[p] >= 0 && ko[r] >= 0) out[p * ko.size() + r] = mask[size_t(qo[p] * k_tokens + ko[r])];
  return out;
}

std::vector<int64_t> identity(int64_t n) {
  std::vector<int64_t> v(static_cast<size_t>(n));
  std::iota(v.begin(), v.end(), int64_t(0));
  return v;
}

// classify() never answers Full or Empty wrongly, and answers them wherever a block without
// padding slots is all or nothing visible (blocks with padding are resolved element by element
// anyway): every block of the given shape.
void expect_exact_classes(const MaskRule& rule, const std::vector<uint8_t>& mask, const std::vector<int64_t>& qo,
                          const std::vector<int64_t>& ko, int64_t q_block, int64_t k_block) {
  const int64_t lq = int64_t(qo.size()), lk = int64_t(ko.size());
  for (int64_t q0 = 0; q0 < lq; q0 += q_block)
    for (int64_t k0 = 0; k0 < lk; k0 += k_block) {
      const int64_t q1 = std::min(q0 + q_block, lq), k1 = std::min(k0 + k_block, lk);
      int64_t visible = 0, real = 0;
      for (int64_t q = q0; q < q1; ++q)
        for (int64_t k = k0; k < k1; ++k) {
          visible += mask[size_t(q * lk + k)];
          real += qo[size_t(q)] >= 0 && ko[size_t(k)] >= 0;
        }
      const BlockClass got = rule.classify(q0, q1, k0, k1);
      const std::string where = "block " + std::to_string(q_block) + "x" + std::to_string(k_block) + " at " +
                                std::to_string(q0) + ", " + std::to_string(k0);
      if (got == BlockClass::Full) {
        ASSERT_EQ(visible, real) << where;
      } else if (got == BlockClass::Empty) {
        ASSERT_EQ(visible, 0) << where;
      } else if (real == (q1 - q0) * (k1 - k0)) {
        ASSERT_TRUE(visible != 0 && visible != real) << where << ": Partial, but " << visible << " of " << real;
      }
    }
}

// The GNA predicate of spec §3.2 on one axis, written out as the spec states it.
bool spec_axis(int64_t L, int64_t k, int64_t s, int64_t d, bool causal, int64_t x, int64_t y) {
  if (x % d != y % d) return false;
  const int64_t g = x % d, xg = x / d, yg = y / d, Lg = (L - g + d - 1) / d;
  const int64_t wl = k / 2, wr = k - 1 - wl;
  if (causal) {
    const int64_t leader = std::min(xg / s * s + s - 1, Lg - 1);
    return std::max<int64_t>(leader - k + 1, 0) <= yg && yg <= xg;
  }
  const int64_t leader = std::min(xg / s * s + s / 2, Lg - 1);
  const int64_t c = std::clamp(leader, wl, Lg - 1 - wr);
  return c - wl <= yg && yg <= c + wr;
}

struct Config {
  std::array<int64_t, 3> shape, kernel, stride, dilation;
  std::array<bool, 3> causal;
};

// The spec's mask over canonical tokens with the joint text rule (§0.1 / §3.3).
std::vector<uint8_t> reference_mask(const Config& c, const TokenLayout& l, int64_t q_tokens, int64_t k_tokens) {
  const int64_t g = l.grid_tokens(), before = l.text_position == TextPosition::Prefix ? l.text_tokens : 0;
  std::vector<uint8_t> mask(size_t(q_tokens * k_tokens));
  for (int64_t q = 0; q < q_tokens; ++q)
    for (int64_t k = 0; k < k_tokens; ++k) {
      const int64_t a = q - before, b = k - before;
      bool visible = true;
      if (a >= 0 && a < g && b >= 0 && b < g) {
        const int64_t xa[3] = {a / (l.height * l.width), a / l.width % l.height, a % l.width};
        const int64_t xb[3] = {b / (l.height * l.width), b / l.width % l.height, b % l.width};
        for (int i = 0; i < 3; ++i)
          visible = visible && spec_axis(c.shape[size_t(i)], c.kernel[size_t(i)], c.stride[size_t(i)],
                                         c.dilation[size_t(i)], c.causal[size_t(i)], xa[i], xb[i]);
      }
      mask[size_t(q * k_tokens + k)] = visible && (l.valid_keys < 0 || k < l.valid_keys);
    }
  return mask;
}

int64_t count(const std::vector<BlockClass>& classes, BlockClass c) {
  return std::count(classes.begin(), classes.end(), c);
}

}  // namespace

TEST(AttentionNeighborhood, GoldenMaskBlockClassesAndTileOrder) {
  for (const char* name : kCases) {
    SCOPED_TRACE(name);
    const Golden g = load(name);
    const int64_t nq = g.q_tokens, nk = g.k_tokens, bs = g.config["params"]["block_size_for_block_class"];
    const std::vector<uint8_t> want = values<uint8_t>(g.data.get("mask"));

    // Canonical order.
    const KindMask m = make_neighborhood_kind(with_tiles(g.config["params"], "none"))->mask(g.layout, nq, nk);
    ASSERT_TRUE(m.q_order.empty() && m.k_order.empty());
    const BlockSchedule s = build_schedule(*m.rule, nq, nk, bs, bs);
    EXPECT_EQ(token_mask(s), want);
    const std::vector<BlockClass> classes = block_classes(s);
    const std::vector<uint8_t> classes_want = values<uint8_t>(g.data.get("block_class"));
    ASSERT_EQ(classes.size(), classes_want.size());
    for (size_t i = 0; i < classes.size(); ++i) EXPECT_EQ(int(classes[i]), int(classes_want[i])) << "block " << i;
    EXPECT_NEAR(s.density(), g.config["mask_density"].get<double>(), 1e-9);
    for (auto [qb, kb] : {std::pair<int64_t, int64_t>{bs, bs}, {64, 64}, {7, 13}, {32, 5}})
      expect_exact_classes(*m.rule, want, identity(nq), identity(nk), qb, kb);

    // Neighbours per query (grid keys only; the additional keys come on top).
    const int64_t grid = g.layout.grid_tokens();
    int64_t least = grid, most = 0;
    for (int64_t q = 0; q < nq; ++q) {
      const int64_t n = std::count(want.begin() + q * nk, want.begin() + q * nk + grid, 1);
      least = std::min(least, n), most = std::max(most, n);
      EXPECT_EQ(std::count(want.begin() + q * nk + grid, want.begin() + (q + 1) * nk, 1), nk - grid);
    }
    EXPECT_EQ(least, g.config["neighbours_per_query"]["min"].get<int64_t>());
    EXPECT_EQ(most, g.config["neighbours_per_query"]["max"].get<int64_t>());

    // The golden's tile order.
    if (!g.config["params"].contains("tile_shape")) continue;
    const KindMask t = make_neighborhood_kind(g.config["params"])->mask(g.layout, nq, nk);
    const std::vector<int64_t> perm = values<int64_t>(g.data.get("perm"));
    EXPECT_EQ(t.q_order, perm);
    std::vector<int64_t> keys = perm;
    for (int64_t k = grid; k < nk; ++k) keys.push_back(k);
    EXPECT_EQ(t.k_order, keys);
    const int64_t tile = g.config["params"]["tile_tokens"];
    const BlockSchedule ts = build_schedule(*t.rule, nq, nk, tile, tile, t.q_order, t.k_order);
    EXPECT_EQ(token_mask(ts), want);
    // The golden's classes cover the grid keys; the additional keys are one more column here.
    const std::vector<BlockClass> tc = block_classes(ts);
    const std::vector<uint8_t> tc_want = values<uint8_t>(g.data.get("block_class_permuted"));
    const int64_t cols = int64_t(std::sqrt(double(tc_want.size())));
    ASSERT_EQ(ts.q_blocks() * cols, int64_t(tc_want.size()));
    int64_t full = 0;
    for (int64_t i = 0; i < ts.q_blocks(); ++i)
      for (int64_t j = 0; j < cols; ++j) {
        EXPECT_EQ(int(tc[size_t(i * ts.k_blocks() + j)]), int(tc_want[size_t(i * cols + j)])) << i << ", " << j;
        full += tc[size_t(i * ts.k_blocks() + j)] == BlockClass::Full;
      }
    const json& p = g.config["params"];
    EXPECT_EQ(full, p["permuted_full_blocks"].get<int64_t>());
    EXPECT_EQ(int64_t(perm.size()) - grid, p["padding_slots"].get<int64_t>());
    const std::vector<uint8_t> permuted = in_kernel_order(want, nk, t.q_order, t.k_order);
    for (auto [qb, kb] : {std::pair<int64_t, int64_t>{tile, tile}, {64, 64}, {7, 13}, {48, 16}})
      expect_exact_classes(*t.rule, permuted, t.q_order, t.k_order, qb, kb);
  }
}

TEST(AttentionNeighborhood, OutputAndLseMatchGolden) {
  for (const char* name : kCases) {
    const Golden g = load(name);
    // The golden's tiles where it names them, else the default tiles; and canonical order.
    for (const json& tiles : {g.config["params"].value("tile_shape", json("auto")), json("none")}) {
      SCOPED_TRACE(std::string(name) + " tile_shape " + tiles.dump());
      const auto kind = make_neighborhood_kind(with_tiles(g.config["params"], tiles));
      const KindMask m = kind->mask(g.layout, g.q_tokens, g.k_tokens);
      const BlockSchedule s = build_schedule(*m.rule, g.q_tokens, g.k_tokens, 64, 64, m.q_order, m.k_order);
      test::expect_engine_matches_golden(*kind, s, g.data, g.config["scale"].get<float>(),
                                         std::string(name) + " tile_shape " + tiles.dump());
    }
  }
}

TEST(AttentionNeighborhood, RandomConfigsMatchTheSpecPredicate) {
  std::mt19937 rng(7);
  auto pick = [&](int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(rng); };
  const TextPosition positions[] = {TextPosition::None, TextPosition::Prefix, TextPosition::Suffix,
                                    TextPosition::AdditionalKV};
  for (int trial = 0; trial < 150; ++trial) {
    const int rank = int(pick(1, 3));
    Config c{{1, 1, 1}, {1, 1, 1}, {1, 1, 1}, {1, 1, 1}, {false, false, false}};
    json kernel = json::array(), stride = json::array(), dilation = json::array(), causal = json::array(),
         tiles = json::array();
    for (int i = 3 - rank; i < 3; ++i) {
      const size_t a = size_t(i);
      c.shape[a] = pick(1, rank == 1 ? 40 : rank == 2 ? 14 : 7);
      c.dilation[a] = pick(1, std::min<int64_t>(3, c.shape[a]));
      c.kernel[a] = pick(1, c.shape[a] / c.dilation[a]);
      c.stride[a] = pick(1, c.kernel[a]);
      c.causal[a] = pick(0, 3) == 0;
      kernel.push_back(c.kernel[a]), stride.push_back(c.stride[a]), dilation.push_back(c.dilation[a]);
      causal.push_back(c.causal[a]), tiles.push_back(pick(1, 5));
    }
    const json tile_shape = trial % 3 == 0 ? json("none") : trial % 3 == 1 ? json("auto") : tiles;
    const json params = {{"kernel_size", kernel}, {"stride", stride},         {"dilation", dilation},
                         {"is_causal", causal},   {"tile_shape", tile_shape}};
    TokenLayout l;
    l.frames = c.shape[0], l.height = c.shape[1], l.width = c.shape[2];
    l.text_position = positions[trial % 4];
    if (l.text_position != TextPosition::None) l.text_tokens = pick(1, 9);
    if (l.text_position == TextPosition::Suffix || l.text_position == TextPosition::AdditionalKV)
      l.valid_keys = l.grid_tokens() + pick(1, l.text_tokens);
    const int64_t g = l.grid_tokens(), nk = g + l.text_tokens;
    const int64_t nq = l.text_position == TextPosition::AdditionalKV ? g : nk;
    SCOPED_TRACE(params.dump() + " on " + std::to_string(l.frames) + "x" + std::to_string(l.height) + "x" +
                 std::to_string(l.width) + " text " + std::to_string(l.text_tokens));
    const KindMask m = make_neighborhood_kind(params)->mask(l, nq, nk);
    const std::vector<uint8_t> want = reference_mask(c, l, nq, nk);
    const std::vector<int64_t> qo = m.q_order.empty() ? identity(nq) : m.q_order;
    const std::vector<int64_t> ko = m.k_order.empty() ? identity(nk) : m.k_order;
    const std::vector<uint8_t> permuted = in_kernel_order(want, nk, qo, ko);
    for (auto [qb, kb] : {std::pair<int64_t, int64_t>{64, 64}, {8, 8}, {5, 12}, {1, 3}}) {
      expect_exact_classes(*m.rule, permuted, qo, ko, qb, kb);
      EXPECT_EQ(token_mask(build_schedule(*m.rule, nq, nk, qb, kb, m.q_order, m.k_order)), want) << qb << "x" << kb;
    }
  }
}

TEST(AttentionNeighborhood, DefaultsAndTileOrder) {
  const auto kind = make_kind("neighborhood");
  EXPECT_EQ(kind->params()["kernel_size"], "half");
  EXPECT_EQ(kind->params()["stride"], 1);
  EXPECT_EQ(kind->params()["tile_shape"], "auto");
  EXPECT_FLOAT_EQ(kind->scale(64), 0.125f);
  EXPECT_EQ(make_kind("natten", {{"scale", 0.5}})->scale(64), 0.5f);
  EXPECT_FALSE(kind->dense_at(Site{}));
  // The command-line form: per-axis lists written with 'x'.
  const json parsed = parse_kind("natten:kernel_size=3x5x5,stride=1x2x2,is_causal=1x0x0,tile_shape=none")->params();
  EXPECT_EQ(parsed["kernel_size"], json({3, 5, 5}));
  EXPECT_EQ(parsed["is_causal"], json({1, 0, 0}));
  EXPECT_EQ(parsed["tile_shape"], "none");

  // A 5x12x20 video: kernel (3, 7, 11) ("half", odd), tiles (1, 8, 8) over 5x16x24 slots.
  TokenLayout l;
  l.frames = 5, l.height = 12, l.width = 20;
  const int64_t n = l.grid_tokens();
  const KindMask m = kind->mask(l, n, n);
  ASSERT_EQ(m.q_order.size(), size_t(5 * 16 * 24));
  EXPECT_EQ(m.q_order, m.k_order);
  // Tile (t, r_h, r_w) holds rows 8 r_h.. and columns 8 r_w.. of frame t, row-major inside.
  for (int64_t p = 0; p < int64_t(m.q_order.size()); ++p) {
    const int64_t tile = p / 64, o = p % 64, t = tile / 6, h = tile / 3 % 2 * 8 + o / 8, w = tile % 3 * 8 + o % 8;
    EXPECT_EQ(m.q_order[size_t(p)], h < 12 && w < 20 ? (t * 12 + h) * 20 + w : -1) << p;
  }
  const BlockSchedule s = build_schedule(*m.rule, n, n, 64, 64, m.q_order, m.k_order);
  const Config c{{5, 12, 20}, {3, 7, 11}, {1, 1, 1}, {1, 1, 1}, {false, false, false}};
  EXPECT_EQ(token_mask(s), reference_mask(c, l, n, n));
  EXPECT_EQ(s.visible_pairs, n * 3 * 7 * 11);

  // Scalars on an image are rank 2; "none" keeps the canonical order.
  l.frames = 1;
  const KindMask img = make_kind("neighborhood", {{"kernel_size", 5}, {"tile_shape", "none"}})->mask(l, 240, 240);
  EXPECT_TRUE(img.q_order.empty());
  EXPECT_EQ(token_mask(build_schedule(*img.rule, 240, 240, 64, 64)),
            reference_mask({{1, 12, 20}, {1, 5, 5}, {1, 1, 1}, {1, 1, 1}, {}}, l, 240, 240));
}

TEST(AttentionNeighborhood, ParameterErrors) {
  using test::expect_error;
  expect_error([] { make_kind("neighborhood", {{"kernel", 3}}); }, {"neighborhood", "unknown parameter 'kernel'"});
  expect_error([] { make_kind("neighborhood", {{"kernel_size", 0}}); }, {"kernel_size", "positive"});
  expect_error([] { make_kind("neighborhood", {{"kernel_size", "big"}}); }, "kernel_size");
  expect_error([] { make_kind("neighborhood", {{"kernel_size", {3, 5}}, {"stride", {1, 2, 1}}}); },
               {"stride", "3 axes", "kernel_size", "2"});
  expect_error([] { make_kind("neighborhood", {{"kernel_size", {3, 5}}, {"stride", {1, 6}}}); },
               {"stride 6 exceeds kernel_size 5 on axis w"});
  expect_error([] { make_kind("neighborhood", {{"dilation", -1}}); }, "dilation");
  expect_error([] { make_kind("neighborhood", {{"is_causal", "yes"}}); }, "is_causal");
  expect_error([] { make_kind("neighborhood", {{"tile_shape", "big"}}); }, "tile_shape");
  expect_error([] { make_kind("neighborhood", {{"tile_shape", {8, 0}}}); }, "tile_shape");
  expect_error([] { make_kind("neighborhood", {{"scale", "x"}}); }, "scale");

  TokenLayout video;
  video.frames = 4, video.height = 8, video.width = 10;
  const int64_t n = video.grid_tokens();
  expect_error([&] { make_kind("neighborhood", {{"kernel_size", {3, 9, 5}}})->mask(video, n, n); },
               {"kernel_size 9", "axis h", "length 8"});
  const json dilated = {{"kernel_size", {3, 3, 4}}, {"dilation", {1, 1, 3}}};
  expect_error([&] { make_kind("neighborhood", dilated)->mask(video, n, n); },
               {"kernel_size 4 x dilation 3", "axis w", "length 10"});
  expect_error([&] { make_kind("neighborhood", {{"kernel_size", 3}, {"stride", 4}}); },
               "stride 4 exceeds kernel_size 3");
  expect_error([&] { make_kind("neighborhood", {{"kernel_size", "half"}, {"stride", 4}})->mask(video, n, n); },
               {"stride 4 exceeds kernel_size 3", "axis t"});
  expect_error([&] { make_kind("neighborhood", {{"kernel_size", {3, 3}}})->mask(video, n, n); },
               {"kernel_size [3,3]", "rank-2", "single-frame", "4x8x10"});
  expect_error([&] { make_kind("neighborhood", {{"tile_shape", {8, 8}}})->mask(video, n, n); },
               {"tile_shape [8,8]", "rank-2", "single-frame"});
  expect_error([&] { make_kind("neighborhood")->mask(video, n, n + 1); }, {"neighborhood", "keys"});
}

// Not a speed test: prints what building the schedule costs at real sizes, and how sparse it is.
TEST(AttentionNeighborhood, ScheduleAtWan480p) {
  TokenLayout l;
  l.frames = 21, l.height = 30, l.width = 52;
  const int64_t n = l.grid_tokens();
  const std::pair<const char*, json> configs[] = {
      {"default (half: 11x15x27, tiles 1x8x8)", json::object()},
      {"GNA 9x24x24 stride 1x8x8, tiles 1x8x8", {{"kernel_size", {9, 24, 24}}, {"stride", {1, 8, 8}}}},
  };
  for (const auto& [what, params] : configs) {
    const auto start = std::chrono::steady_clock::now();
    const KindMask m = make_kind("neighborhood", params)->mask(l, n, n);
    const BlockSchedule s = build_schedule(*m.rule, n, n, 64, 64, m.q_order, m.k_order);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const std::vector<BlockClass> c = block_classes(s);
    std::printf("[ neighborhood ] Wan 480p 21x30x52 %s: %.3f s, density %.4f, block density %.4f, %lld full + %lld "
                "partial of %lld blocks\n",
                what, seconds, s.density(), s.block_density(), (long long)count(c, BlockClass::Full),
                (long long)count(c, BlockClass::Partial), (long long)c.size());
    EXPECT_GT(s.visible_pairs, 0);
  }
}

// GNA's fully block-sparse case (spec §3.4: stride a multiple of the tile, kernel a multiple of
// the tile, tile-aligned window starts): every visited 64-token tile is FULL.
TEST(AttentionNeighborhood, FullyBlockSparseImage) {
  TokenLayout l;
  l.height = 128, l.width = 128;
  const int64_t n = l.grid_tokens();
  const KindMask m = make_kind("neighborhood", {{"kernel_size", 40}, {"stride", 8}})->mask(l, n, n);
  const BlockSchedule s = build_schedule(*m.rule, n, n, 64, 64, m.q_order, m.k_order);
  const std::vector<BlockClass> c = block_classes(s);
  EXPECT_EQ(count(c, BlockClass::Partial), 0);
  EXPECT_EQ(count(c, BlockClass::Full), 256 * 25);  // 5x5 tiles of 8x8 per query tile
  EXPECT_EQ(s.visible_pairs, n * 40 * 40);
}
