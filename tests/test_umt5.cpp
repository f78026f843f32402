// The umT5 text encoder against the official Wan2.1 T5Encoder (golden wan_tiny/t5): relative
// position buckets and bias, embedding, first block, full output and the trimmed per-prompt
// contexts, from Wan-named and transformers-named weights, and from bf16-stored weights.
// The shared-table (T5 v1.1) path must equal the per-layer path given equal tables.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/ops.h"
#include "text/umt5.h"
#include "weights/checkpoint.h"

using namespace ditkit;

namespace {

const std::string kDir = std::string(DITKIT_TEST_DATA) + "/golden/wan_tiny/t5/";

struct Diff {
  double max = 0, mean = 0;
};

Diff diff(const Tensor& got, const Tensor& want) {
  EXPECT_EQ(got.shape(), want.shape()) << got.str() << " vs " << want.str();
  const auto a = got.to_vector(), b = want.to_vector();
  Diff d;
  if (a.size() != b.size() || a.empty()) return {INFINITY, INFINITY};
  for (size_t i = 0; i < a.size(); ++i) {
    const double e = std::fabs(double(a[i]) - b[i]);
    d.max = std::max(d.max, e);
    d.mean += e;
  }
  d.mean /= double(a.size());
  return d;
}

weights::T5Config golden_config() {
  std::ifstream f(kDir + "config.json");
  return weights::config_from_json(weights::Family::umt5, nlohmann::json::parse(f), "t5/config.json")
      .as<weights::T5Config>();
}

const weights::Checkpoint& golden_io() {
  static const weights::Checkpoint io = weights::Checkpoint::open(kDir + "io.safetensors");
  return io;
}

// Every golden tensor of the encoder within max_tol (and mean_tol on average).
void check_against_golden(const text::UMT5Encoder& enc, double max_tol, double mean_tol) {
  const auto& io = golden_io();
  const Tensor ids = io.get("ids"), mask = io.get("mask");

  const Diff bias = diff(enc.position_bias(0, 32, 32), io.get("pos_bias_block0"));
  EXPECT_LE(bias.max, max_tol) << "pos_bias_block0";

  std::vector<Tensor> hidden;
  const Tensor out = enc.forward(ids, mask, &hidden);
  ASSERT_EQ(hidden.size(), 3u);
  for (const auto& [got, name] : {std::pair{hidden[0], "embed"}, {hidden[1], "block0_out"}, {out, "out"}}) {
    const Diff d = diff(got, io.get(name));
    EXPECT_LE(d.max, max_tol) << name;
    EXPECT_LE(d.mean, mean_tol) << name;
  }

  const auto context = enc.encode(ids, mask);
  const auto seq_lens = io.get("seq_lens").to_vector();
  ASSERT_EQ(context.size(), seq_lens.size());
  for (size_t i = 0; i < context.size(); ++i) {
    const std::string name = "context_" + std::to_string(i);
    EXPECT_EQ(context[i].shape(), (Shape{int64_t(seq_lens[i]), 64})) << name;
    const Diff d = diff(context[i], io.get(name));
    EXPECT_LE(d.max, max_tol) << name;
    EXPECT_LE(d.mean, mean_tol) << name;
  }
}

// Writes tensors to a temporary safetensors file and returns its path.
std::string write_variant(const std::string& file, const std::map<std::string, Tensor>& tensors) {
  const std::string path = testing::TempDir() + "/umt5_" + file;
  weights::save_safetensors(path, tensors);
  return path;
}

std::map<std::string, Tensor> all_tensors(const weights::ModelWeights& w) {
  std::map<std::string, Tensor> out;
  for (const auto& name : w.names()) out[name] = w.get(name);
  return out;
}

}  // namespace

TEST(UMT5, RelativeBucketsMatchOfficial) {
  const Tensor buckets = text::relative_position_buckets(32, 32, 32, 128);
  EXPECT_EQ(buckets.dtype(), DType::I64);
  EXPECT_EQ(buckets.to_vector(), golden_io().get("rel_buckets").to_vector());
}

TEST(UMT5, RelativeBucketsFarRange) {
  // Logarithmic part: |rel| 8..127 spread over buckets 8..15, 128 and beyond clamp to 15;
  // keys after the query use the upper half.
  const auto b = text::relative_position_buckets(1, 600, 32, 128).to_vector();
  EXPECT_EQ(b[7], 16 + 7);
  EXPECT_EQ(b[8], 16 + 8);
  EXPECT_EQ(b[16], 16 + 10);  // 8 + trunc(log(2) / log(16) * 8) = 10
  EXPECT_EQ(b[32], 16 + 12);
  EXPECT_EQ(b[64], 16 + 14);
  EXPECT_EQ(b[127], 16 + 15);
  EXPECT_EQ(b[599], 16 + 15);
  const auto back = text::relative_position_buckets(600, 1, 32, 128).to_vector();
  EXPECT_EQ(back[16], 10);
  EXPECT_EQ(back[599], 15);
}

TEST(UMT5, OfficialNamesMatchGolden) {
  const auto w = weights::ModelWeights::open(kDir + "weights.safetensors");
  ASSERT_EQ(w.family(), weights::Family::umt5);
  check_against_golden(text::UMT5Encoder(w, golden_config()), 1e-4, 1e-5);
}

TEST(UMT5, TransformersNamesMatchGolden) {
  const auto w = weights::ModelWeights::open(kDir + "weights_hf.safetensors");
  ASSERT_EQ(w.family(), weights::Family::umt5);
  ASSERT_EQ(w.detected().layout, weights::Layout::hf);
  const auto config = weights::config_from_shapes(w.family(), w.shapes()).as<weights::T5Config>();
  EXPECT_EQ(config.num_heads, 4);
  EXPECT_FALSE(config.shared_pos);
  check_against_golden(text::UMT5Encoder(w, config), 1e-4, 1e-5);
}

TEST(UMT5, Bf16WeightsStayWithinBf16Tolerance) {
  const auto w = weights::ModelWeights::open(kDir + "weights.safetensors");
  auto tensors = all_tensors(w);
  for (auto& [name, t] : tensors) t = t.to(DType::BF16);
  const auto w16 = weights::ModelWeights::open(write_variant("bf16.safetensors", tensors));
  EXPECT_EQ(w16.dtype("blocks.0.attn.q.weight"), DType::BF16);
  // Bounds from noise_floor.json's bf16 emulation of the official GPU path (T5 out: max 6.0e-2,
  // mean 8.9e-3). Rounding only the weights while computing in f32 measured max 3.3e-2, mean 5.2e-3.
  check_against_golden(text::UMT5Encoder(w16, golden_config()), 6e-2, 1e-2);
}

TEST(UMT5, SharedTableEqualsPerLayerTables) {
  // Give block 1 block 0's table, then store that once: as Wan's shared pos_embedding and as a
  // T5 v1.1 (t5_xxl) file with transformers names. All three encoders must agree exactly.
  const auto w = weights::ModelWeights::open(kDir + "weights.safetensors");
  auto per_layer = all_tensors(w);
  const Tensor table = per_layer.at("blocks.0.pos_embedding.embedding.weight");
  per_layer["blocks.1.pos_embedding.embedding.weight"] = table;

  auto wan_shared = per_layer;
  wan_shared.erase("blocks.0.pos_embedding.embedding.weight");
  wan_shared.erase("blocks.1.pos_embedding.embedding.weight");
  wan_shared["pos_embedding.embedding.weight"] = table;

  const auto hf = weights::ModelWeights::open(kDir + "weights_hf.safetensors");
  std::map<std::string, Tensor> t5;
  for (const auto& name : hf.checkpoint().names())
    if (name != "encoder.block.1.layer.0.SelfAttention.relative_attention_bias.weight")
      t5[name] = hf.checkpoint().get(name);

  auto config = golden_config();
  const auto& io = golden_io();
  const auto w_per = weights::ModelWeights::open(write_variant("per_layer.safetensors", per_layer));
  const Tensor want = text::UMT5Encoder(w_per, config).forward(io.get("ids"), io.get("mask"));

  config.shared_pos = true;
  // Detection keys on block 0's table, which a shared-table Wan file lacks: name the family.
  const auto w_wan = weights::ModelWeights::open(write_variant("wan_shared.safetensors", wan_shared), "umt5");
  EXPECT_EQ(diff(text::UMT5Encoder(w_wan, config).forward(io.get("ids"), io.get("mask")), want).max, 0.0);

  const auto w_t5 = weights::ModelWeights::open(write_variant("t5.safetensors", t5));
  ASSERT_EQ(w_t5.family(), weights::Family::t5_xxl);
  const auto t5_config = weights::config_from_shapes(w_t5.family(), w_t5.shapes()).as<weights::T5Config>();
  EXPECT_TRUE(t5_config.shared_pos);
  EXPECT_EQ(diff(text::UMT5Encoder(w_t5, t5_config).forward(io.get("ids"), io.get("mask")), want).max, 0.0);
}

TEST(UMT5, BadInputsAreNamed) {
  const auto w = weights::ModelWeights::open(kDir + "weights.safetensors");
  const text::UMT5Encoder enc(w, golden_config());
  const Tensor ids = golden_io().get("ids");
  try {
    enc.forward(ids, ids.narrow(1, 0, 8));
    FAIL() << "mask of the wrong shape accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("does not match ids"), std::string::npos) << e.what();
  }
  const Tensor bad_ids = Tensor::from_vector({5, 1000}, {1, 2}).to(DType::I64);
  EXPECT_THROW(enc.forward(bad_ids, Tensor::from_vector({1, 1}, {1, 2}).to(DType::I64)), Error);

  auto config = golden_config();
  config.num_layers = 3;
  try {
    text::UMT5Encoder(w, config);
    FAIL() << "missing block accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("blocks.2.attn.q.weight"), std::string::npos) << e.what();
  }
  const auto vae =
      weights::ModelWeights::open(std::string(DITKIT_TEST_DATA) + "/golden/wan_tiny/vae/weights.safetensors");
  EXPECT_THROW(text::UMT5Encoder(vae, golden_config()), Error);
}
