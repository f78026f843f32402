// The block-sparse engine: build_schedule() against the brute-force mask of random rules (with
// kernel orders holding padding slots, block shapes off the sequence and word grid, rules that
// classify honestly, partly or not at all), and block_sparse_attention() against a naive
// double masked softmax on random shapes, dtypes, strided views and the attention goldens' masks.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include "attention/attention.h"
#include "attention/block_sparse.h"
#include "attention/kind.h"
#include "attention_reference.h"
#include "test_util.h"
#include "weights/checkpoint.h"

using namespace ditkit;
using namespace ditkit::attention;
using test::expect_error;

namespace {

const double kInf = std::numeric_limits<double>::infinity();

Tensor random_normal(const Shape& shape, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> n(0.0f, 1.0f);
  std::vector<float> x(size_t(shape_numel(shape)));
  for (float& e : x) e = n(rng);
  return Tensor::from_vector(x, shape);
}

// A kernel order of `tokens` tokens shuffled (or kept in order) with `padding` slots (-1)
// scattered in; empty when neither.
std::vector<int64_t> make_order(int64_t tokens, int64_t padding, bool shuffle, std::mt19937& rng) {
  if (padding == 0 && !shuffle) return {};
  std::vector<int64_t> order(size_t(tokens + padding), -1);
  std::iota(order.begin(), order.begin() + tokens, 0);
  if (shuffle) {
    std::shuffle(order.begin(), order.end(), rng);
  } else {  // tokens in order, padding slots at random places
    std::vector<int64_t> slots(order.size());
    std::iota(slots.begin(), slots.end(), 0);
    std::shuffle(slots.begin(), slots.end(), rng);
    std::sort(slots.begin(), slots.begin() + tokens);
    std::fill(order.begin(), order.end(), -1);
    for (int64_t t = 0; t < tokens; ++t) order[size_t(slots[size_t(t)])] = t;
  }
  return order;
}

// Random visibility over kernel positions, made of regions of region_q x region_k positions
// that are all visible, all hidden or random, plus some queries among the first `blind` that
// see nothing. classify() answers Partial always (lazy), or the true class of the block's real
// pairs (honest) except for every third block.
class RandomRule final : public MaskRule {
 public:
  enum class Classify { Lazy, Honest };
  RandomRule(int64_t q_len, int64_t k_len, const std::vector<int64_t>& q_order, const std::vector<int64_t>& k_order,
             int64_t region_q, int64_t region_k, int64_t blind, Classify mode, std::mt19937& rng)
      : q_len_(q_len), k_len_(k_len), q_order_(q_order), k_order_(k_order), mode_(mode), table_(size_t(q_len * k_len)) {
    std::uniform_int_distribution<int> kind(0, 2);
    std::bernoulli_distribution coin(0.3), blind_coin(0.1);
    for (int64_t r0 = 0; r0 < q_len; r0 += region_q)
      for (int64_t c0 = 0; c0 < k_len; c0 += region_k) {
        const int region_kind = kind(rng);
        for (int64_t r = r0; r < std::min(r0 + region_q, q_len); ++r)
          for (int64_t c = c0; c < std::min(c0 + region_k, k_len); ++c)
            table_[size_t(r * k_len + c)] = region_kind == 2 ? coin(rng) : region_kind;
      }
    for (int64_t r = 0; r < std::min(blind, q_len); ++r)
      if (blind_coin(rng)) std::fill_n(table_.begin() + r * k_len, k_len, 0);
  }

  bool real_q(int64_t p) const { return q_order_.empty() || q_order_[size_t(p)] >= 0; }
  bool real_k(int64_t p) const { return k_order_.empty() || k_order_[size_t(p)] >= 0; }
  int64_t q_token(int64_t p) const { return q_order_.empty() ? p : q_order_[size_t(p)]; }
  int64_t k_token(int64_t p) const { return k_order_.empty() ? p : k_order_[size_t(p)]; }

  bool visible(int64_t qp, int64_t kp) const override {
    EXPECT_TRUE(real_q(qp) && real_k(kp)) << "asked about a padding slot " << qp << ", " << kp;
    return table_[size_t(qp * k_len_ + kp)];
  }

  // The class of the block's real pairs (Empty when it has none).
  BlockClass true_class(int64_t q0, int64_t q1, int64_t k0, int64_t k1) const {
    int64_t seen = 0, pairs = 0;
    for (int64_t qp = q0; qp < q1; ++qp)
      for (int64_t kp = k0; kp < k1; ++kp)
        if (real_q(qp) && real_k(kp)) {
          ++pairs;
          seen += table_[size_t(qp * k_len_ + kp)];
        }
    return seen == 0 ? BlockClass::Empty : seen == pairs ? BlockClass::Full : BlockClass::Partial;
  }

  BlockClass classify(int64_t q0, int64_t q1, int64_t k0, int64_t k1) const override {
    if (mode_ == Classify::Lazy || (q0 + k0) % 3 == 0) return BlockClass::Partial;
    return true_class(q0, q1, k0, k1);
  }

  // The canonical [q_tokens x k_tokens] mask.
  std::vector<uint8_t> canonical(int64_t q_tokens, int64_t k_tokens) const {
    std::vector<uint8_t> mask(size_t(q_tokens * k_tokens), 0);
    for (int64_t qp = 0; qp < q_len_; ++qp)
      for (int64_t kp = 0; kp < k_len_; ++kp)
        if (real_q(qp) && real_k(kp)) mask[size_t(q_token(qp) * k_tokens + k_token(kp))] = table_[size_t(qp * k_len_ + kp)];
    return mask;
  }

 private:
  int64_t q_len_, k_len_;
  std::vector<int64_t> q_order_, k_order_;
  Classify mode_;
  std::vector<uint8_t> table_;
};

// One random pattern with its schedule.
struct Pattern {
  std::unique_ptr<RandomRule> rule;
  BlockSchedule schedule;
  std::vector<uint8_t> mask;  // canonical
};

struct PatternCase {
  int64_t q_tokens, k_tokens, q_block, k_block, q_padding, k_padding;
  bool shuffle;
  RandomRule::Classify mode;
  uint32_t seed;
};

Pattern make_pattern(const PatternCase& c) {
  std::mt19937 rng(c.seed);
  std::vector<int64_t> q_order = make_order(c.q_tokens, c.q_padding, c.shuffle, rng);
  std::vector<int64_t> k_order = make_order(c.k_tokens, c.k_padding, c.shuffle, rng);
  const int64_t q_len = c.q_tokens + c.q_padding, k_len = c.k_tokens + c.k_padding;
  // Regions on the block grid (so that whole blocks come out FULL or EMPTY) or across it;
  // blind queries only in the first query block.
  const int64_t region = std::uniform_int_distribution<int64_t>(8, 80)(rng);
  const bool aligned = c.seed % 2 == 1;
  Pattern p;
  p.rule = std::make_unique<RandomRule>(q_len, k_len, q_order, k_order, aligned ? c.q_block : region,
                                        aligned ? c.k_block : region, c.q_block, c.mode, rng);
  p.schedule = build_schedule(*p.rule, c.q_tokens, c.k_tokens, c.q_block, c.k_block, q_order, k_order);
  p.mask = p.rule->canonical(c.q_tokens, c.k_tokens);
  return p;
}

std::string describe(const PatternCase& c) {
  return cat("q ", c.q_tokens, "+", c.q_padding, " k ", c.k_tokens, "+", c.k_padding, " block ", c.q_block, "x",
             c.k_block, c.shuffle ? " shuffled" : "", c.mode == RandomRule::Classify::Lazy ? " lazy" : " honest",
             " seed ", c.seed);
}

using Reference = test::AttentionReference;

struct Errors {
  double out = 0, out_ref = 0, lse = 0;
};

// Max abs errors of out and lse; rows the reference leaves empty must be exactly 0 / -inf.
Errors compare(const Reference& ref, const Tensor& out, const Tensor& lse) {
  std::vector<float> o = out.to(DType::F32).to_vector(), l = lse.to_vector();
  EXPECT_EQ(o.size(), ref.out.size());
  EXPECT_EQ(l.size(), ref.lse.size());
  Errors e;
  for (size_t i = 0; i < std::min(o.size(), ref.out.size()); ++i) {
    e.out = std::max(e.out, std::fabs(o[i] - ref.out[i]));
    e.out_ref = std::max(e.out_ref, std::fabs(ref.out[i]));
  }
  for (size_t i = 0; i < std::min(l.size(), ref.lse.size()); ++i) {
    if (ref.lse[i] == -kInf) {
      EXPECT_EQ(l[i], -std::numeric_limits<float>::infinity()) << "lse entry " << i;
      continue;
    }
    e.lse = std::max(e.lse, std::fabs(l[i] - ref.lse[i]));
  }
  return e;
}

// The brute-force class of every block in kernel order.
std::vector<BlockClass> brute_classes(const RandomRule& rule, const BlockSchedule& s) {
  std::vector<BlockClass> classes;
  for (int64_t qb = 0; qb < s.q_blocks(); ++qb)
    for (int64_t kb = 0; kb < s.k_blocks(); ++kb) {
      const int64_t q0 = qb * s.q_block, q1 = std::min(q0 + s.q_block, s.q_len);
      const int64_t k0 = kb * s.k_block, k1 = std::min(k0 + s.k_block, s.k_len);
      BlockClass c = rule.true_class(q0, q1, k0, k1);
      bool padded = false;  // FULL blocks never hold padding slots (the kernel does not test them)
      for (int64_t p = q0; p < q1; ++p) padded |= !rule.real_q(p);
      for (int64_t p = k0; p < k1; ++p) padded |= !rule.real_k(p);
      classes.push_back(c == BlockClass::Full && padded ? BlockClass::Partial : c);
    }
  return classes;
}

const std::vector<PatternCase> kPatterns = {
    {200, 200, 64, 64, 0, 0, false, RandomRule::Classify::Honest, 1},
    {200, 200, 64, 64, 0, 0, false, RandomRule::Classify::Lazy, 2},
    {130, 77, 50, 37, 0, 0, false, RandomRule::Classify::Honest, 3},    // Lq != Lk, odd blocks
    {150, 260, 32, 100, 11, 0, true, RandomRule::Classify::Honest, 4},  // 2 mask words, shuffled queries
    {97, 300, 16, 130, 0, 29, false, RandomRule::Classify::Honest, 5},  // 3 words, padded keys in order
    {256, 256, 64, 64, 40, 40, true, RandomRule::Classify::Lazy, 6},
    {70, 90, 128, 64, 0, 0, false, RandomRule::Classify::Honest, 7},  // a single, short query block
    {1, 1, 64, 64, 0, 0, false, RandomRule::Classify::Honest, 8},
};

}  // namespace

TEST(BlockSchedule, MatchesBruteForce) {
  for (const PatternCase& c : kPatterns) {
    SCOPED_TRACE(describe(c));
    Pattern p = make_pattern(c);
    const BlockSchedule& s = p.schedule;
    EXPECT_EQ(s.q_len, c.q_tokens + c.q_padding);
    EXPECT_EQ(s.k_len, c.k_tokens + c.k_padding);
    EXPECT_EQ(s.mask_words(), (c.k_block + 63) / 64);
    EXPECT_EQ(token_mask(s), p.mask);
    EXPECT_EQ(s.visible_pairs, std::count(p.mask.begin(), p.mask.end(), 1));
    const std::vector<BlockClass> classes = block_classes(s), expected = brute_classes(*p.rule, s);
    EXPECT_EQ(classes, expected);
    // CSR: ascending columns, one mask per PARTIAL entry, block density = visited area.
    ASSERT_EQ(int64_t(s.row_ptr.size()), s.q_blocks() + 1);
    double area = 0;
    for (int64_t qb = 0; qb < s.q_blocks(); ++qb)
      for (int64_t e = s.row_ptr[size_t(qb)]; e < s.row_ptr[size_t(qb) + 1]; ++e) {
        if (e > s.row_ptr[size_t(qb)]) {
          EXPECT_LT(s.cols[size_t(e) - 1], s.cols[size_t(e)]);
        }
        area += double(std::min(s.q_block, s.q_len - qb * s.q_block)) *
                double(std::min(s.k_block, s.k_len - s.cols[size_t(e)] * s.k_block));
      }
    EXPECT_EQ(int64_t(s.bits.size()), std::count(classes.begin(), classes.end(), BlockClass::Partial) * s.q_block *
                                          s.mask_words());
    EXPECT_NEAR(s.block_density(), area / (double(s.q_len) * double(s.k_len)), 1e-12);
  }
}

TEST(BlockSchedule, RejectsBadOrders) {
  std::mt19937 rng(1);
  RandomRule rule(4, 4, {}, {}, 4, 4, 0, RandomRule::Classify::Honest, rng);
  expect_error([&] { build_schedule(rule, 3, 3, 64, 64, {0, 1, 1, 2}); }, {"query order", "token 1 twice"});
  expect_error([&] { build_schedule(rule, 3, 3, 64, 64, {}, {0, 3, 1}); }, {"key order[1] = 3", "[0, 3)"});
  expect_error([&] { build_schedule(rule, 3, 3, 64, 64, {0, -1, 1, -1}); }, {"query order", "misses 1"});
  expect_error([&] { build_schedule(rule, 3, 3, 64, 64, {0, 1}); }, {"query order has 2 positions for 3 tokens"});
  expect_error([&] { build_schedule(rule, 3, 3, 0, 64); }, {"block shape", "0x64"});
  expect_error([&] { build_schedule(rule, 0, 3, 64, 64); }, {"query tokens must be positive"});
}

TEST(BlockSparseAttention, MatchesNaive) {
  struct Case {
    size_t pattern;
    int64_t B, H, D;
    DType dtype;
    float scale;
  };
  // head_dim off the 8-lane padding and past the 64-column value chunk; a large scale moves the
  // online max a lot; half-precision inputs come out in their dtype.
  for (Case c : {Case{0, 1, 1, 64, DType::F32, 0.0f}, Case{1, 2, 3, 20, DType::F32, 0.0f},
                 Case{2, 1, 2, 72, DType::F32, 0.0f}, Case{3, 2, 2, 16, DType::F32, 0.0f},
                 Case{4, 1, 2, 128, DType::F32, 0.0f}, Case{5, 2, 1, 3, DType::F32, 0.0f},
                 Case{6, 1, 1, 8, DType::F32, 0.0f}, Case{7, 1, 2, 8, DType::F32, 0.0f}, Case{0, 1, 2, 6, DType::F32, 3.0f},
                 Case{3, 1, 2, 32, DType::BF16, 0.0f}, Case{5, 1, 2, 32, DType::F16, 0.0f}}) {
    const PatternCase& pc = kPatterns[c.pattern];
    SCOPED_TRACE(testing::Message() << describe(pc) << " B " << c.B << " H " << c.H << " D " << c.D << " "
                                    << dtype_name(c.dtype));
    Pattern p = make_pattern(pc);
    Tensor q = random_normal({c.B, pc.q_tokens, c.H, c.D}, 11).to(c.dtype);
    Tensor k = random_normal({c.B, pc.k_tokens, c.H, c.D}, 12).to(c.dtype);
    Tensor v = random_normal({c.B, pc.k_tokens, c.H, c.D}, 13).to(c.dtype);
    const float scale = c.scale > 0 ? c.scale : 1.0f / std::sqrt(float(c.D));
    Tensor lse;
    Tensor out = block_sparse_attention(q, k, v, p.schedule, scale, &lse);
    ASSERT_EQ(out.shape(), q.shape());
    EXPECT_EQ(out.dtype(), c.dtype);
    ASSERT_EQ(lse.shape(), (Shape{c.B, c.H, pc.q_tokens}));
    EXPECT_EQ(lse.dtype(), DType::F32);
    Errors e = compare(test::naive_attention(q, k, v, scale, p.mask), out, lse);
    const double tol = c.dtype == DType::BF16 ? 1e-2 : c.dtype == DType::F16 ? 2e-3 : 2e-6;
    EXPECT_LE(e.out, tol * std::max(1.0, e.out_ref));
    EXPECT_LE(e.lse, 1e-5 * std::max(1.0, double(c.scale) * c.D));
  }
}

TEST(BlockSparseAttention, StridedViewsAndNoLse) {
  // q from a [B, H, L, D] tensor, k/v as halves of a fused [B, L, H, 2D] kv with v's head_dim step 2.
  const PatternCase& pc = kPatterns[3];
  Pattern p = make_pattern(pc);
  const int64_t B = 2, H = 3, D = 24;
  Tensor q = random_normal({B, H, pc.q_tokens, D}, 4).permute({0, 2, 1, 3});
  Tensor kv = random_normal({B, pc.k_tokens, H, 2 * D}, 5);
  Tensor k = kv.narrow(3, 0, D), v = kv.slice(3, 1, 2 * D, 2).narrow(3, 0, D);
  const float scale = 0.3f;
  Tensor out = block_sparse_attention(q, k, v, p.schedule, scale);
  Reference ref = test::naive_attention(q, k, v, scale, p.mask);
  std::vector<float> got = out.to_vector();
  double err = 0;
  for (size_t i = 0; i < got.size(); ++i) err = std::max(err, std::fabs(got[i] - ref.out[i]));
  EXPECT_LE(err, 2e-6);
}

TEST(BlockSparseAttention, AllFullEqualsDense) {
  // The dense kind's schedule is every block FULL but the one holding the last valid key: the
  // same chunks the dense kernel streams, so the results are the same bits.
  const int64_t L = 300, H = 2, D = 40;
  Tensor q = random_normal({1, L, H, D}, 21), k = random_normal({1, L, H, D}, 22), v = random_normal({1, L, H, D}, 23);
  TokenLayout layout;
  layout.width = L;
  for (int64_t valid : {int64_t(-1), int64_t(250)}) {
    layout.valid_keys = valid;
    KindMask m = make_kind("dense")->mask(layout, L, L);
    for (BlockShape shape : {BlockShape{64, 64}, BlockShape{100, 128}}) {
      BlockSchedule s = build_schedule(*m.rule, L, L, shape.q_block, shape.k_block);
      std::vector<float> got = block_sparse_attention(q, k, v, s, 0.2f).to_vector();
      EXPECT_EQ(got, dense_attention(q, k, v, 0.2f, valid).to_vector()) << "valid " << valid << " " << shape.q_block;
    }
  }
}

TEST(BlockSparseAttention, GoldenMasks) {
  // The goldens' executed masks (in their kernel order where they have one, padding slots
  // included) run through the engine: out and lse within the goldens' fp32 tolerances.
  for (const char* name : {"natten_3d_4x8x10_k3x5x5_s1x2x3_d1x1x2_causalT", "natten_3d_4x8x8_blocked_k2x4x4_text12",
                           "grat_x_3d_t4h12w16_g2x4x4_text32v20", "dense_joint_t3h6w6_text20v13_suffix"}) {
    SCOPED_TRACE(name);
    auto file = weights::Checkpoint::open(test::kGolden + "attention/" + name + "/data.safetensors");
    auto as_blhd = [&](const char* n) { return file.get(n).permute({1, 0, 2}).unsqueeze(0); };
    Tensor q = as_blhd("q"), k = as_blhd("k"), v = as_blhd("v");
    const int64_t Lq = q.dim(1), Lk = k.dim(1);
    Tensor mask_t = file.get("mask").contiguous();
    const uint8_t* mask = static_cast<const uint8_t*>(mask_t.raw());
    // perm covers the grid; keys past it (NATTEN's additional keys) follow in order.
    std::vector<int64_t> q_order, k_order;
    if (file.contains("perm")) {
      Tensor perm = file.get("perm").contiguous();
      q_order.assign(perm.data<int64_t>(), perm.data<int64_t>() + perm.numel());
      k_order = q_order;
      for (int64_t t = Lq; t < Lk; ++t) k_order.push_back(t);
    }
    struct TableRule final : MaskRule {
      const uint8_t* mask;
      int64_t Lk;
      const std::vector<int64_t>&q_order, &k_order;
      TableRule(const uint8_t* m, int64_t lk, const std::vector<int64_t>& qo, const std::vector<int64_t>& ko)
          : mask(m), Lk(lk), q_order(qo), k_order(ko) {}
      bool visible(int64_t qp, int64_t kp) const override {
        const int64_t qi = q_order.empty() ? qp : q_order[size_t(qp)], ki = k_order.empty() ? kp : k_order[size_t(kp)];
        return mask[qi * Lk + ki];
      }
      BlockClass classify(int64_t, int64_t, int64_t, int64_t) const override { return BlockClass::Partial; }
    } rule(mask, Lk, q_order, k_order);
    BlockSchedule s = build_schedule(rule, Lq, Lk, 64, 64, q_order, k_order);
    EXPECT_EQ(token_mask(s), std::vector<uint8_t>(mask, mask + Lq * Lk));
    Tensor lse;
    const float scale = 1.0f / std::sqrt(float(q.dim(3)));
    Tensor out = block_sparse_attention(q, k, v, s, scale, &lse);
    std::vector<float> got = out.to_vector(), want = as_blhd("out").contiguous().to_vector();
    std::vector<float> got_lse = lse.to_vector(), want_lse = file.get("lse").unsqueeze(0).to_vector();
    double err = 0, max_ref = 0, lse_err = 0;
    for (size_t i = 0; i < got.size(); ++i) {
      err = std::max(err, double(std::fabs(got[i] - want[i])));
      max_ref = std::max(max_ref, double(std::fabs(want[i])));
    }
    for (size_t i = 0; i < got_lse.size(); ++i) lse_err = std::max(lse_err, double(std::fabs(got_lse[i] - want_lse[i])));
    EXPECT_LE(err, std::max(1e-5, 1e-4 * max_ref));
    EXPECT_LE(lse_err, 1e-5);
  }
}

TEST(BlockSparseAttention, Errors) {
  Pattern p = make_pattern(kPatterns[0]);  // 200 x 200
  Tensor q = random_normal({1, 200, 2, 8}, 1), k = random_normal({1, 200, 2, 8}, 2);
  Tensor short_k = random_normal({1, 100, 2, 8}, 3);
  expect_error([&] { block_sparse_attention(q, short_k, short_k, p.schedule, 1.0f); },
               {"schedule is for 200 queries and 200 keys", "k [1, 100, 2, 8]"});
  expect_error([&] { block_sparse_attention(q.select(0, 0), k, k, p.schedule, 1.0f); }, "[B, L, H, D]");
  expect_error([&] { block_sparse_attention(q, k, k.narrow(3, 0, 4), p.schedule, 1.0f); }, "matching q");
  expect_error([&] { block_sparse_attention(q.to(DType::F64), k, k, p.schedule, 1.0f); }, "F32, F16 or BF16");
  expect_error([&] { block_sparse_attention(q, k, k, p.schedule, 0.0f); }, "scale must be positive");
  expect_error([&] { block_sparse_attention(q, k, k, BlockSchedule{}, 1.0f); }, "schedule is for 0 queries");
}
