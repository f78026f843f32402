// Wan2.1 DiT (WanModel t2v) against the official PyTorch outputs (golden wan_tiny/dit): every
// case-0 intermediate, the velocity of all three cases, with the official weight names and
// with diffusers names through ModelWeights; plus the RoPE table and config errors.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "core/ops.h"
#include "dit/rope.h"
#include "dit/wan.h"

namespace ditkit {
namespace {

const std::string kDir = std::string(DITKIT_TEST_DATA) + "/golden/wan_tiny/dit/";

double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  double m = a.size() == b.size() ? 0.0 : INFINITY;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) m = std::max(m, std::fabs(double(a[i]) - double(b[i])));
  return m;
}

weights::WanDitConfig read_config(const std::string& file) {
  std::ifstream in(kDir + file);
  return weights::config_from_json(weights::Family::wan_dit, nlohmann::json::parse(in), file)
      .as<weights::WanDitConfig>();
}

struct Golden {
  weights::Checkpoint io = weights::Checkpoint::open(kDir + "io.safetensors");
  Tensor get(const std::string& name) const { return io.get(name); }
  double t(int i) const { return io.get(cat("t_", i)).to(DType::F64).to_vector()[0]; }
};

TEST(WanDit, ConfigsMatchTinyModel) {
  for (const char* file : {"config.json", "config_diffusers.json"}) {
    const auto c = read_config(file);
    EXPECT_EQ(c.dim, 128) << file;
    EXPECT_EQ(c.ffn_dim, 256) << file;
    EXPECT_EQ(c.num_heads, 4) << file;
    EXPECT_EQ(c.num_layers, 2) << file;
    EXPECT_EQ(c.text_dim, 64) << file;
    EXPECT_TRUE(c.qk_norm && c.cross_attn_norm) << file;
  }
  EXPECT_EQ(read_config("config.json").text_len, 32);
  // diffusers configs carry no text_len (its pipeline pads to 512 itself): the real default stays.
  EXPECT_EQ(read_config("config_diffusers.json").text_len, 512);
}

TEST(WanDit, RopeTableMatchesOfficialFreqs) {
  Golden g;
  const Tensor ref = g.get("c0_rope_freqs");  // F64 [64, 16, 2]: (cos, sin) at position p on every axis
  const int64_t positions = ref.dim(0), pairs = ref.dim(1);
  std::vector<int64_t> pos;
  for (int64_t p = 0; p < positions; ++p) pos.insert(pos.end(), {p, p, p});
  EXPECT_EQ(dit::wan_rope_axes(32), (std::vector<int64_t>{12, 10, 10}));
  EXPECT_EQ(dit::wan_rope_axes(128), (std::vector<int64_t>{44, 42, 42}));
  const dit::RopeTable t = dit::rope_table(pos, dit::wan_rope_axes(32), 10000.0);
  ASSERT_EQ(t.cos.shape(), (Shape{positions, pairs}));
  const std::vector<float> r = ref.to_vector(), c = t.cos.to_vector(), s = t.sin.to_vector();
  std::vector<float> ref_cos, ref_sin;
  for (size_t i = 0; i < r.size(); i += 2) {
    ref_cos.push_back(r[i]);
    ref_sin.push_back(r[i + 1]);
  }
  EXPECT_LE(max_abs_diff(c, ref_cos), 1e-6);
  EXPECT_LE(max_abs_diff(s, ref_sin), 1e-6);
}

TEST(WanDit, SinusoidIsCosFirst) {
  Golden g;
  EXPECT_LE(max_abs_diff(dit::sinusoidal_embedding(g.t(0), 256).to_vector(), g.get("c0_t_sinusoid").to_vector()),
            1e-6);
}

// Every golden intermediate of case 0 and the output of every case, for one weight file.
void check_model(const std::string& weights_file, const std::string& config_file) {
  Golden g;
  const auto w = weights::ModelWeights::open(kDir + weights_file);
  ASSERT_EQ(w.family(), weights::Family::wan_dit);
  auto config = read_config(config_file);
  config.text_len = 32;  // the tiny model's; config_diffusers.json cannot say it
  dit::WanModel model(w, config);

  std::map<std::string, Tensor> taps;
  model.set_tap([&](const std::string& name, const Tensor& v) { taps[name] = v; });
  const Tensor out0 = model.forward(g.get("x"), g.t(0), g.get("context_0"));
  int compared = 0;
  for (const std::string& name : g.io.names()) {
    if (name.rfind("c0_", 0) != 0 || name == "c0_rope_freqs") continue;
    const std::string key = name.substr(3);
    ASSERT_TRUE(taps.count(key)) << "no intermediate " << key;
    const Tensor ref = g.get(name);
    EXPECT_EQ(taps[key].shape(), ref.shape()) << key;
    EXPECT_LE(max_abs_diff(taps[key].to_vector(), ref.to_vector()), 1e-4) << key << " (" << weights_file << ")";
    ++compared;
  }
  EXPECT_EQ(compared, 18);
  model.set_tap({});

  for (int i = 0; i < 3; ++i) {
    const Tensor out = i == 0 ? out0 : model.forward(g.get("x"), g.t(i), g.get(cat("context_", i)));
    const Tensor ref = g.get(cat("out_", i));
    ASSERT_EQ(out.shape(), ref.shape());
    EXPECT_EQ(out.dtype(), DType::F32);
    EXPECT_LE(max_abs_diff(out.to_vector(), ref.to_vector()), 1e-4) << "case " << i << " (" << weights_file << ")";
  }
}

TEST(WanDit, OfficialWeightsMatchGolden) { check_model("weights.safetensors", "config.json"); }

TEST(WanDit, DiffusersWeightsMatchGolden) { check_model("weights_diffusers.safetensors", "config_diffusers.json"); }

// bf16 weights (as the real checkpoints store them) stay bf16 and land within the bf16 bounds of README §8.
TEST(WanDit, Bf16WeightsWithinBf16Tolerance) {
  Golden g;
  const auto f32 = weights::ModelWeights::open(kDir + "weights.safetensors");
  std::map<std::string, Tensor> bf16;
  for (const std::string& name : f32.names()) bf16[name] = f32.get(name).to(DType::BF16);
  const std::string path = testing::TempDir() + "wan_dit_bf16.safetensors";
  weights::save_safetensors(path, bf16);
  const auto w = weights::ModelWeights::open(path);
  EXPECT_EQ(w.dtype("blocks.0.self_attn.q.weight"), DType::BF16);
  dit::WanModel model(w, read_config("config.json"));
  const std::vector<float> out = model.forward(g.get("x"), g.t(0), g.get("context_0")).to_vector();
  const std::vector<float> ref = g.get("out_0").to_vector();
  double sum = 0;
  for (size_t i = 0; i < out.size(); ++i) sum += std::fabs(double(out[i]) - ref[i]);
  EXPECT_LE(max_abs_diff(out, ref), 5e-2);
  EXPECT_LE(sum / double(out.size()), 1e-2);
}

// The context is zero-padded to text_len inside: explicit zero rows (or none at all) change nothing.
TEST(WanDit, ContextPaddingIsZeroRows) {
  Golden g;
  const auto w = weights::ModelWeights::open(kDir + "weights.safetensors");
  dit::WanModel model(w, read_config("config.json"));
  const Tensor ctx = g.get("context_2");  // [1, 64]
  const Tensor full = ops::pad(ctx, {0, 0, 0, 31});
  EXPECT_EQ(max_abs_diff(model.forward(g.get("x"), 1, full).to_vector(), model.forward(g.get("x"), 1, ctx).to_vector()),
            0.0);
  const Tensor zeros = Tensor::zeros({32, 64}, DType::F32);
  EXPECT_EQ(max_abs_diff(model.forward(g.get("x"), 1, zeros).to_vector(),
                         model.forward(g.get("x"), 1, Tensor::zeros({0, 64}, DType::F32)).to_vector()),
            0.0);
}

// The same model on the GPU (weights moved at construction, inputs moved by forward): f32 GEMMs,
// so the float32 bound holds.
TEST(WanDit, CudaMatchesGolden) {
  if (!cuda_available()) GTEST_SKIP() << "no CUDA GPU";
  Golden g;
  const auto w = weights::ModelWeights::open(kDir + "weights.safetensors");
  dit::WanModel model(w, read_config("config.json"), Device::cuda());
  for (int i = 0; i < 3; ++i) {
    const Tensor out = model.forward(g.get("x"), g.t(i), g.get(cat("context_", i)));
    EXPECT_TRUE(out.device().is_cuda());
    EXPECT_LE(max_abs_diff(out.to_vector(), g.get(cat("out_", i)).to_vector()), 1e-4) << "case " << i;
  }
}

TEST(WanDit, RejectsBadInputs) {
  Golden g;
  const auto w = weights::ModelWeights::open(kDir + "weights.safetensors");
  const auto config = read_config("config.json");
  dit::WanModel model(w, config);
  auto message = [&](const Tensor& x, const Tensor& ctx) {
    try {
      model.forward(x, 999, ctx);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message(Tensor::zeros({16, 2, 7, 8}, DType::F32), g.get("context_0")).find("patch size"),
            std::string::npos);
  EXPECT_NE(message(Tensor::zeros({8, 2, 8, 8}, DType::F32), g.get("context_0")).find("latent must be [16"),
            std::string::npos);
  EXPECT_NE(message(g.get("x"), Tensor::zeros({33, 64}, DType::F32)).find("context must be [<= 32, 64]"),
            std::string::npos);

  auto wrong = config;
  wrong.ffn_dim = 512;
  try {
    dit::WanModel bad(w, wrong);
    ADD_FAILURE() << "wrong ffn_dim accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("blocks.0.ffn.0.weight"), std::string::npos) << e.what();
  }
  auto i2v = config;
  i2v.model_type = "i2v";
  EXPECT_THROW(dit::WanModel(w, i2v), Error);
}

}  // namespace
}  // namespace ditkit
