// FLUX's T5 v1.1 text encoder (golden flux_tiny/t5, README §7): SentencePiece ids with the
// slow T5Tokenizer rules (no cleaning, truncation, </s>, padding), the shared relative position
// buckets and bias, every block and the final output over the padded sequence WITHOUT an attention
// mask (pads attended), the long unpadded case, and weights stored as f16 / fp8 or with only one
// of the tied embedding names.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/ops.h"
#include "test_util.h"
#include "text/tokenizer.h"
#include "text/umt5.h"
#include "weights/checkpoint.h"
#include "weights/model_files.h"

using namespace ditkit;

namespace {

const std::string kDir = ditkit::test::kGolden + "flux_tiny/t5/";

const weights::Checkpoint& io() {
  static const weights::Checkpoint ck = weights::Checkpoint::open(kDir + "io.safetensors");
  return ck;
}


// README §7 thresholds for a float32 runtime.
void expect_close(const Tensor& got, const Tensor& want, const std::string& what, double rel = 1e-5,
                  double max_abs = 5e-5) {
  const test::Err e = test::compare(got, want);
  EXPECT_LE(e.rel_rms, rel) << what << " (max abs " << e.max_abs << ")";
  EXPECT_LE(e.max_abs, max_abs) << what << " (rel RMS " << e.rel_rms << ")";
}

std::string utf8(const Tensor& bytes) {
  if (bytes.numel() == 0) return {};
  const Tensor c = bytes.contiguous();
  return std::string(c.data<char>(), size_t(c.numel()));
}

weights::T5Config golden_config() {
  std::ifstream f(kDir + "config.json");
  return weights::config_from_json(weights::Family::t5_xxl, nlohmann::json::parse(f), "t5/config.json")
      .as<weights::T5Config>();
}

const weights::ModelWeights& golden_weights() {
  static const weights::ModelWeights w = weights::ModelWeights::open(kDir + "weights.safetensors");
  return w;
}

// FLUX runs T5 without a mask: all ones.
Tensor no_mask(const Tensor& ids) { return Tensor::full(ids.shape(), 1.0f, DType::I64); }

int64_t max_length() {
  std::ifstream f(kDir + "config.json");
  return nlohmann::json::parse(f)["_golden"]["max_length"].get<int64_t>();
}

TEST(FluxT5, ConfigFromJsonAndShapesAgree) {
  const weights::T5Config c = golden_config();
  EXPECT_TRUE(c.shared_pos);
  EXPECT_EQ(c.vocab, 1128);
  EXPECT_EQ(c.dim, 32);
  EXPECT_EQ(c.dim_attn, 32);
  EXPECT_EQ(c.num_heads, 2);
  EXPECT_EQ(c.num_layers, 3);
  const auto& w = golden_weights();
  EXPECT_EQ(w.family(), weights::Family::t5_xxl);
  const auto inferred = weights::config_from_shapes(weights::Family::t5_xxl, w.shapes()).as<weights::T5Config>();
  EXPECT_TRUE(inferred.shared_pos);
  EXPECT_EQ(inferred.dim_attn, c.dim_attn);
  EXPECT_EQ(inferred.dim_ffn, c.dim_ffn);
  EXPECT_EQ(inferred.num_heads, c.num_heads);
  EXPECT_EQ(inferred.vocab, c.vocab);
}

TEST(FluxT5, TokenizerIdsMatchSlowT5Tokenizer) {
  const auto tok = text::load_t5_tokenizer(kDir + "tokenizer_2/spiece.model", text::Clean::none);
  const Tensor want = io().get("input_ids");
  const int64_t len = max_length();
  ASSERT_EQ(want.dim(1), len);
  for (int64_t i = 0; i < want.dim(0); ++i) {
    const std::string prompt = utf8(io().get("prompt" + std::to_string(i) + "_utf8"));
    const text::Tokens t = tok->encode(prompt, len);
    std::vector<int64_t> expected;
    for (float v : want.select(0, i).to_vector()) expected.push_back(int64_t(v));
    EXPECT_EQ(t.ids, expected) << "prompt " << i << ": '" << prompt << "'";
  }
  const Tensor long_ids = io().get("long.input_ids");
  const text::Tokens t = tok->encode(utf8(io().get("long.prompt_utf8")), long_ids.dim(1));
  std::vector<int64_t> expected;
  for (float v : long_ids.to_vector()) expected.push_back(int64_t(v));
  EXPECT_EQ(t.ids, expected) << "long prompt";
}

TEST(FluxT5, RelativePositionBuckets) {
  const Tensor rel = io().get("bucket_table.relative_position"), want = io().get("bucket_table.bucket");
  const auto r = rel.to_vector(), b = want.to_vector();
  const int64_t span = int64_t(-r.front());
  ASSERT_EQ(int64_t(r.back()), span);
  // Row `span` of a [span+1, 2 span+1] table holds key - query = -span .. span.
  const Tensor table = text::relative_position_buckets(span + 1, 2 * span + 1, 32, 128).select(0, span);
  EXPECT_EQ(table.to_vector(), b);
  const Tensor small = io().get("dbg.rel_bucket");
  EXPECT_EQ(text::relative_position_buckets(small.dim(0), small.dim(1), 32, 128).to_vector(), small.to_vector());
}

TEST(FluxT5, ForwardUnmaskedMatchesEveryBlock) {
  const text::UMT5Encoder enc(golden_weights(), golden_config());
  const Tensor ids = io().get("input_ids");
  const int64_t l = ids.dim(1);
  expect_close(enc.position_bias(0, l, l), io().get("dbg.position_bias"), "position_bias", 1e-7, 1e-6);
  // Every block uses block 0's table (T5 v1.1), not a table of its own.
  expect_close(enc.position_bias(2, l, l), io().get("dbg.position_bias"), "position_bias of block 2", 1e-7, 1e-6);

  std::vector<Tensor> hidden;
  const Tensor out = enc.forward(ids, no_mask(ids), &hidden);
  ASSERT_EQ(hidden.size(), 4u);
  expect_close(hidden[0], io().get("dbg.embeddings"), "dbg.embeddings");
  for (size_t i = 0; i < 3; ++i)
    expect_close(hidden[i + 1], io().get("dbg.block" + std::to_string(i) + "_out"), "block " + std::to_string(i));
  expect_close(out, io().get("last_hidden_state"), "last_hidden_state");

  // A mask over the pads changes the real tokens' embeddings: FLUX must not pass one.
  std::vector<float> real = ids.to_vector();
  for (float& v : real) v = v != 0.0f;  // pad id 0
  const Tensor masked = enc.forward(ids, Tensor::from_vector(real, ids.shape(), DType::I64));
  EXPECT_GT(test::compare(masked, io().get("last_hidden_state")).rel_rms, 1e-3);
}

TEST(FluxT5, LongSequenceClampedBuckets) {
  const text::UMT5Encoder enc(golden_weights(), golden_config());
  const Tensor ids = io().get("long.input_ids");
  expect_close(enc.forward(ids, no_mask(ids)), io().get("long.last_hidden_state"), "long.last_hidden_state");
}

// The golden tensors rewritten through `convert` (only the official embedding name kept), loaded
// the way the CLI loads them.
Tensor forward_converted(DType dtype) {
  const weights::Checkpoint src = weights::Checkpoint::open(kDir + "weights.safetensors");
  std::map<std::string, Tensor> tensors;
  for (const std::string& name : src.names())
    if (name != "encoder.embed_tokens.weight") tensors[name] = src.get(name).to(dtype);
  const std::string path = ditkit::test::temp_path("t5_" + std::string(dtype_name(dtype)) + ".safetensors");
  weights::save_safetensors(path, tensors);
  const weights::ModelWeights w = weights::ModelWeights::open(path);
  EXPECT_EQ(w.family(), weights::Family::t5_xxl);
  const auto config = weights::config_from_shapes(weights::Family::t5_xxl, w.shapes()).as<weights::T5Config>();
  const text::UMT5Encoder enc(w, config);
  const Tensor ids = io().get("input_ids");
  return enc.forward(ids, no_mask(ids));
}

// ComfyUI's t5xxl_fp8_e4m3fn_scaled layout: every linear weight stored as W / s in fp8 beside its
// scalar s ("<module>.scale_weight"), plus the "scaled_fp8" marker. Loading applies s.
TEST(FluxT5, ScaledFp8WeightsApplyTheirScale) {
  const weights::Checkpoint src = weights::Checkpoint::open(kDir + "weights.safetensors");
  std::map<std::string, Tensor> tensors{{"scaled_fp8", Tensor::zeros({0}, DType::F8_E4M3)}};
  const float s = 0.03125f;  // a power of two: W / s in fp8 is the same grid as W in fp8, shifted
  for (const std::string& name : src.names()) {
    if (name == "encoder.embed_tokens.weight") continue;
    const Tensor w = src.get(name);
    if (w.ndim() == 2 && name != "shared.weight" && name.ends_with(".weight")) {
      tensors[name] = ops::mul(w, Tensor::full({1}, 1.0f / s)).to(DType::F8_E4M3);
      tensors[name.substr(0, name.size() - 6) + "scale_weight"] = Tensor::full({}, s);
    } else {
      tensors[name] = w.to(DType::F8_E4M3);
    }
  }
  const std::string path = ditkit::test::temp_path("t5_scaled_fp8.safetensors");
  weights::save_safetensors(path, tensors);
  const weights::ModelWeights w = weights::ModelWeights::open(path);
  const auto config = weights::config_from_shapes(weights::Family::t5_xxl, w.shapes()).as<weights::T5Config>();
  const Tensor ids = io().get("input_ids");
  const Tensor got = text::UMT5Encoder(w, config).forward(ids, no_mask(ids));
  const test::Err e = test::compare(got, io().get("last_hidden_state"));
  EXPECT_LE(e.rel_rms, 0.15) << "scaled fp8 weights (unscaled they would be 32x too large)";
  EXPECT_LE(test::compare(got, forward_converted(DType::F8_E4M3)).rel_rms, 0.1) << "scaled fp8 vs plain fp8";
}

TEST(FluxT5, HalfAndFp8StoredWeights) {
  const Tensor want = io().get("last_hidden_state");
  const test::Err f16 = test::compare(forward_converted(DType::F16), want);
  EXPECT_LE(f16.rel_rms, 2e-3) << "f16 weights";
  const test::Err bf16 = test::compare(forward_converted(DType::BF16), want);
  EXPECT_LE(bf16.rel_rms, 3e-2) << "bf16 weights";
  const test::Err fp8 = test::compare(forward_converted(DType::F8_E4M3), want);
  EXPECT_LE(fp8.rel_rms, 0.15) << "fp8 e4m3 weights";
}

}  // namespace
