// FLUX.1 DiT (FluxModel) against the official PyTorch outputs (golden flux_tiny/dit): every case
// of cases.json (batch items one at a time) with every intermediate the golden stores, the
// timestep embedding and RoPE tables, packing; plus PAG/SoftPAG on the joint attention and a
// sparse attention kind on the image grid with the text prefix.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "attention/pag.h"
#include "attention/plan.h"
#include "core/device.h"
#include "core/ops.h"
#include "dit/flux.h"
#include "test_util.h"

namespace ditkit {
namespace {

using attention::Pass;

const std::string kDir = std::string(DITKIT_TEST_DATA) + "/golden/flux_tiny/dit/";

// README §5 thresholds for a float32 runtime.
constexpr double kRelRms = 1e-4, kMaxAbs = 5e-4;

struct Diff {
  double max_abs = 0, rel_rms = 0;
};

Diff diff(const std::vector<float>& got, const std::vector<float>& want) {
  EXPECT_EQ(got.size(), want.size());
  if (got.size() != want.size()) return {INFINITY, INFINITY};
  double err = 0, ref = 0, m = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const double d = double(got[i]) - double(want[i]);
    m = std::max(m, std::fabs(d));
    err += d * d;
    ref += double(want[i]) * double(want[i]);
  }
  return {m, ref > 0 ? std::sqrt(err / ref) : std::sqrt(err)};
}

double max_abs_diff(const Tensor& a, const Tensor& b) { return diff(a.to_vector(), b.to_vector()).max_abs; }

weights::FluxDitConfig read_config() {
  std::ifstream in(kDir + "config.json");
  return weights::config_from_json(weights::Family::flux_dit, nlohmann::json::parse(in), "config.json")
      .as<weights::FluxDitConfig>();
}

struct Golden {
  weights::Checkpoint io = weights::Checkpoint::open(kDir + "io.safetensors");
  nlohmann::json cases = nlohmann::json::parse(std::ifstream(kDir + "cases.json"));
  // Batch item b of a golden tensor [B, ...].
  Tensor item(int c, const std::string& name, int64_t b) const {
    return io.get(cat("case", c, ".", name)).select(0, b);
  }
};

struct Model {
  weights::ModelWeights weights = weights::ModelWeights::open(kDir + "weights.safetensors");
  dit::FluxModel model{weights, read_config()};
};

Model& tiny() {
  static Model m;
  return m;
}

// One forward of case c, item b, with the given attention control and pass.
Tensor run_case(const Golden& g, int c, int64_t b, const attention::Control& control = {}, Pass pass = Pass::Cond) {
  const auto& cs = g.cases[c];
  return tiny().model.forward(g.item(c, "img", b), g.item(c, "img_ids", b), g.item(c, "txt", b),
                              g.item(c, "txt_ids", b), cs["timesteps"][b].get<double>(), g.item(c, "y", b),
                              cs["guidance"][b].get<double>(), 0, control, pass);
}

TEST(FluxDit, ConfigMatchesTinyModel) {
  const auto c = read_config();
  EXPECT_EQ(c.hidden_size, 64);
  EXPECT_EQ(c.num_heads, 2);
  EXPECT_EQ(c.depth, 2);
  EXPECT_EQ(c.depth_single_blocks, 2);
  EXPECT_EQ(c.axes_dim, (std::vector<int64_t>{8, 12, 12}));
  EXPECT_TRUE(c.guidance_embed && c.qkv_bias);
  EXPECT_EQ(tiny().model.num_layers(), 4);
  EXPECT_EQ(tiny().model.mlp_hidden(), 256);
}

TEST(FluxDit, TimestepEmbeddingTable) {
  Golden g;
  const std::vector<float> t = g.io.get("temb.t").to_vector();
  const Tensor want = g.io.get("temb.out");
  for (size_t i = 0; i < t.size(); ++i) {
    const Diff d = diff(dit::flux_timestep_embedding(t[i]).to_vector(), want.select(0, int64_t(i)).to_vector());
    EXPECT_LE(d.max_abs, 5e-4) << "t = " << t[i];
  }
}

// pe [.., T, D/2, 2, 2] holds [[cos, -sin], [sin, cos]] per angle.
void expect_rope(const dit::RopeTable& got, const Tensor& pe, const std::string& what) {
  const int64_t n = pe.dim(-4), pairs = pe.dim(-3);
  const Tensor table = pe.reshape({n, pairs, 2, 2});
  EXPECT_LE(max_abs_diff(got.cos, table.select(3, 0).select(2, 0)), 1e-5) << what;
  EXPECT_LE(max_abs_diff(got.sin, table.select(3, 0).select(2, 1)), 1e-5) << what;
  EXPECT_LE(max_abs_diff(ops::affine(got.sin, -1.0f, 0.0f), table.select(3, 1).select(2, 0)), 1e-5) << what;
}

TEST(FluxDit, RopeTables) {
  Golden g;
  const auto c = read_config();
  expect_rope(dit::flux_rope(g.io.get("pe_custom.ids").select(0, 0), c.axes_dim, c.theta), g.io.get("pe_custom.pe"),
              "pe_custom (fractional, negative ids)");
  for (int k = 0; k < int(g.cases.size()); ++k)
    for (int64_t b = 0; b < g.cases[k]["batch"].get<int64_t>(); ++b) {
      const Tensor ids = ops::concat({g.item(k, "txt_ids", b), g.item(k, "img_ids", b)}, 0);
      expect_rope(dit::flux_rope(ids, c.axes_dim, c.theta), g.item(k, "dbg.pe", b), cat("case ", k, " item ", b));
    }
}

TEST(FluxDit, PackingAndIds) {
  Golden g;
  for (int k = 0; k < int(g.cases.size()); ++k) {
    const Tensor latent = g.item(k, "latent_unpacked", 0);
    const Tensor packed = dit::pack_latents(latent);
    EXPECT_EQ(max_abs_diff(packed, g.item(k, "img", 0)), 0.0) << "case " << k;
    EXPECT_EQ(max_abs_diff(dit::unpack_latents(packed, latent.dim(1), latent.dim(2)), latent), 0.0);
    const auto hw = g.cases[k]["latent_hw"];
    EXPECT_EQ(max_abs_diff(dit::image_ids(hw[0].get<int64_t>() / 2, hw[1].get<int64_t>() / 2), g.item(k, "img_ids", 0)),
              0.0);
  }
  test::expect_error([] { dit::pack_latents(Tensor::zeros({16, 7, 8}, DType::F32)); }, "even");
}

// Every case and batch item: the output and every intermediate the golden stores.
TEST(FluxDit, MatchesOfficialForward) {
  Golden g;
  for (int k = 0; k < int(g.cases.size()); ++k) {
    for (int64_t b = 0; b < g.cases[k]["batch"].get<int64_t>(); ++b) {
      std::map<std::string, Tensor> taps;
      tiny().model.set_tap([&](const std::string& name, const Tensor& v) { taps[name] = v.contiguous(); });
      const Tensor out = run_case(g, k, b);
      tiny().model.set_tap({});
      taps["out"] = out;
      int compared = 0;
      Diff worst;
      std::string worst_name;
      for (const auto& [name, value] : taps) {
        const std::string key = name == "out" ? "out" : "dbg." + name;
        if (!g.io.contains(cat("case", k, ".", key))) continue;
        const Diff d = diff(value.to_vector(), g.item(k, key, b).to_vector());
        EXPECT_LE(d.rel_rms, kRelRms) << "case " << k << " item " << b << " " << key;
        EXPECT_LE(d.max_abs, kMaxAbs) << "case " << k << " item " << b << " " << key;
        if (name == "out")
          std::printf("  case %d item %lld: out max abs %.2e rel RMS %.2e", k, (long long)b, d.max_abs, d.rel_rms);
        if (d.rel_rms > worst.rel_rms) worst = d, worst_name = key;
        ++compared;
      }
      std::printf("; worst %s max abs %.2e rel RMS %.2e\n", worst_name.c_str(), worst.max_abs, worst.rel_rms);
      // Every dbg.* tensor of the case except the RoPE table (checked in RopeTables) has a tap.
      int stored = 0;
      for (const std::string& n : g.io.names())
        if (n.rfind(cat("case", k, ".dbg."), 0) == 0 && n != cat("case", k, ".dbg.pe")) ++stored;
      EXPECT_EQ(compared, stored + 1) << "case " << k;
    }
  }
}

// The same forward on the GPU (golden tolerances; TF32 is not used by the runtime's GEMMs).
TEST(FluxDit, CudaMatchesGolden) {
  if (!cuda_available()) GTEST_SKIP() << "no CUDA GPU";
  Golden g;
  const dit::FluxModel model(tiny().weights, read_config(), Device::cuda());
  for (int k = 0; k < int(g.cases.size()); ++k) {
    const auto& cs = g.cases[k];
    const Tensor out = model.forward(g.item(k, "img", 0), g.item(k, "img_ids", 0), g.item(k, "txt", 0),
                                     g.item(k, "txt_ids", 0), cs["timesteps"][0].get<double>(), g.item(k, "y", 0),
                                     cs["guidance"][0].get<double>());
    EXPECT_TRUE(out.device().is_cuda());
    const Diff d = diff(out.to_vector(), g.item(k, "out", 0).to_vector());
    EXPECT_LE(d.rel_rms, kRelRms) << "case " << k;
    EXPECT_LE(d.max_abs, kMaxAbs) << "case " << k;
  }
}

TEST(FluxDit, RejectsBadInputs) {
  Golden g;
  const Tensor img = g.item(0, "img", 0), ids = g.item(0, "img_ids", 0), txt = g.item(0, "txt", 0),
               tids = g.item(0, "txt_ids", 0), y = g.item(0, "y", 0);
  auto& m = tiny().model;
  test::expect_error([&] { m.forward(txt, ids, txt, tids, 1.0, y, 3.5); }, {"img", "64"});
  test::expect_error([&] { m.forward(img, tids, txt, tids, 1.0, y, 3.5); }, "img_ids");
  test::expect_error([&] { m.forward(img, ids, txt, ids, 1.0, y, 3.5); }, "txt_ids");
  test::expect_error([&] { m.forward(img, ids, txt, tids, 1.0, img, 3.5); }, "y must be");
}

// The official weights under `prefix`, cast to `dtype`, without the tensors `drop` names.
weights::ModelWeights renamed_weights(const std::string& prefix, DType dtype, const std::string& drop = "") {
  const weights::Checkpoint src = weights::Checkpoint::open(kDir + "weights.safetensors");
  std::map<std::string, Tensor> tensors;
  for (const std::string& n : src.names())
    if (drop.empty() || n.rfind(drop, 0) != 0) tensors[prefix + n] = src.get(n).to(dtype);
  auto ckpt = std::make_shared<const weights::Checkpoint>(weights::Checkpoint::from_tensors(std::move(tensors)));
  return weights::ModelWeights(ckpt, weights::detect(ckpt->names()));
}

// A ComfyUI single file (prefixed names) with BF16 weights, as real checkpoints store them:
// README §5 measures rel RMS ~4e-3 for bf16-rounded weights with f32 compute.
TEST(FluxDit, ComfyUiBf16Weights) {
  Golden g;
  const weights::ModelWeights w = renamed_weights("model.diffusion_model.", DType::BF16);
  EXPECT_EQ(w.detected().layout, weights::Layout::comfyui);
  const dit::FluxModel model(w, read_config());
  const auto& cs = g.cases[0];
  const Tensor out = model.forward(g.item(0, "img", 0), g.item(0, "img_ids", 0), g.item(0, "txt", 0),
                                   g.item(0, "txt_ids", 0), cs["timesteps"][0].get<double>(), g.item(0, "y", 0),
                                   cs["guidance"][0].get<double>());
  const Diff d = diff(out.to_vector(), g.item(0, "out", 0).to_vector());
  std::printf("  bf16 weights: out max abs %.2e rel RMS %.2e\n", d.max_abs, d.rel_rms);
  EXPECT_LE(d.rel_rms, 2e-2);
}

// Schnell-like: no guidance embedding, so the guidance argument changes nothing; a missing
// guidance_in with guidance_embed on is an error naming the tensor.
TEST(FluxDit, WithoutGuidanceEmbedding) {
  Golden g;
  auto config = read_config();
  test::expect_error([&] { dit::FluxModel(renamed_weights("", DType::F32, "guidance_in."), config); },
                     "guidance_in.in_layer.weight");
  config.guidance_embed = false;
  const dit::FluxModel model(renamed_weights("", DType::F32, "guidance_in."), config);
  auto run = [&](double guidance) {
    return model.forward(g.item(0, "img", 0), g.item(0, "img_ids", 0), g.item(0, "txt", 0), g.item(0, "txt_ids", 0),
                         0.5, g.item(0, "y", 0), guidance);
  };
  const Tensor a = run(3.5);
  EXPECT_EQ(max_abs_diff(run(0.0), a), 0.0);
  EXPECT_GT(max_abs_diff(a, run_case(g, 1, 0)), 1e-3);  // case 1 = the same inputs at t = 0.5 with guidance
}

// PAG / SoftPAG through the hooks on the joint attention (global layers: double 0..1, single 2..3).
TEST(FluxDit, PerturbedAttentionHook) {
  Golden g;
  using attention::PerturbedAttentionHook;
  const Tensor cond = run_case(g, 1, 0);
  const attention::Hooks none{std::make_shared<PerturbedAttentionHook>(std::vector<int>{}, std::vector<int>{})};
  EXPECT_EQ(max_abs_diff(run_case(g, 1, 0, {nullptr, &none}, Pass::Perturbed), cond), 0.0);
  const attention::Hooks soft0{
      std::make_shared<PerturbedAttentionHook>(std::vector<int>{0, 3}, std::vector<int>{}, 0.0f)};
  EXPECT_EQ(max_abs_diff(run_case(g, 1, 0, {nullptr, &soft0}, Pass::Perturbed), cond), 0.0);
  for (int layer : {1, 3}) {  // a double block and a single block
    const attention::Hooks pag{std::make_shared<PerturbedAttentionHook>(std::vector<int>{layer}, std::vector<int>{1})};
    EXPECT_GT(max_abs_diff(run_case(g, 1, 0, {nullptr, &pag}, Pass::Perturbed), cond), 1e-3) << "layer " << layer;
    EXPECT_EQ(max_abs_diff(run_case(g, 1, 0, {nullptr, &pag}, Pass::Cond), cond), 0.0) << "layer " << layer;
  }
}

// The sites and layout each attention call gets; the position ids hooks see.
class RecordCalls final : public attention::Hook {
 public:
  mutable std::vector<attention::AttentionCall> calls;
  mutable std::vector<std::vector<int64_t>> seen_positions;
  bool applies(const attention::Site&) const override { return true; }
  bool positions(const attention::Site&, const attention::TokenLayout&, std::vector<int64_t>& ids) const override {
    seen_positions.push_back(ids);
    return false;
  }
  void before(attention::AttentionCall& call) const override { calls.push_back(call); }
};

TEST(FluxDit, AttentionSitesAndLayout) {
  Golden g;
  auto rec = std::make_shared<RecordCalls>();
  const attention::Hooks hooks{rec};
  const Tensor cond = run_case(g, 0, 0);
  EXPECT_EQ(max_abs_diff(run_case(g, 0, 0, {nullptr, &hooks}, Pass::Uncond), cond), 0.0);
  ASSERT_EQ(rec->calls.size(), 4u);
  for (int i = 0; i < 4; ++i) {
    const auto& c = rec->calls[i];
    EXPECT_EQ(c.site.layer, i);
    EXPECT_EQ(c.site.role, attention::Role::JointAttention);
    EXPECT_EQ(c.site.pass, Pass::Uncond);
    EXPECT_EQ(c.site.step, 0);
    EXPECT_EQ(c.layout.frames, 1);
    EXPECT_EQ(c.layout.height, 4);
    EXPECT_EQ(c.layout.width, 4);
    EXPECT_EQ(c.layout.text_tokens, 12);
    EXPECT_EQ(c.layout.text_position, attention::TextPosition::Prefix);
    EXPECT_EQ(c.q.shape(), (Shape{1, 28, 2, 32}));
  }
  ASSERT_EQ(rec->seen_positions.size(), 4u);
  // Text ids (zeros) first, then (0, row, col).
  const std::vector<int64_t>& p = rec->seen_positions[0];
  ASSERT_EQ(p.size(), 28u * 3);
  EXPECT_EQ(std::vector<int64_t>(p.begin(), p.begin() + 36), std::vector<int64_t>(36, 0));
  EXPECT_EQ(std::vector<int64_t>(p.begin() + 36 + 5 * 3, p.begin() + 36 + 6 * 3), (std::vector<int64_t>{0, 1, 1}));
}

// Moves every RoPE position of one layer: the same shift everywhere changes nothing (RoPE sees
// differences only), a per-token move changes the output.
class ShiftPositions final : public attention::Hook {
 public:
  ShiftPositions(int layer, bool spread) : layer_(layer), spread_(spread) {}
  bool applies(const attention::Site& s) const override { return s.layer == layer_; }
  bool positions(const attention::Site&, const attention::TokenLayout&, std::vector<int64_t>& ids) const override {
    for (size_t i = 0; i < ids.size(); ++i) ids[i] += spread_ ? int64_t(i % 7) : 5;
    return true;
  }

 private:
  int layer_;
  bool spread_;
};

TEST(FluxDit, PositionHookMovesRopePositions) {
  Golden g;
  const Tensor plain = run_case(g, 0, 0);
  const attention::Hooks same{std::make_shared<ShiftPositions>(2, false)};
  const attention::Hooks spread{std::make_shared<ShiftPositions>(2, true)};
  const double shifted = max_abs_diff(run_case(g, 0, 0, {nullptr, &same}), plain);
  EXPECT_LT(shifted, 1e-4);
  EXPECT_GT(max_abs_diff(run_case(g, 0, 0, {nullptr, &spread}), plain), 100 * shifted + 1e-3);
}

// A sparse kind on the 4x4 grid with the 12 text tokens as a prefix: runs, stays finite, and
// differs from dense; a window that covers the whole grid equals dense.
TEST(FluxDit, SparseKindWithTextPrefix) {
  Golden g;
  const Tensor dense = run_case(g, 2, 0);
  const attention::Plan nat(attention::parse_kind("neighborhood:kernel_size=3x3"));
  const Tensor sparse = run_case(g, 2, 0, {&nat, nullptr});
  for (float v : sparse.to_vector()) ASSERT_TRUE(std::isfinite(v));
  EXPECT_GT(max_abs_diff(sparse, dense), 1e-3);
  const attention::Plan full(attention::parse_kind("neighborhood:kernel_size=4x4"));
  EXPECT_LE(max_abs_diff(run_case(g, 2, 0, {&full, nullptr}), dense), 1e-4);
}

}  // namespace
}  // namespace ditkit
