// CUDA block-sparse attention (attention/block_sparse_cuda.*) against a naive float64 masked
// reference and the CPU backend on random schedules (sizes off the block grid, block shapes
// other than the kernel's 64 x 64, kernel orders with padding slots, empty rows and query
// blocks, B > 1, strided views, lse) in F32/F16/BF16, and against the attention goldens through
// the kinds (tolerances: tests/data/golden/attention/README.md). Every test skips without a GPU.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <numeric>
#include <random>

#include "attention/block_sparse.h"
#include "attention_reference.h"
#include "attention/plan.h"
#include "weights/checkpoint.h"

using namespace ditkit;
using attention::BlockClass;
using attention::BlockSchedule;

namespace {

const std::string kGolden = std::string(DITKIT_TEST_DATA) + "/golden/attention/";

#define SKIP_WITHOUT_GPU() \
  if (!cuda_available()) GTEST_SKIP() << "no CUDA GPU: the CUDA block-sparse kernel needs one"

Tensor random_normal(const Shape& shape, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> n(0.0f, 1.0f);
  std::vector<float> x(size_t(shape_numel(shape)));
  for (float& e : x) e = n(rng);
  return Tensor::from_vector(x, shape);
}

uint64_t mix(uint64_t x) {  // splitmix64: a fixed pseudo-random function of the pair
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// Random visibility with exact block classes: each (query block, key block) is Empty, Full or
// element-random; query block 1 sees nothing, and in odd query blocks every 7th row sees nothing
// (Full is only drawn for even query blocks, so it never lies).
class RandomRule : public attention::MaskRule {
 public:
  RandomRule(uint64_t seed, int64_t q_block, int64_t k_block, double density)
      : seed_(seed), q_block_(q_block), k_block_(k_block), density_(density) {}

  bool visible(int64_t qp, int64_t kp) const override {
    const int64_t qb = qp / q_block_;
    const BlockClass c = block(qb, kp / k_block_);
    if (c != BlockClass::Partial) return c == BlockClass::Full;
    if (qb % 2 == 1 && qp % 7 == 3) return false;
    return double(mix(seed_ ^ mix(uint64_t(qp) << 32 ^ uint64_t(kp))) >> 11) * 0x1.0p-53 < density_;
  }
  BlockClass classify(int64_t q0, int64_t, int64_t k0, int64_t) const override {
    return block(q0 / q_block_, k0 / k_block_);
  }

 private:
  BlockClass block(int64_t qb, int64_t kb) const {
    if (qb == 1) return BlockClass::Empty;
    const uint64_t r = mix(seed_ + uint64_t(qb) * 1000003u + uint64_t(kb)) % 8;
    if (r < 2) return BlockClass::Empty;
    if (r < 4 && qb % 2 == 0) return BlockClass::Full;
    return BlockClass::Partial;
  }

  uint64_t seed_;
  int64_t q_block_, k_block_;
  double density_;
};

// A kernel order over `tokens`: shuffled (or identity) with `padding` slots (-1) at random places;
// empty when it would be the identity.
std::vector<int64_t> make_order(int64_t tokens, int64_t padding, bool shuffle, uint32_t seed) {
  if (!shuffle && padding == 0) return {};
  std::vector<int64_t> order(static_cast<size_t>(tokens));
  std::iota(order.begin(), order.end(), 0);
  std::mt19937 rng(seed);
  if (shuffle) std::shuffle(order.begin(), order.end(), rng);
  for (int64_t i = 0; i < padding; ++i)
    order.insert(order.begin() + int64_t(rng() % (order.size() + 1)), int64_t(-1));
  return order;
}

using Reference = test::AttentionReference;

// Tolerances of the goldens README by input dtype.
struct Tolerance {
  double out_abs, out_rel, lse, min_cos;
};
Tolerance tolerance(DType t) {
  if (t == DType::BF16) return {2e-2, 0, 2e-2, 0.999};
  if (t == DType::F16) return {5e-3, 0, 2e-2, 0.999};
  return {1e-5, 1e-4, 1e-5, 0.99999};
}

// Checks out [B, Lq, H, D] and lse [B, H, Lq] against the reference; rows without a visible key
// must be exactly 0 with lse -inf.
void expect_close(const Reference& ref, const Tensor& out, const Tensor& lse, int64_t D, Tolerance tol,
                  const std::string& what) {
  SCOPED_TRACE(what);
  const std::vector<float> y = out.to_vector(), l = lse.to_vector();
  ASSERT_EQ(y.size(), ref.out.size());
  ASSERT_EQ(l.size(), ref.lse.size());
  double max_abs = 0, max_ref = 0, min_cos = 1;
  for (size_t r = 0; r < y.size(); r += size_t(D)) {
    double dot = 0, na = 0, nb = 0;
    for (size_t i = r; i < r + size_t(D); ++i) {
      ASSERT_TRUE(std::isfinite(y[i])) << "output element " << i;
      max_abs = std::max(max_abs, std::fabs(ref.out[i] - y[i]));
      max_ref = std::max(max_ref, std::fabs(ref.out[i]));
      dot += ref.out[i] * y[i];
      na += ref.out[i] * ref.out[i];
      nb += double(y[i]) * y[i];
    }
    if (na > 0) min_cos = std::min(min_cos, dot / std::sqrt(na * nb + 1e-300));
  }
  EXPECT_LE(max_abs, std::max(tol.out_abs, tol.out_rel * max_ref));
  EXPECT_GE(min_cos, tol.min_cos);
  double lse_err = 0;
  for (size_t i = 0; i < l.size(); ++i) {
    if (ref.lse[i] == -INFINITY) {
      EXPECT_EQ(l[i], -INFINITY) << "lse " << i << " of a row without visible keys";
    } else {
      lse_err = std::max(lse_err, std::fabs(ref.lse[i] - l[i]));
    }
  }
  EXPECT_LE(lse_err, tol.lse);
}

// Rows of `ref` that see no key, for the test's own sanity: the cases must contain some.
int64_t empty_rows(const Reference& ref) {
  return std::count(ref.lse.begin(), ref.lse.end(), -INFINITY);
}

struct Case {
  int64_t B, Lq, Lk, H, D, q_block, k_block, q_pad, k_pad;
  bool shuffle, strided;
  DType dtype;
  double density;
};

std::string describe(const Case& c) {
  return testing::PrintToString(std::vector<int64_t>{c.B, c.Lq, c.Lk, c.H, c.D, c.q_block, c.k_block, c.q_pad,
                                                     c.k_pad}) +
         (c.shuffle ? " shuffled" : "") + (c.strided ? " strided" : "") + " " + dtype_name(c.dtype);
}

}  // namespace

TEST(AttentionBlockSparseCuda, RandomSchedulesMatchReferences) {
  SKIP_WITHOUT_GPU();
  const Device gpu = Device::cuda(0);
  // B, Lq, Lk, H, D, q_block, k_block, q padding, k padding, shuffle, strided, dtype, density.
  // Block shapes: the kernel's 64 x 64, query blocks split over CTAs (128) or smaller than one
  // (32), key blocks of several steps with a short last one (80, 130); head_dim padded up to the
  // instantiated 64/128/256, and any head_dim for F32.
  const Case cases[] = {
      {1, 200, 200, 2, 64, 64, 64, 0, 0, false, false, DType::F32, 0.3},
      {2, 150, 170, 3, 20, 64, 64, 10, 14, true, true, DType::F32, 0.5},
      {1, 190, 150, 2, 256, 128, 80, 3, 0, true, false, DType::F32, 0.4},
      {1, 300, 260, 2, 128, 128, 128, 9, 5, true, false, DType::BF16, 0.3},
      {2, 97, 131, 2, 64, 64, 130, 4, 7, true, true, DType::BF16, 0.6},
      {1, 200, 200, 2, 128, 64, 64, 0, 0, false, false, DType::BF16, 0.2},
      {1, 130, 190, 1, 256, 32, 80, 0, 6, false, false, DType::F16, 0.5},
      {1, 140, 140, 2, 40, 64, 64, 5, 5, true, true, DType::F16, 0.4},
      {1, 333, 333, 1, 128, 64, 64, 0, 0, true, false, DType::F16, 0.7},
  };
  uint32_t seed = 100;
  for (const Case& c : cases) {
    SCOPED_TRACE(describe(c));
    ++seed;
    RandomRule rule(seed, c.q_block, c.k_block, c.density);
    const BlockSchedule s =
        attention::build_schedule(rule, c.Lq, c.Lk, c.q_block, c.k_block, make_order(c.Lq, c.q_pad, c.shuffle, seed),
                                  make_order(c.Lk, c.k_pad, c.shuffle, seed + 1));
    // The canonical mask straight from the rule (not from the schedule under test).
    std::vector<uint8_t> mask(size_t(c.Lq * c.Lk), 0);
    for (int64_t qp = 0; qp < s.q_len; ++qp)
      for (int64_t kp = 0; kp < s.k_len; ++kp)
        if (s.q_token(qp) >= 0 && s.k_token(kp) >= 0)
          mask[size_t(s.q_token(qp) * c.Lk + s.k_token(kp))] = rule.visible(qp, kp);

    Tensor q, k, v;
    if (c.strided) {  // q with heads outer, k and v halves of one fused [B, Lk, H, 2D]
      q = random_normal({c.B, c.H, c.Lq, c.D}, seed).to(c.dtype).permute({0, 2, 1, 3});
      Tensor kv = random_normal({c.B, c.Lk, c.H, 2 * c.D}, seed + 2).to(c.dtype);
      k = kv.narrow(3, 0, c.D);
      v = kv.narrow(3, c.D, c.D);
    } else {
      q = random_normal({c.B, c.Lq, c.H, c.D}, seed).to(c.dtype);
      k = random_normal({c.B, c.Lk, c.H, c.D}, seed + 2).to(c.dtype);
      v = random_normal({c.B, c.Lk, c.H, c.D}, seed + 3).to(c.dtype);
    }
    const float scale = 1.0f / std::sqrt(float(c.D));
    // Against the exact result of the (rounded) inputs.
    const Reference ref = test::naive_attention(q, k, v, scale, mask);
    ASSERT_GT(empty_rows(ref), 0);

    Tensor lse;
    Tensor out = attention::block_sparse_attention(q.to(gpu), k.to(gpu), v.to(gpu), s, scale, &lse);
    ASSERT_TRUE(out.device() == gpu);
    EXPECT_EQ(out.dtype(), c.dtype);
    ASSERT_EQ(lse.shape(), (Shape{c.B, c.H, c.Lq}));
    expect_close(ref, out, lse, c.D, tolerance(c.dtype), "cuda vs naive");

    // The CPU backend computes the same function (both within tolerance of the reference).
    Tensor cpu_lse;
    Tensor cpu = attention::block_sparse_attention(q, k, v, s, scale, &cpu_lse);
    expect_close(ref, cpu, cpu_lse, c.D, tolerance(c.dtype), "cpu vs naive");

    // A second call reuses the uploaded schedule and gives the same bits.
    Tensor again = attention::block_sparse_attention(q.to(gpu), k.to(gpu), v.to(gpu), s, scale);
    EXPECT_EQ(again.to_vector(), out.to_vector());
  }
}

TEST(AttentionBlockSparseCuda, RejectsWhatItCannotRun) {
  SKIP_WITHOUT_GPU();
  const Device gpu = Device::cuda(0);
  RandomRule rule(7, 64, 64, 0.5);
  const BlockSchedule s = attention::build_schedule(rule, 70, 70, 64, 64);
  auto message = [&](int64_t D, DType t) {
    Tensor x = random_normal({1, 70, 1, D}, 3).to(t).to(gpu);
    try {
      attention::block_sparse_attention(x, x, x, s, 0.5f);
    } catch (const ditkit::Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message(20, DType::BF16).find("multiple of 8"), std::string::npos);
  EXPECT_NE(message(264, DType::F32).find("head_dim up to 256"), std::string::npos);
  EXPECT_EQ(message(20, DType::F32), "no error");
}

TEST(AttentionBlockSparseCuda, GoldensThroughKinds) {
  SKIP_WITHOUT_GPU();
  const Device gpu = Device::cuda(0);
  for (const char* name :
       {"radial_wan_t8h8w16_bs32_df1", "radial_hunyuan_t5h12w20_bs64_df095_text24v17", "natten_1d_l40_k7",
        "natten_1d_l37_k6_s2_d3_causal", "natten_2d_12x14_k5x7_d2x1", "natten_2d_16x16_k12_s4_tile4x4_gna",
        "natten_3d_4x8x10_k3x5x5_s1x2x3_d1x1x2_causalT", "natten_3d_4x8x8_blocked_k2x4x4_text12",
        "freeswim_t3h12w16_train6x8", "freeswim_t2h10w12_train4x6_noinward", "grat_x_3d_t4h12w16_g2x4x4_text32v20",
        "grat_b_3d_t4h12w16_g2x4x4_r1_text32v20", "grat_x_2d_h16w24_g4x4_textprefix16"}) {
    SCOPED_TRACE(name);
    const std::string dir = kGolden + name;
    const nlohmann::json config = nlohmann::json::parse(std::ifstream(dir + "/config.json"));
    const attention::Plan plan = attention::Plan::from_json(config, dir + "/config.json");
    const attention::TokenLayout layout = attention::layout_from_json(config["layout"], dir + "/config.json");
    const int64_t q_tokens = config["tokens_q"].get<int64_t>(), k_tokens = config["tokens_k"].get<int64_t>();
    const auto schedule = attention::cached_schedule(plan.default_kind(), layout, q_tokens, k_tokens,
                                                     attention::kernel_block_shape(gpu));

    auto file = weights::Checkpoint::open(dir + "/data.safetensors");
    // A wrong mask is the kind's fault, not the kernel's: say so first.
    const std::vector<float> golden_mask = file.get("mask").to_vector();
    const std::vector<uint8_t> mask = attention::token_mask(*schedule);
    if (std::vector<float>(mask.begin(), mask.end()) != golden_mask) {
      ADD_FAILURE() << "the kind's executed mask differs from the golden's";
      continue;
    }

    // [heads, tokens, D] (FreeSwim: [2, heads, tokens, D], branch 0 = the windowed one) as [1, tokens, heads, D].
    const bool branches = config["kind"].get<std::string>() == "freeswim";
    auto blhd = [&](const char* n) {
      Tensor t = file.get(n);
      if (branches) t = t.select(0, 0);
      return t.permute({1, 0, 2}).unsqueeze(0);
    };
    Tensor q = blhd("q"), k = blhd("k"), v = blhd("v"), golden_lse = file.get("lse");
    if (branches) golden_lse = golden_lse.select(0, 0);
    const std::vector<float> out = blhd("out").contiguous().to_vector(), lse = golden_lse.contiguous().to_vector();
    const Reference ref{{out.begin(), out.end()}, {lse.begin(), lse.end()}};
    const float scale = config["scale"].get<float>();
    for (DType t : {DType::F32, DType::BF16, DType::F16}) {
      Tensor got_lse;
      Tensor got = attention::block_sparse_attention(q.to(t).to(gpu), k.to(t).to(gpu), v.to(t).to(gpu), *schedule,
                                                     scale, &got_lse);
      expect_close(ref, got, got_lse, q.dim(3), tolerance(t), dtype_name(t));
    }
  }
}
