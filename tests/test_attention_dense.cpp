// Dense attention (attend() and dense_attention()) against the float64 goldens of
// tests/data/golden/attention (README there: tolerances) and a naive double reference on
// shapes that stress the tiling: Lq != Lk, sizes off the tile grid, strided views, padding keys.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "attention/attention.h"
#include "attention_reference.h"
#include "weights/checkpoint.h"

using namespace ditkit;
using attention::Role;

namespace {

const std::string kGolden = std::string(DITKIT_TEST_DATA) + "/golden/attention/";

struct Golden {
  Tensor q, k, v, out;         // [1, L, H, D] views of the stored [H, L, D]
  std::vector<float> key_valid, mask;
  int64_t valid_keys = 0;  // leading run of valid keys
};

Golden load_golden(const std::string& name) {
  auto file = weights::Checkpoint::open(kGolden + name + "/data.safetensors");
  auto as_blhd = [&](const char* n) { return file.get(n).permute({1, 0, 2}).unsqueeze(0); };
  Golden g{as_blhd("q"), as_blhd("k"), as_blhd("v"), as_blhd("out"), file.get("key_valid").to_vector(),
           file.get("mask").to_vector()};
  while (g.valid_keys < int64_t(g.key_valid.size()) && g.key_valid[size_t(g.valid_keys)] != 0) ++g.valid_keys;
  return g;
}

// The dense goldens' key validity is a leading run (valid text first, padding last), and every
// query row of the executed mask is exactly that run: what valid_keys expresses.
void expect_prefix_mask(const Golden& g) {
  const int64_t lk = int64_t(g.key_valid.size());
  for (int64_t j = g.valid_keys; j < lk; ++j) ASSERT_EQ(g.key_valid[size_t(j)], 0.0f) << "key " << j;
  for (size_t r = 0; r < g.mask.size(); ++r) ASSERT_EQ(g.mask[r], g.key_valid[r % size_t(lk)]) << "mask entry " << r;
}

struct Mismatch {
  double max_abs = 0, max_ref = 0, min_cos = 1;
};

// Max abs error and the lowest per-row cosine similarity over rows of the last dim.
Mismatch compare(const std::vector<double>& ref, const Tensor& got, int64_t D) {
  std::vector<float> y = got.to_vector();
  EXPECT_EQ(ref.size(), y.size());
  Mismatch e;
  for (size_t r = 0; r + size_t(D) <= std::min(ref.size(), y.size()); r += size_t(D)) {
    double dot = 0, na = 0, nb = 0;
    for (size_t i = r; i < r + size_t(D); ++i) {
      e.max_abs = std::max(e.max_abs, std::fabs(ref[i] - y[i]));
      e.max_ref = std::max(e.max_ref, std::fabs(ref[i]));
      dot += ref[i] * y[i];
      na += ref[i] * ref[i];
      nb += double(y[i]) * y[i];
    }
    e.min_cos = std::min(e.min_cos, dot / std::sqrt(na * nb + 1e-300));
  }
  return e;
}

std::vector<double> to_double(const Tensor& t) {
  std::vector<float> x = t.to_vector();
  return {x.begin(), x.end()};
}

// softmax(scale q k^T over keys < valid_keys) v in double, [B, Lq, H, D] row-major.
std::vector<double> naive_attention(const Tensor& q, const Tensor& k, const Tensor& v, double scale,
                                    int64_t valid_keys) {
  return test::naive_attention(q, k, v, scale, test::keys_below(q.dim(1), k.dim(1), valid_keys)).out;
}

Tensor random_normal(const Shape& shape, uint32_t seed, float stddev = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> n(0.0f, stddev);
  std::vector<float> x(size_t(shape_numel(shape)));
  for (float& e : x) e = n(rng);
  return Tensor::from_vector(x, shape);
}

attention::TokenLayout grid(int64_t t, int64_t h, int64_t w) {
  attention::TokenLayout layout;
  layout.frames = t;
  layout.height = h;
  layout.width = w;
  return layout;
}

attention::Site site(Role role) {
  attention::Site s;
  s.role = role;
  s.layer = 0;
  return s;
}

}  // namespace

TEST(AttentionDense, GoldenSelf) {
  Golden g = load_golden("dense_self_t4h6w8");
  expect_prefix_mask(g);
  ASSERT_EQ(g.valid_keys, 192);
  Tensor out = attention::attend(g.q, g.k, g.v, grid(4, 6, 8), site(Role::SelfAttention));  // scale 1/sqrt(64)
  ASSERT_EQ(out.shape(), (Shape{1, 192, 2, 64}));
  EXPECT_EQ(out.dtype(), DType::F32);
  Mismatch e = compare(to_double(g.out), out, 64);
  EXPECT_LE(e.max_abs, std::max(1e-5, 1e-4 * e.max_ref));
}

TEST(AttentionDense, GoldenCross) {
  Golden g = load_golden("dense_cross_t3h6w6_text24");
  expect_prefix_mask(g);
  attention::TokenLayout layout = grid(3, 6, 6);
  layout.text_tokens = 24;
  Tensor out = attention::attend(g.q, g.k, g.v, layout, site(Role::CrossAttention), {}, 0.25f);
  ASSERT_EQ(out.shape(), (Shape{1, 108, 2, 16}));
  Mismatch e = compare(to_double(g.out), out, 16);
  EXPECT_LE(e.max_abs, std::max(1e-5, 1e-4 * e.max_ref));
}

TEST(AttentionDense, GoldenJointSuffixWithPaddedText) {
  Golden g = load_golden("dense_joint_t3h6w6_text20v13_suffix");
  expect_prefix_mask(g);
  attention::TokenLayout layout = grid(3, 6, 6);
  layout.text_tokens = 20;
  layout.text_position = attention::TextPosition::Suffix;
  layout.valid_keys = layout.grid_tokens() + 13;  // 13 valid text tokens after the video
  ASSERT_EQ(g.valid_keys, layout.valid_keys);
  Tensor out = attention::attend(g.q, g.k, g.v, layout, site(Role::JointAttention), {}, 0.17677669529663687f);
  Mismatch e = compare(to_double(g.out), out, 32);
  EXPECT_LE(e.max_abs, std::max(1e-5, 1e-4 * e.max_ref));
}

TEST(AttentionDense, GoldenHalfPrecisionInputs) {
  for (const char* name : {"dense_self_t4h6w8", "dense_joint_t3h6w6_text20v13_suffix"}) {
    Golden g = load_golden(name);
    for (auto [dtype, tol] : {std::pair{DType::BF16, 2e-2}, std::pair{DType::F16, 5e-3}}) {
      Tensor out = attention::dense_attention(g.q.to(dtype), g.k.to(dtype), g.v.to(dtype), 0.0f, g.valid_keys);
      EXPECT_EQ(out.dtype(), dtype);
      Mismatch e = compare(to_double(g.out), out, g.q.dim(3));
      EXPECT_LE(e.max_abs, tol) << name << " " << dtype_name(dtype);
      EXPECT_GE(e.min_cos, 0.999) << name << " " << dtype_name(dtype);
    }
  }
}

TEST(AttentionDense, MatchesNaiveOnOddShapes) {
  struct Case {
    int64_t B, Lq, Lk, H, D, valid_keys;
    float scale;
  };
  // Tiles are 256 queries x 64 keys (CUDA: 32 x 32): sizes below, at and past them, head_dim
  // off the 8-lane padding and past the 64-column chunk, a single key, and a large scale that
  // makes the online max move a lot.
  for (Case c : {Case{1, 1, 1, 1, 8, -1, 0.0f}, Case{2, 70, 131, 3, 20, -1, 0.0f}, Case{1, 64, 64, 2, 64, 50, 0.0f},
                 Case{1, 129, 65, 2, 128, 65, 0.0f}, Case{1, 257, 70, 1, 72, -1, 0.0f}, Case{2, 33, 200, 1, 3, 130, 3.0f},
                 Case{1, 5, 300, 2, 16, 1, 0.0f}}) {
    SCOPED_TRACE(testing::Message() << "B " << c.B << " Lq " << c.Lq << " Lk " << c.Lk << " H " << c.H << " D " << c.D
                                    << " valid " << c.valid_keys);
    Tensor q = random_normal({c.B, c.Lq, c.H, c.D}, 1), k = random_normal({c.B, c.Lk, c.H, c.D}, 2),
           v = random_normal({c.B, c.Lk, c.H, c.D}, 3);
    float scale = c.scale > 0 ? c.scale : 1.0f / std::sqrt(float(c.D));
    Tensor out = attention::dense_attention(q, k, v, c.scale, c.valid_keys);
    Mismatch e = compare(naive_attention(q, k, v, scale, c.valid_keys), out, c.D);
    EXPECT_LE(e.max_abs, 2e-6 * std::max(1.0, e.max_ref));
  }
}

TEST(AttentionDense, StridedViews) {
  // q from a [B, H, L, D] tensor (heads outer), k/v as halves of a fused [B, L, H, 2D] kv with
  // the head_dim step 2 for v: every operand has non-standard strides.
  const int64_t B = 2, L = 77, H = 3, D = 24;
  Tensor q = random_normal({B, H, L, D}, 4).permute({0, 2, 1, 3});
  Tensor kv = random_normal({B, L, H, 2 * D}, 5);
  Tensor k = kv.narrow(3, 0, D), v = kv.slice(3, 1, 2 * D, 2).narrow(3, 0, D);
  ASSERT_FALSE(q.is_contiguous());
  ASSERT_EQ(v.strides()[3], 2);
  Tensor out = attention::attend(q, k, v, grid(7, 11, 1), site(Role::SelfAttention));
  Mismatch e = compare(naive_attention(q.contiguous(), k.contiguous(), v.contiguous(), 1.0 / std::sqrt(double(D)), -1),
                    out, D);
  EXPECT_LE(e.max_abs, 2e-6);
  Tensor same = attention::attend(q.contiguous(), k.contiguous(), v.contiguous(), grid(7, 11, 1),
                                  site(Role::SelfAttention));
  EXPECT_EQ(out.to_vector(), same.to_vector());
}

TEST(AttentionDense, Bf16RandomAgainstNaive) {
  Tensor q = random_normal({1, 100, 2, 64}, 6), k = random_normal({1, 90, 2, 64}, 7),
         v = random_normal({1, 90, 2, 64}, 8);
  Tensor qb = q.to(DType::BF16), kb = k.to(DType::BF16), vb = v.to(DType::BF16);
  Tensor out = attention::dense_attention(qb, kb, vb, 0.0f, 80);
  ASSERT_EQ(out.dtype(), DType::BF16);
  // Against the exact result of the rounded inputs: only the bf16 output rounding remains.
  Mismatch e = compare(naive_attention(qb, kb, vb, 1.0 / 8.0, 80), out, 64);
  EXPECT_LE(e.max_abs, 4e-3 * std::max(1.0, e.max_ref));
  EXPECT_GE(e.min_cos, 0.9999);
}

TEST(AttentionDense, RejectsBadCalls) {
  Tensor q = Tensor::zeros({1, 4, 2, 8}, DType::F32), k = Tensor::zeros({1, 6, 2, 8}, DType::F32);
  auto message = [](auto&& fn) {
    try {
      fn();
    } catch (const ditkit::Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message([&] { attention::dense_attention(q, k, k, 0.0f, 7); }).find("valid_keys must be -1 or in [1, 6]"),
            std::string::npos);
  EXPECT_NE(message([&] { attention::dense_attention(q, k, k, 0.0f, 0); }).find("got 0"), std::string::npos);
  EXPECT_NE(message([&] { attention::dense_attention(q, k, Tensor::zeros({1, 6, 2, 4}, DType::F32), 0.0f); })
                .find("k and v must be [B, Lk, H, D]"),
            std::string::npos);
  EXPECT_NE(message([&] { attention::dense_attention(q.flatten(2), k, k, 0.0f); }).find("must be [B, L, H, D]"),
            std::string::npos);
  EXPECT_NE(message([&] { attention::dense_attention(q.to(DType::I32), k, k, 0.0f); }).find("must be F32, F16 or BF16"),
            std::string::npos);
  EXPECT_NE(message([&] { attention::attend(q, k, k, {}, site(Role::SelfAttention)); })
                .find("self-attention, layer 0): queries and keys must be the same tokens"),
            std::string::npos);
  EXPECT_EQ(message([&] { attention::attend(q, k, k, {}, site(Role::CrossAttention)); }), "no error");
}

TEST(AttentionDense, CudaMatchesReferences) {
  if (!cuda_available()) GTEST_SKIP() << "no CUDA GPU";
  const Device gpu = Device::cuda(0);
  Golden g = load_golden("dense_joint_t3h6w6_text20v13_suffix");
  Tensor out = attention::dense_attention(g.q.to(gpu), g.k.to(gpu), g.v.to(gpu), 0.0f, g.valid_keys);
  EXPECT_TRUE(out.device() == gpu);
  Mismatch e = compare(to_double(g.out), out, 32);
  EXPECT_LE(e.max_abs, std::max(1e-5, 1e-4 * e.max_ref));
  for (auto [dtype, tol] : {std::pair{DType::BF16, 2e-2}, std::pair{DType::F16, 5e-3}}) {
    Tensor half = attention::dense_attention(g.q.to(dtype).to(gpu), g.k.to(dtype).to(gpu), g.v.to(dtype).to(gpu),
                                             0.0f, g.valid_keys);
    EXPECT_EQ(half.dtype(), dtype);
    Mismatch eh = compare(to_double(g.out), half, 32);
    EXPECT_LE(eh.max_abs, tol) << dtype_name(dtype);
    EXPECT_GE(eh.min_cos, 0.999) << dtype_name(dtype);
  }
  // Strided views, sizes off the 32 x 32 tiles, head_dim 256 (the largest) and 40.
  for (int64_t D : {int64_t(40), int64_t(256)}) {
    const int64_t B = 2, Lq = 45, Lk = 77, H = 3;
    Tensor q = random_normal({B, H, Lq, D}, 9).to(gpu).permute({0, 2, 1, 3});
    Tensor kv = random_normal({B, Lk, H, 2 * D}, 10).to(gpu);
    Tensor k = kv.narrow(3, 0, D), v = kv.narrow(3, D, D);
    ASSERT_FALSE(q.is_contiguous());
    Tensor got = attention::dense_attention(q, k, v, 0.0f, 70);
    Tensor qh = q.to(Device::cpu()), kh = k.to(Device::cpu()), vh = v.to(Device::cpu());
    Mismatch er = compare(naive_attention(qh, kh, vh, 1.0 / std::sqrt(double(D)), 70), got, D);
    EXPECT_LE(er.max_abs, 2e-6) << "head_dim " << D;
  }
}
