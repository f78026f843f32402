// AlignedGen hooks (attention/aligned_gen.h) and their building blocks (attention/hook_ops.h):
// AdaIN gives the reference's statistics, the LSE merge equals one softmax over the joined key
// sets with a bias (explicit double reference), lambda scales logits, ShiftPE ids never meet
// the image ids; a target row equals the official formulation (AdaIN, then one softmax over
// own keys + lambda * shifted reference keys, bias ln s); on the tiny FLUX and Wan models:
// strength 0 and a batch of one are the plain run, the reference row is its solo run bit for
// bit, targets change; option and ordering errors.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "attention/aligned_gen.h"
#include "attention/hook_ops.h"
#include "core/ops.h"
#include "dit/flux.h"
#include "dit/rope.h"
#include "dit/wan.h"
#include "samplers/torch_rng.h"
#include "test_util.h"
#include "weights/checkpoint.h"
#include "weights/model_files.h"

namespace ditkit {
namespace {

using attention::AlignedGen;
using attention::AlignedGenOptions;
using attention::Control;
using attention::Pass;
using attention::Role;
using attention::Site;
using attention::TokenLayout;

double max_abs(const Tensor& a, const Tensor& b) { return test::compare(a, b).max_abs; }

// softmax_j(scale q.k_j + bias_j) v_j in double for q [1, Lq, H, D], k and v [1, Lk, H, D];
// optionally the log-sum-exp [1, H, Lq].
Tensor explicit_attention(const Tensor& q, const Tensor& k, const Tensor& v, double scale,
                          const std::vector<double>& bias, Tensor* lse = nullptr) {
  const int64_t lq = q.dim(1), lk = k.dim(1), H = q.dim(2), D = q.dim(3);
  const auto Q = q.contiguous().to_vector(), K = k.contiguous().to_vector(), V = v.contiguous().to_vector();
  std::vector<float> out(size_t(lq * H * D)), l(size_t(H * lq));
  for (int64_t h = 0; h < H; ++h)
    for (int64_t i = 0; i < lq; ++i) {
      std::vector<double> s(static_cast<size_t>(lk));
      double m = -INFINITY;
      for (int64_t j = 0; j < lk; ++j) {
        double dot = 0;
        for (int64_t d = 0; d < D; ++d) dot += double(Q[size_t((i * H + h) * D + d)]) * K[size_t((j * H + h) * D + d)];
        s[size_t(j)] = scale * dot + bias[size_t(j)];
        m = std::max(m, s[size_t(j)]);
      }
      double sum = 0;
      for (double& x : s) sum += (x = std::exp(x - m));
      for (int64_t d = 0; d < D; ++d) {
        double acc = 0;
        for (int64_t j = 0; j < lk; ++j) acc += s[size_t(j)] * V[size_t((j * H + h) * D + d)];
        out[size_t((i * H + h) * D + d)] = float(acc / sum);
      }
      l[size_t(h * lq + i)] = float(m + std::log(sum));
    }
  if (lse) *lse = Tensor::from_vector(l, {1, H, lq});
  return Tensor::from_vector(out, {1, lq, H, D});
}

TEST(HookOps, AdainGivesTheReferenceStatistics) {
  samplers::TorchGenerator gen(3);
  const Tensor x = ops::affine(gen.randn({2, 20, 3, 8}), 2.0f, 1.0f), ref = ops::affine(gen.randn({1, 30, 3, 8}), 0.5f, -3.0f);
  const Tensor y = attention::adain(x, ref);
  ASSERT_EQ(y.shape(), x.shape());
  const attention::TokenStats want = attention::token_stats(ref), got = attention::token_stats(y);
  for (int64_t b = 0; b < 2; ++b) {
    EXPECT_LT(max_abs(got.mean.narrow(0, b, 1), want.mean), 1e-5);
    // Both stds carry the + 1e-5 of the variance (and x's own std did): equal to ~eps / var.
    EXPECT_LT(max_abs(got.std.narrow(0, b, 1), want.std), 5e-5);
  }
  // Unbiased variance, as torch.var: a two-token column (0, 2) has variance 2.
  const attention::TokenStats two = attention::token_stats(Tensor::from_vector({0, 2}, {1, 2, 1, 1}));
  EXPECT_NEAR(two.mean.item(), 1.0, 1e-7);
  EXPECT_NEAR(two.std.item(), std::sqrt(2.0 + 1e-5), 1e-6);
  test::expect_error([] { attention::token_stats(Tensor::zeros({1, 1, 2, 4}, DType::F32)); }, "at least 2 tokens");
}

TEST(HookOps, MergeEqualsOneSoftmaxOverBothKeySetsWithBias) {
  samplers::TorchGenerator gen(5);
  const Tensor q = gen.randn({1, 9, 2, 16}), k1 = gen.randn({1, 13, 2, 16}), v1 = gen.randn({1, 13, 2, 16});
  const Tensor k2 = gen.randn({1, 7, 2, 16}), v2 = gen.randn({1, 7, 2, 16});
  const double scale = 0.25;
  for (const double w : {1.0, 0.3, 2.5}) {
    SCOPED_TRACE(cat("weight ", w));
    Tensor l1, l2, merged_lse, want_lse;
    const Tensor o1 = attention::dense_attention(q, k1, v1, float(scale), -1, &l1);
    const Tensor o2 = attention::dense_attention(q, k2, v2, float(scale), -1, &l2);
    const Tensor got = attention::merge_attention(o1, l1, o2, l2, float(std::log(w)), &merged_lse);
    std::vector<double> bias(13, 0.0);
    bias.insert(bias.end(), 7, std::log(w));
    const Tensor want = explicit_attention(q, ops::concat({k1, k2}, 1), ops::concat({v1, v2}, 1), scale, bias, &want_lse);
    EXPECT_LE(max_abs(got, want), 1e-6);
    EXPECT_LE(max_abs(merged_lse, want_lse), 1e-5);
  }
  // A weight of 0 (bias -inf) drops the second set exactly.
  Tensor l1, l2;
  const Tensor o1 = attention::dense_attention(q, k1, v1, float(scale), -1, &l1);
  const Tensor o2 = attention::dense_attention(q, k2, v2, float(scale), -1, &l2);
  EXPECT_EQ(max_abs(attention::merge_attention(o1, l1, o2, l2, -INFINITY), o1), 0.0);
  test::expect_error([&] { attention::merge_attention(o1, l1, o2.narrow(1, 0, 3), l2, 0.0f); }, "merge_attention");
}

TEST(HookOps, ScalingKeysScalesLogits) {
  samplers::TorchGenerator gen(9);
  const Tensor q = gen.randn({1, 6, 2, 8}), k = gen.randn({1, 10, 2, 8}), v = gen.randn({1, 10, 2, 8});
  const double lambda = 1.1, scale = 1.0 / std::sqrt(8.0);
  const Tensor got = attention::dense_attention(q, ops::affine(k, float(lambda), 0.0f), v, float(scale));
  EXPECT_LE(max_abs(got, explicit_attention(q, k, v, lambda * scale, std::vector<double>(10, 0.0))), 1e-6);
}

std::vector<int64_t> ints(const Tensor& t) {
  std::vector<int64_t> out;
  for (float x : t.to_vector()) out.push_back(int64_t(x));
  return out;
}

TEST(AlignedGen, ShiftPeIdsNeverMeetTheImageIds) {
  // FLUX: text ids (zeros) then image ids (0, row, col) of a 4 x 6 token grid.
  TokenLayout flux;
  flux.height = 4;
  flux.width = 6;
  flux.text_tokens = 5;
  flux.text_position = attention::TextPosition::Prefix;
  std::vector<int64_t> ids(5 * 3, 0);
  const std::vector<int64_t> image = ints(dit::image_ids(4, 6));
  ids.insert(ids.end(), image.begin(), image.end());
  // Wan: (frame, row, col) of a 3 x 4 x 5 grid.
  TokenLayout wan;
  wan.frames = 3;
  wan.height = 4;
  wan.width = 5;
  for (const auto& [layout, all] : {std::pair{flux, ids}, std::pair{wan, dit::grid_positions(3, 4, 5)}}) {
    const int64_t begin = layout.text_tokens, n = layout.grid_tokens();
    std::set<std::vector<int64_t>> own;
    for (int64_t t = begin; t < begin + n; ++t) own.insert({all.begin() + t * 3, all.begin() + t * 3 + 3});
    ASSERT_EQ(int64_t(own.size()), n);
    const std::vector<int64_t> shifted = attention::reference_ids(all, 3, layout, true);
    const std::vector<int64_t> same = attention::reference_ids(all, 3, layout, false);
    ASSERT_EQ(int64_t(shifted.size()), n * 3);
    EXPECT_EQ(same, std::vector<int64_t>(all.begin() + begin * 3, all.end()));
    for (int64_t t = 0; t < n; ++t) {
      const std::vector<int64_t> id(shifted.begin() + t * 3, shifted.begin() + t * 3 + 3);
      EXPECT_EQ(own.count(id), 0u) << "appended token " << t;
      EXPECT_EQ(id[2], same[size_t(t * 3 + 2)] + layout.width);  // column + grid width, other axes kept
      EXPECT_EQ(id[1], same[size_t(t * 3 + 1)]);
    }
  }
}

TEST(AlignedGen, OptionErrorsNameTheOption) {
  test::expect_error([] { AlignedGen({-1.0, 1.1, {0}}); }, "strength");
  test::expect_error([] { AlignedGen({1.0, 0.0, {0}}); }, "lambda");
  test::expect_error([] { AlignedGen({1.0, 1.1, {}}); }, "layers");
  EXPECT_TRUE(AlignedGen({0.0, 1.1, {}}).hooks().empty());
  EXPECT_EQ(attention::aligned_gen_flux_layers(19, 38).front(), 19);
  EXPECT_EQ(attention::aligned_gen_flux_layers(19, 38).back(), 56);
  EXPECT_EQ(attention::aligned_gen_wan_layers(30).size(), 30u);
}

// One attention call of a row as a model makes it (normed hooks, RoPE, attend): FLUX-like joint
// attention with a text prefix of T tokens and a 3 x 4 image grid, or (T = 0) Wan-like
// self-attention over F frames of it; RoPE from dit::rope_table on the call's ids.
struct JointCall {
  static constexpr int64_t Hg = 3, Wg = 4, H = 2, D = 16;
  int64_t T, F;
  TokenLayout layout;
  std::vector<int64_t> ids;
  std::vector<int64_t> axes{4, 6, 6};
  attention::Positions positions;
  explicit JointCall(int64_t text = 3, int64_t frames = 1) : T(text), F(frames) {
    layout.frames = F;
    layout.height = Hg;
    layout.width = Wg;
    layout.text_tokens = T;
    layout.text_position = T > 0 ? attention::TextPosition::Prefix : attention::TextPosition::None;
    ids.assign(size_t(T * 3), 0);
    const std::vector<int64_t> grid = dit::grid_positions(F, Hg, Wg);
    ids.insert(ids.end(), grid.begin(), grid.end());
    positions = {&ids, 3, [this](const Tensor& x, const std::vector<int64_t>& at) { return rope(x, at); }};
  }
  int64_t grid_tokens() const { return F * Hg * Wg; }
  Shape shape() const { return {1, T + grid_tokens(), H, D}; }
  Tensor rope(const Tensor& x, const std::vector<int64_t>& at) const {
    const dit::RopeTable t = dit::rope_table(at, axes, 10000.0);
    return ops::rope(x, t.cos.unsqueeze(1), t.sin.unsqueeze(1));
  }
  Tensor run(Tensor q, Tensor k, Tensor v, const Control& c) const {
    const Site site{T > 0 ? Role::JointAttention : Role::SelfAttention, 7, 0, Pass::Cond};
    attention::run_normed_hooks(c, site, layout, &positions, q, k, v);
    return attention::attend(rope(q, ids), rope(k, ids), v, layout, site, c, 0.0f, &positions);
  }
  // The official formulation for a target row (q1, k1, v1) against the reference (q0, k0, v0):
  // AdaIN of the grid Q/K, then every query over [own keys; lambda * RoPE(reference grid keys of
  // `frames`, shifted ids)] in one softmax, the appended logits shifted by ln s.
  Tensor official(const Tensor& q0, const Tensor& k0, const Tensor& v0, const Tensor& q1, const Tensor& k1,
                  const Tensor& v1, double s, double lambda, const std::vector<int64_t>& frames) const {
    const int64_t N = grid_tokens(), per_frame = Hg * Wg;
    auto adain_grid = [&](const Tensor& x, const Tensor& r) {
      const Tensor g = attention::adain(x.narrow(1, T, N), r.narrow(1, T, N));
      return T > 0 ? ops::concat({x.narrow(1, 0, T), g}, 1) : g;
    };
    const std::vector<int64_t> shifted = attention::reference_ids(ids, 3, layout, true);
    std::vector<Tensor> k_parts, v_parts;
    std::vector<int64_t> k_ids;
    for (int64_t f : frames) {
      k_parts.push_back(k0.narrow(1, T + f * per_frame, per_frame));
      v_parts.push_back(v0.narrow(1, T + f * per_frame, per_frame));
      k_ids.insert(k_ids.end(), shifted.begin() + f * per_frame * 3, shifted.begin() + (f + 1) * per_frame * 3);
    }
    const Tensor q = rope(adain_grid(q1, q0), ids), k = rope(adain_grid(k1, k0), ids);
    const Tensor k_ref = ops::affine(rope(ops::concat(k_parts, 1), k_ids), float(lambda), 0.0f);
    std::vector<double> bias(size_t(T + N), 0.0);
    bias.insert(bias.end(), k_ids.size() / 3, std::log(s));
    return explicit_attention(q, ops::concat({k, k_ref}, 1), ops::concat({v1, ops::concat(v_parts, 1)}, 1),
                              1.0 / std::sqrt(double(D)), bias);
  }
};

TEST(AlignedGen, TargetRowEqualsTheOfficialFormulation) {
  const JointCall call;
  samplers::TorchGenerator gen(11);
  const Shape shape = call.shape();
  const Tensor q0 = gen.randn(shape), k0 = gen.randn(shape), v0 = gen.randn(shape);
  const Tensor q1 = ops::affine(gen.randn(shape), 1.5f, 0.5f), k1 = gen.randn(shape), v1 = gen.randn(shape);
  const Tensor plain0 = call.run(q0, k0, v0, {}), plain1 = call.run(q1, k1, v1, {});
  for (const double s : {1.0, 0.4}) {
    SCOPED_TRACE(cat("strength ", s));
    const AlignedGen ag({s, 1.1, {7}});
    const Tensor ref = call.run(q0, k0, v0, {nullptr, &ag.hooks(), 0});
    EXPECT_EQ(max_abs(ref, plain0), 0.0);  // reference protection
    const Tensor got = call.run(q1, k1, v1, {nullptr, &ag.hooks(), 1});
    EXPECT_LE(max_abs(got, call.official(q0, k0, v0, q1, k1, v1, s, 1.1, {0})), 2e-6);
    EXPECT_GT(max_abs(got, plain1), 1e-2);
  }
  // A target before its reference row in a step is an error.
  const AlignedGen ag({1.0, 1.1, {7}});
  test::expect_error([&] { call.run(q1, k1, v1, {nullptr, &ag.hooks(), 1}); }, {"row 1", "before the reference row 0"});
}

// Video self-attention (no text, 3 frames): the appended segment holds every frame, or with
// frame_stride 2 frames 0 and 2 only.
TEST(AlignedGen, VideoRowsAndFrameStride) {
  const JointCall call(0, 3);
  samplers::TorchGenerator gen(12);
  const Shape shape = call.shape();
  const Tensor q0 = gen.randn(shape), k0 = gen.randn(shape), v0 = gen.randn(shape);
  const Tensor q1 = gen.randn(shape), k1 = gen.randn(shape), v1 = gen.randn(shape);
  for (const int64_t stride : {1, 2}) {
    SCOPED_TRACE(cat("frame stride ", stride));
    AlignedGenOptions o{1.0, 1.1, {7}};
    o.frame_stride = stride;
    const AlignedGen ag(o);
    call.run(q0, k0, v0, {nullptr, &ag.hooks(), 0});
    const Tensor got = call.run(q1, k1, v1, {nullptr, &ag.hooks(), 1});
    const std::vector<int64_t> frames = stride == 1 ? std::vector<int64_t>{0, 1, 2} : std::vector<int64_t>{0, 2};
    EXPECT_LE(max_abs(got, call.official(q0, k0, v0, q1, k1, v1, 1.0, 1.1, frames)), 2e-6);
  }
  AlignedGenOptions bad{1.0, 1.1, {7}};
  bad.frame_stride = 0;
  test::expect_error([&] { AlignedGen{bad}; }, "frame_stride");
}

// --- the tiny models -------------------------------------------------------------------------

const std::string kFlux = test::kGolden + "flux_tiny/dit/";
const std::string kWan = test::kGolden + "wan_tiny/dit/";

template <typename Config>
Config read_config(const std::string& dir, weights::Family family) {
  std::ifstream in(dir + "config.json");
  return weights::config_from_json(family, nlohmann::json::parse(in), "config.json").as<Config>();
}

struct Flux {
  weights::ModelWeights w = weights::ModelWeights::open(kFlux + "weights.safetensors");
  weights::FluxDitConfig config = read_config<weights::FluxDitConfig>(kFlux, weights::Family::flux_dit);
  dit::FluxModel model{w, config};
  weights::Checkpoint io = weights::Checkpoint::open(kFlux + "io.safetensors");
  // Row r uses golden case r's inputs (different noise and text), at step `step`.
  Tensor forward(int row, const Control& c = {}, int step = 0) const {
    auto in = [&](const char* name) { return io.get(cat("case", row, ".", name)).select(0, 0); };
    return model.forward(in("img"), in("img_ids"), in("txt"), in("txt_ids"), 0.6, in("y"), 3.5, step, c, Pass::Cond);
  }
};

struct Wan {
  weights::Checkpoint io = weights::Checkpoint::open(kWan + "io.safetensors");
  weights::ModelWeights w = weights::ModelWeights::open(kWan + "weights.safetensors");
  weights::WanDitConfig config = read_config<weights::WanDitConfig>(kWan, weights::Family::wan_dit);
  dit::WanModel model{w, config};
  Tensor xs[2] = {io.get("x"), samplers::TorchGenerator(4).randn(io.get("x").shape())};
  Tensor forward(int row, const Control& c = {}, int step = 0, Pass pass = Pass::Cond) const {
    return model.forward(xs[row], 500.0, io.get(pass == Pass::Uncond ? "context_1" : "context_0"), step, c, pass);
  }
};

// Plain runs, then the lockstep order of two steps (row 0, row 1 per step): the reference is
// bit for bit its solo run, the target changes, strength 0 and row 0 alone change nothing.
template <typename Model>
void check_rows(const Model& m, const std::vector<int>& layers) {
  const Tensor plain0 = m.forward(0), plain1 = m.forward(1);
  const AlignedGen off({0.0, 1.1, layers}), on({1.0, 1.1, layers});
  EXPECT_EQ(max_abs(m.forward(0, {nullptr, &off.hooks(), 0}), plain0), 0.0);
  EXPECT_EQ(max_abs(m.forward(1, {nullptr, &off.hooks(), 1}), plain1), 0.0);
  for (int step = 0; step < 2; ++step) {
    EXPECT_EQ(max_abs(m.forward(0, {nullptr, &on.hooks(), 0}, step), plain0), 0.0) << "reference, step " << step;
    const double changed = max_abs(m.forward(1, {nullptr, &on.hooks(), 1}, step), plain1);
    EXPECT_GT(changed, 1e-4) << "target, step " << step;
  }
  // A batch of one: only row 0, with the hooks, is the plain run.
  const AlignedGen alone({1.0, 1.1, layers});
  EXPECT_EQ(max_abs(m.forward(0, {nullptr, &alone.hooks(), 0}), plain0), 0.0);
  // Sharing off (no AdaIN, strength ~0) leaves the target close to plain: the hooks are the change.
  const AlignedGen faint({1e-9, 1.1, layers, true, false});
  m.forward(0, {nullptr, &faint.hooks(), 0});
  EXPECT_LT(max_abs(m.forward(1, {nullptr, &faint.hooks(), 1}), plain1), 1e-5);
}

TEST(AlignedGen, FluxTinyRows) {
  const Flux f;
  const std::vector<int> layers = attention::aligned_gen_flux_layers(f.config.depth, f.config.depth_single_blocks);
  EXPECT_EQ(layers, (std::vector<int>{2, 3}));
  check_rows(f, layers);
}

TEST(AlignedGen, WanTinyRows) {
  const Wan w;
  check_rows(w, attention::aligned_gen_wan_layers(w.config.num_layers));
  // CFG's passes keep separate references: the uncond target reads the uncond reference.
  const AlignedGen on({1.0, 1.1, {0, 1}});
  w.forward(0, {nullptr, &on.hooks(), 0}, 0, Pass::Cond);
  test::expect_error([&] { w.forward(1, {nullptr, &on.hooks(), 1}, 0, Pass::Uncond); }, "before the reference row 0");
}

}  // namespace
}  // namespace ditkit
