// Attention hooks: site selection, no-op hooks leave the Wan model bit-identical, PAG / SoftPAG
// (the hook's output per head; u = 0 and an empty layer set change nothing), the guidance
// formula of the sampler loop, and FreeSwim's dual path on the tiny Wan model (cross-attention
// override, cache mode reusing stored outputs, counted full-branch passes).
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "attention/freeswim.h"
#include "attention/kind.h"
#include "attention/pag.h"
#include "attention/plan.h"
#include "core/ops.h"
#include "dit/wan.h"
#include "samplers/denoise.h"
#include "samplers/torch_rng.h"
#include "test_util.h"

namespace ditkit {
namespace {

using attention::Hooks;
using attention::Pass;
using attention::Role;
using attention::Site;

const std::string kDit = test::kGolden + "wan_tiny/dit/";

double max_abs_diff(const Tensor& a, const Tensor& b) {
  const auto x = a.contiguous().to_vector(), y = b.contiguous().to_vector();
  EXPECT_EQ(x.size(), y.size());
  double m = 0;
  for (size_t i = 0; i < x.size() && i < y.size(); ++i) m = std::max(m, std::fabs(double(x[i]) - double(y[i])));
  return m;
}

// The tiny Wan model (2 layers, 4 heads of 32, grid 2 x 4 x 4) and its golden inputs.
struct Tiny {
  weights::Checkpoint io = weights::Checkpoint::open(kDit + "io.safetensors");
  weights::ModelWeights w = weights::ModelWeights::open(kDit + "weights.safetensors");
  dit::WanModel model{w, config()};
  Tensor x = io.get("x"), context = io.get("context_0"), uncond = io.get("context_1");
  static weights::WanDitConfig config() {
    std::ifstream in(kDit + "config.json");
    return weights::config_from_json(weights::Family::wan_dit, nlohmann::json::parse(in), "config.json")
        .as<weights::WanDitConfig>();
  }
  Tensor forward(const attention::Control& c = {}, Pass pass = Pass::Cond, int step = 0) const {
    return model.forward(x, 500.0, context, step, c, pass);
  }
};

// Acts everywhere and changes nothing.
class NoOpHook final : public attention::Hook {
 public:
  bool applies(const Site&) const override { return true; }
  void before(attention::AttentionCall& call) const override { ++calls; (void)call; }
  void after(const attention::AttentionCall&, Tensor&) const override {}
  mutable int calls = 0;
};

TEST(AttentionHooks, WhereSelectsSites) {
  attention::Where all;
  EXPECT_TRUE(all.matches(Site{Role::CrossAttention, 7, 3, Pass::Uncond}));
  EXPECT_TRUE(all.matches(Site{Role::SelfAttention, -1, -1, Pass::Cond}));
  attention::Where w{{1, 3}, 2, 5, {Pass::Perturbed}, {Role::SelfAttention, Role::JointAttention}};
  EXPECT_TRUE(w.matches(Site{Role::SelfAttention, 3, 2, Pass::Perturbed}));
  EXPECT_TRUE(w.matches(Site{Role::JointAttention, 1, 4, Pass::Perturbed}));
  EXPECT_FALSE(w.matches(Site{Role::SelfAttention, 2, 2, Pass::Perturbed}));   // layer
  EXPECT_FALSE(w.matches(Site{Role::SelfAttention, 3, 5, Pass::Perturbed}));   // step end excluded
  EXPECT_FALSE(w.matches(Site{Role::SelfAttention, 3, -1, Pass::Perturbed}));  // no step label
  EXPECT_FALSE(w.matches(Site{Role::SelfAttention, 3, 2, Pass::Cond}));        // pass
  EXPECT_FALSE(w.matches(Site{Role::CrossAttention, 3, 2, Pass::Perturbed}));  // role
}

TEST(AttentionHooks, NoOpHooksLeaveTheModelBitIdentical) {
  Tiny t;
  const Tensor plain = t.forward();
  auto hook = std::make_shared<NoOpHook>();
  const Hooks hooks{hook};
  const attention::Plan dense;
  for (const attention::Control c : {attention::Control{nullptr, &hooks}, attention::Control{&dense, &hooks}}) {
    EXPECT_EQ(max_abs_diff(t.forward(c), plain), 0.0);
  }
  EXPECT_EQ(hook->calls, 2 * 2 * 2);  // 2 forwards x 2 layers x (self + cross)
}

// Moves every RoPE position of one layer by `shift` on each axis (a per-token shift when `spread`).
class ShiftPositions final : public attention::Hook {
 public:
  ShiftPositions(int layer, int64_t shift, bool spread) : layer_(layer), shift_(shift), spread_(spread) {}
  bool applies(const Site& s) const override { return s.layer == layer_ && s.role == Role::SelfAttention; }
  bool positions(const Site&, const attention::TokenLayout&, std::vector<int64_t>& ids) const override {
    for (size_t i = 0; i < ids.size(); ++i) ids[i] += spread_ ? int64_t(i) : shift_;
    return true;
  }

 private:
  int layer_;
  int64_t shift_;
  bool spread_;
};

// RoPE only sees position differences, so moving every token by the same amount changes
// nothing (to rounding) while a per-token move changes the output: the positions hook is used.
TEST(AttentionHooks, PositionHookMovesRopePositions) {
  Tiny t;
  const Tensor plain = t.forward();
  const Hooks same{std::make_shared<ShiftPositions>(1, 5, false)};
  const Hooks spread{std::make_shared<ShiftPositions>(1, 0, true)};
  const double shifted = max_abs_diff(t.forward({nullptr, &same}), plain);
  EXPECT_LT(shifted, 1e-4);
  EXPECT_GT(max_abs_diff(t.forward({nullptr, &spread}), plain), 100 * shifted + 1e-3);
}

// The hook's output: V on the selected heads of the selected layers, O elsewhere; SoftPAG mixes.
TEST(AttentionHooks, PagHookGivesValuesOnSelectedHeads) {
  samplers::TorchGenerator gen(7);
  const Tensor q = gen.randn({2, 24, 4, 16}), k = gen.randn({2, 24, 4, 16}), v = gen.randn({2, 24, 4, 16});
  attention::TokenLayout layout;
  layout.width = 24;
  const Site site{Role::SelfAttention, 3, 0, Pass::Perturbed};
  const Tensor o = attention::attend(q, k, v, layout, site);
  const Hooks pag{std::make_shared<attention::PerturbedAttentionHook>(std::vector<int>{3}, std::vector<int>{1, 2})};
  const Tensor out = attention::attend(q, k, v, layout, site, {nullptr, &pag});
  for (int64_t h = 0; h < 4; ++h) {
    const Tensor want = (h == 1 || h == 2 ? v : o).select(2, h);
    EXPECT_EQ(max_abs_diff(out.select(2, h), want), 0.0) << "head " << h;
  }
  // Not in the perturbed pass, not on layer 3, or cross-attention: untouched.
  EXPECT_EQ(max_abs_diff(attention::attend(q, k, v, layout, Site{Role::SelfAttention, 3, 0, Pass::Cond}, {nullptr, &pag}),
                         o),
            0.0);
  EXPECT_EQ(max_abs_diff(attention::attend(q, k, v, layout, Site{Role::SelfAttention, 2, 0, Pass::Perturbed},
                                           {nullptr, &pag}),
                         o),
            0.0);
  // SoftPAG on all heads: (1 - u) O + u V.
  const Hooks soft{std::make_shared<attention::PerturbedAttentionHook>(std::vector<int>{3}, std::vector<int>{}, 0.3f)};
  const Tensor mixed = attention::attend(q, k, v, layout, site, {nullptr, &soft});
  EXPECT_LE(max_abs_diff(mixed, ops::add(ops::affine(o, 0.7f, 0.0f), ops::affine(v, 0.3f, 0.0f))), 1e-6);
  test::expect_error([] { attention::PerturbedAttentionHook({0}, {}, 1.5f); }, "[0, 1]");
  const Hooks bad_head{std::make_shared<attention::PerturbedAttentionHook>(std::vector<int>{3}, std::vector<int>{4})};
  test::expect_error([&] { attention::attend(q, k, v, layout, site, {nullptr, &bad_head}); }, {"head 4", "4 heads"});
}

TEST(AttentionHooks, SoftPagZeroAndEmptyLayersEqualTheCondPass) {
  Tiny t;
  const Tensor cond = t.forward();
  const Hooks soft0{std::make_shared<attention::PerturbedAttentionHook>(std::vector<int>{0, 1}, std::vector<int>{}, 0.0f)};
  EXPECT_EQ(max_abs_diff(t.forward({nullptr, &soft0}, Pass::Perturbed), cond), 0.0);
  const Hooks none{std::make_shared<attention::PerturbedAttentionHook>(std::vector<int>{}, std::vector<int>{})};
  EXPECT_EQ(max_abs_diff(t.forward({nullptr, &none}, Pass::Perturbed), cond), 0.0);
  // PAG on layer 1 changes the perturbed pass only.
  const Hooks pag{std::make_shared<attention::PerturbedAttentionHook>(std::vector<int>{1}, std::vector<int>{})};
  EXPECT_GT(max_abs_diff(t.forward({nullptr, &pag}, Pass::Perturbed), cond), 1e-4);
  EXPECT_EQ(max_abs_diff(t.forward({nullptr, &pag}, Pass::Cond), cond), 0.0);
}

// v = v_u + s (v_c - v_u) + w (v_c - v_ptb); without CFG v_c + w (v_c - v_ptb); passes only when needed.
TEST(AttentionHooks, GuidanceFormula) {
  struct Case {
    double cfg, pag;
    int calls_per_step;
  };
  for (const Case c : {Case{5.0, 2.0, 3}, Case{1.0, 3.0, 2}, Case{4.0, 0.0, 2}, Case{1.0, 0.0, 1}}) {
    SCOPED_TRACE(cat("cfg ", c.cfg, " pag ", c.pag));
    const auto schedule = samplers::wan_schedule(samplers::SamplerKind::Euler, 3, 5.0);
    samplers::FlowSampler sampler(samplers::SamplerKind::Euler, schedule);
    int calls = 0;
    const float vc = 1.5f, vu = -0.25f, vp = 0.75f;
    auto model = [&](const Tensor& x, int, Pass pass) {
      ++calls;
      const float v = pass == Pass::Cond ? vc : pass == Pass::Uncond ? vu : vp;
      EXPECT_NE(pass, Pass::FullBranch);
      return Tensor::full(x.shape(), v);
    };
    const Tensor out = samplers::denoise(sampler, Tensor::full({2, 3}, 1.0f), model, {c.cfg, c.pag});
    EXPECT_EQ(calls, 3 * c.calls_per_step);
    const double v = vu + c.cfg * (vc - vu) + c.pag * (vc - vp);
    // Euler: x moves by (sigma_{i+1} - sigma_i) v each step, so in all by (sigma_end - sigma_0) v.
    const double want = 1.0 + (schedule.sigmas.back() - schedule.sigmas.front()) * v;
    for (float got : out.to_vector()) EXPECT_NEAR(got, want, 1e-5);
  }
}

// --- FreeSwim dual path on the tiny model -------------------------------------------------

// Records each layer's cross-attention output (after the projection) per pass.
struct CrossTaps {
  std::map<std::string, Tensor> taps;
  std::string label;
  void attach(dit::WanModel& m) {
    m.set_tap([this](const std::string& name, const Tensor& v) {
      if (name.find("crossattn_out") != std::string::npos || name.find("selfattn_out") != std::string::npos)
        taps[label + name] = v;
    });
  }
};

TEST(AttentionHooks, DualPathOverridesCrossAttentionWithTheFullBranch) {
  Tiny t;
  // Window 3 x 3 on the 4 x 4 grid (train 2 x 2 tokens: d_h = d_w = 1).
  const attention::Plan plan(attention::parse_kind("sliding-window:train_tokens_hw=2x2,cache_steps=2"));
  auto dual = attention::DualPath::for_kind(plan.default_kind());
  ASSERT_TRUE(dual);
  EXPECT_EQ(dual->cache_steps(), 2);
  const attention::Control control{&plan, &dual->hooks()};
  const attention::Control window_only{&plan, nullptr};
  CrossTaps taps;
  taps.attach(t.model);

  taps.label = "full/";
  const Tensor full = t.forward(control, Pass::FullBranch);
  taps.label = "window/";
  const Tensor window = t.forward(window_only, Pass::Cond);
  taps.label = "dual/";
  const Tensor dual_out = t.forward(control, Pass::Cond);
  EXPECT_EQ(dual->store().full_branch_passes(), 1);

  // The full branch is dense self-attention with FreeSwim's scale and the model's own cross-attention.
  taps.label = "dense/";
  const float s = plan.default_kind().scale(32);
  const attention::Plan dense_scaled(attention::make_kind("dense", {{"scale", s}}));
  EXPECT_LE(max_abs_diff(full, t.forward({&dense_scaled, nullptr})), 1e-5);
  for (int layer = 0; layer < 2; ++layer) {
    const std::string cross = cat("block", layer, "_crossattn_out");
    // Every layer's cross-attention output is the full branch's.
    EXPECT_EQ(max_abs_diff(taps.taps["dual/" + cross], taps.taps["full/" + cross]), 0.0) << cross;
    EXPECT_GT(max_abs_diff(taps.taps["window/" + cross], taps.taps["full/" + cross]), 1e-5) << cross;
  }
  // Layer 0's self-attention is the window's (same input); from there on the override changes the stream.
  EXPECT_EQ(max_abs_diff(taps.taps["dual/block0_selfattn_out"], taps.taps["window/block0_selfattn_out"]), 0.0);
  EXPECT_GT(max_abs_diff(dual_out, window), 1e-5);

  // Layer 1 sees the overridden stream.
  EXPECT_GT(max_abs_diff(taps.taps["dual/block1_selfattn_out"], taps.taps["window/block1_selfattn_out"]), 1e-6);

  // The uncond pass in cache mode is window-only with its own cross-attention.
  taps.label = "uncond/";
  EXPECT_EQ(max_abs_diff(t.forward(control, Pass::Uncond), t.forward(window_only, Pass::Uncond)), 0.0);
}

// With a window covering the whole grid the window pass is the full branch, so the overridden
// cond pass equals dense attention with FreeSwim's scale everywhere.
TEST(AttentionHooks, DualPathWithAFullWindowEqualsTheScaledDenseModel) {
  Tiny t;
  const attention::Plan plan(attention::parse_kind("sliding-window:train_tokens_hw=8x8"));
  auto dual = attention::DualPath::for_kind(plan.default_kind());
  const attention::Control control{&plan, &dual->hooks()};
  t.forward(control, Pass::FullBranch);
  const attention::Plan dense_scaled(attention::make_kind("dense", {{"scale", plan.default_kind().scale(32)}}));
  EXPECT_LE(max_abs_diff(t.forward(control, Pass::Cond), t.forward({&dense_scaled, nullptr})), 1e-5);
}

// The velocity function of `ditkit t2v` (apps/components.cpp) in miniature: the full branch
// before the window passes that need it.
struct DualPathRun {
  Tiny t;
  CrossTaps taps;
  std::vector<std::string> passes;
  int run(const std::string& kind, int steps) {
    const attention::Plan plan(attention::parse_kind(kind));
    auto dual = attention::DualPath::for_kind(plan.default_kind());
    const attention::Control control{&plan, dual ? &dual->hooks() : nullptr};
    taps.attach(t.model);
    samplers::FlowSampler sampler(samplers::SamplerKind::Euler,
                                  samplers::wan_schedule(samplers::SamplerKind::Euler, steps, 5.0));
    auto velocity = [&](const Tensor& x, int step, Pass pass) {
      const Tensor& ctx = pass == Pass::Uncond ? t.uncond : t.context;
      auto eval = [&](Pass p) {
        taps.label = cat(step, int(p), "/");
        passes.push_back(taps.label);
        return t.model.forward(x, sampler.schedule().timesteps[size_t(step)], ctx, step, control, p);
      };
      if (dual && dual->full_branch_before(step, pass)) eval(Pass::FullBranch);
      return eval(pass);
    };
    samplers::denoise(sampler, t.x, velocity, {5.0});
    return dual ? dual->store().full_branch_passes() : 0;
  }
};

TEST(AttentionHooks, DualPathCacheModeReusesStoredOutputs) {
  DualPathRun r;
  EXPECT_EQ(r.run("sliding-window:train_tokens_hw=2x2,cache_steps=2", 5), 3);  // steps 0, 2, 4
  EXPECT_EQ(r.passes.size(), 5u * 2 + 3);
  const std::string full = cat(int(Pass::FullBranch)), cond = cat(int(Pass::Cond));
  for (const char* layer : {"block0_crossattn_out", "block1_crossattn_out"}) {
    // Step 1's cond pass reuses step 0's full-branch outputs; step 2 refreshes them.
    EXPECT_EQ(max_abs_diff(r.taps.taps["1" + cond + "/" + layer], r.taps.taps["0" + full + "/" + layer]), 0.0);
    EXPECT_EQ(max_abs_diff(r.taps.taps["3" + cond + "/" + layer], r.taps.taps["2" + full + "/" + layer]), 0.0);
    EXPECT_GT(max_abs_diff(r.taps.taps["2" + full + "/" + layer], r.taps.taps["0" + full + "/" + layer]), 1e-6);
  }
  EXPECT_FALSE(r.taps.taps.count("1" + full + "/block0_crossattn_out"));
}

TEST(AttentionHooks, DualPathNoCacheAndOff) {
  DualPathRun no_cache;
  EXPECT_EQ(no_cache.run("sliding-window:train_tokens_hw=2x2,cache_steps=1", 3), 6);  // before cond and uncond
  DualPathRun off;
  EXPECT_EQ(off.run("sliding-window:train_tokens_hw=2x2,dual_path=false", 3), 0);
  EXPECT_EQ(off.passes.size(), 3u * 2);
}

// --- the normed stage, positions, lse, appended keys and lockstep rows ---------------------

// normed() sees q/k before RoPE: rotating them with the call's own ids through Positions::rope
// gives exactly what before() then sees; also records each call's row label.
class RopeCheck final : public attention::Hook {
 public:
  bool applies(const Site& s) const override { return s.role == Role::SelfAttention; }
  void normed(attention::AttentionCall& call) const override {
    ASSERT_NE(call.positions, nullptr);
    ASSERT_EQ(call.positions->ids->size(), size_t(call.q.dim(1) * call.positions->axes));
    expected_k = call.positions->rope(call.k, *call.positions->ids);
    rows.push_back(call.site.row);
  }
  void before(attention::AttentionCall& call) const override { diff = std::max(diff, max_abs_diff(call.k, expected_k)); }
  mutable Tensor expected_k;
  mutable double diff = 0;
  mutable std::vector<int> rows;
};

TEST(AttentionHooks, NormedStageAndPositionsRope) {
  Tiny t;
  auto hook = std::make_shared<RopeCheck>();
  const Hooks hooks{hook};
  attention::Control c{nullptr, &hooks, 3};
  EXPECT_EQ(max_abs_diff(t.forward(c), t.forward()), 0.0);
  EXPECT_EQ(hook->diff, 0.0);
  EXPECT_EQ(hook->rows, (std::vector<int>{3, 3}));  // 2 layers, row label from the Control
}

// Appends a copy of every key and value: attention over a duplicated key set is unchanged
// (spec §5.7 #10), and the call asks for lse, which must be the log-sum-exp of its scores.
class AppendCopy final : public attention::Hook {
 public:
  bool applies(const Site& s) const override { return s.role == Role::SelfAttention; }
  void before(attention::AttentionCall& call) const override {
    call.k = ops::concat({call.k, call.k}, 1);
    call.v = ops::concat({call.v, call.v}, 1);
    call.want_lse = true;
  }
  void after(const attention::AttentionCall& call, Tensor&) const override {
    const int64_t L = call.q.dim(1), H = call.q.dim(2), D = call.q.dim(3);
    const auto q = call.q.contiguous().to_vector(), k = call.k.contiguous().to_vector();
    const auto lse = call.lse.to_vector();
    ASSERT_EQ(int64_t(lse.size()), H * L);
    const double scale = 1.0 / std::sqrt(double(D));
    for (int64_t h = 0; h < H; ++h)
      for (int64_t i = 0; i < L; ++i) {
        double m = -1e300, sum = 0;
        std::vector<double> s(size_t(2 * L));
        for (int64_t j = 0; j < 2 * L; ++j) {
          double dot = 0;
          for (int64_t d = 0; d < D; ++d) dot += double(q[size_t((i * H + h) * D + d)]) * k[size_t((j * H + h) * D + d)];
          s[size_t(j)] = dot * scale;
          m = std::max(m, s[size_t(j)]);
        }
        for (double x : s) sum += std::exp(x - m);
        lse_err = std::max(lse_err, std::fabs(lse[size_t(h * L + i)] - (m + std::log(sum))));
      }
  }
  mutable double lse_err = 0;
};

TEST(AttentionHooks, AppendedKeysRunDenseAndLseIsReturned) {
  Tiny t;
  auto hook = std::make_shared<AppendCopy>();
  const Hooks hooks{hook};
  const attention::Plan sparse(attention::parse_kind("neighborhood:kernel_size=1x3x3"));
  EXPECT_LT(max_abs_diff(t.forward({nullptr, &hooks}), t.forward()), 2e-5);
  EXPECT_LT(max_abs_diff(t.forward({&sparse, &hooks}), t.forward()), 2e-5);  // appended keys: dense kernel
  EXPECT_LT(hook->lse_err, 2e-5);
}

// Rows in lockstep: each pass runs rows 0, 1, ... in order; the result of every row equals its
// own denoise() run; before_step may overwrite a row.
TEST(AttentionHooks, DenoiseRowsRunsPassesRowByRow) {
  const auto schedule = samplers::wan_schedule(samplers::SamplerKind::Euler, 3, 5.0);
  std::vector<std::pair<Pass, int>> order;
  auto model = [&](const Tensor& x, int, Pass pass, int row) {
    order.push_back({pass, row});
    return ops::affine(x, pass == Pass::Cond ? 0.5f : -0.25f, float(row));
  };
  samplers::FlowSampler a(samplers::SamplerKind::Euler, schedule), b(samplers::SamplerKind::Euler, schedule);
  const std::vector<Tensor> out =
      samplers::denoise_rows({&a, &b}, {Tensor::full({2}, 1.0f), Tensor::full({2}, 2.0f)}, model, {3.0, 0.0});
  ASSERT_EQ(order.size(), 3u * 4);
  for (size_t i = 0; i < order.size(); ++i) {
    EXPECT_EQ(order[i].first, (i / 2) % 2 == 0 ? Pass::Cond : Pass::Uncond);
    EXPECT_EQ(order[i].second, int(i % 2));
  }
  for (int row = 0; row < 2; ++row) {
    samplers::FlowSampler alone(samplers::SamplerKind::Euler, schedule);
    const Tensor want = samplers::denoise(alone, Tensor::full({2}, 1.0f + row),
                                          [&](const Tensor& x, int step, Pass pass) { return model(x, step, pass, row); },
                                          {3.0, 0.0});
    EXPECT_EQ(max_abs_diff(out[size_t(row)], want), 0.0);
  }
  // Replaying a fixed latent into row 0 before every step.
  samplers::FlowSampler c(samplers::SamplerKind::Euler, schedule), d(samplers::SamplerKind::Euler, schedule);
  std::vector<int> steps_seen;
  const std::vector<Tensor> replayed = samplers::denoise_rows(
      {&c, &d}, {Tensor::full({2}, 1.0f), Tensor::full({2}, 2.0f)}, model, {1.0, 0.0}, nullptr,
      [&](int step, std::vector<Tensor>& xs) {
        steps_seen.push_back(step);
        xs[0] = Tensor::full({2}, 7.0f);
      });
  EXPECT_EQ(steps_seen, (std::vector<int>{0, 1, 2}));
  const double s2 = schedule.sigmas[3] - schedule.sigmas[2];
  EXPECT_NEAR(replayed[0].to_vector()[0], 7.0 + s2 * 0.5 * 7.0, 1e-5);
}

}  // namespace
}  // namespace ditkit
