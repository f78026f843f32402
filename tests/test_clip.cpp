// CLIP-L for FLUX against the golden flux_tiny/clip (openai/CLIP tokenizer and text tower, HF
// CLIPTextModel names): token ids from the builtin vocabulary, the gz file and an HF
// tokenizer folder; text cleaning; last_hidden_state, pooler_output and the embeddings, from
// f32 weights and from f16 weights behind ComfyUI's prefix; the pooled `vec` of e2e_text.
#include <gtest/gtest.h>
#include <zlib.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/ops.h"
#include "test_util.h"
#include "text/clip.h"
#include "weights/checkpoint.h"

using namespace ditkit;
using text::ClipTokenizer;

namespace {

const std::string kDir = test::kGolden + "flux_tiny/clip/";

nlohmann::json read_json(const std::string& path) {
  std::ifstream f(path);
  return nlohmann::json::parse(f);
}

const weights::Checkpoint& golden_io() {
  static const weights::Checkpoint io = weights::Checkpoint::open(kDir + "io.safetensors");
  return io;
}

std::vector<int64_t> row(const Tensor& ids, int64_t i) {
  const std::vector<float> v = ids.select(0, i).to_vector();
  return {v.begin(), v.end()};
}

struct Diff {
  double max_abs = 0, rel_rms = 0;
};

Diff diff(const Tensor& got, const Tensor& want) {
  EXPECT_EQ(got.shape(), want.shape()) << got.str() << " vs " << want.str();
  const auto a = got.to_vector(), b = want.to_vector();
  if (a.size() != b.size() || a.empty()) return {INFINITY, INFINITY};
  double err = 0, ref = 0, max_abs = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    const double e = double(a[i]) - b[i];
    max_abs = std::max(max_abs, std::fabs(e));
    err += e * e;
    ref += double(b[i]) * b[i];
  }
  return {max_abs, std::sqrt(err / ref)};
}

weights::ClipTextConfig golden_config() {
  return weights::config_from_json(weights::Family::clip_l, read_json(kDir + "config.json"), "clip/config.json")
      .as<weights::ClipTextConfig>();
}

// The golden outputs within `rel` (rel RMS) and `max_abs`, for the HF-padded and the 0-padded ids.
void check_encoder(const text::ClipTextEncoder& enc, double rel, double max_abs) {
  const auto& io = golden_io();
  std::vector<Tensor> hidden;
  const text::ClipOutput out = enc.forward(io.get("input_ids"), &hidden);
  ASSERT_EQ(hidden.size(), size_t(enc.config().num_hidden_layers + 1));
  for (const auto& [name, got] : {std::pair{"dbg.embeddings", hidden[0]}, std::pair{"last_hidden_state", out.hidden},
                                  std::pair{"pooler_output", out.pooled}}) {
    const Diff d = diff(got, io.get(name));
    EXPECT_LE(d.rel_rms, rel) << name;
    EXPECT_LE(d.max_abs, max_abs) << name;
    std::printf("%-18s rel RMS %.2e  max abs %.2e\n", name, d.rel_rms, d.max_abs);
  }
  // openai's clip.tokenize pads with 0: the causal mask keeps the pooled state the same.
  const Diff pad0 = diff(enc.forward(io.get("input_ids_openai_pad0")).pooled, io.get("pooler_output"));
  EXPECT_LE(pad0.rel_rms, rel) << "pooler_output from 0-padded ids";
}

TEST(ClipTokenizer, BuiltinMatchesGoldenIds) {
  const ClipTokenizer& tok = ClipTokenizer::builtin();
  EXPECT_EQ(tok.vocab_size(), 49408);
  EXPECT_EQ(tok.sot_id(), 49406);
  EXPECT_EQ(tok.eot_id(), 49407);
  EXPECT_EQ(tok.pad_id(), 49407);
  const nlohmann::json cases = read_json(kDir + "tokens.json");
  const Tensor golden_ids = golden_io().get("input_ids");
  std::vector<std::string> prompts;
  for (size_t i = 0; i < cases.size(); ++i) {
    const auto& c = cases[i];
    const std::string prompt = c["prompt"];
    prompts.push_back(prompt);
    EXPECT_EQ(tok.encode_pieces(prompt), c["bpe_ids"].get<std::vector<int64_t>>()) << prompt;
    const std::vector<int64_t> ids = tok.encode(prompt);
    EXPECT_EQ(ids, c["input_ids"].get<std::vector<int64_t>>()) << prompt;
    EXPECT_EQ(std::find(ids.begin(), ids.end(), tok.eot_id()) - ids.begin(), c["eot_index"].get<int64_t>());
    EXPECT_EQ(ids, row(golden_ids, int64_t(i)));
  }
  const Tensor batch = tok.encode_batch(prompts);
  EXPECT_EQ(batch.shape(), (Shape{int64_t(prompts.size()), 77}));
  EXPECT_EQ(batch.dtype(), DType::I64);
  EXPECT_EQ(row(batch, 3), row(golden_ids, 3));
}

TEST(ClipTokenizer, BpeFileMatchesBuiltin) {
  const ClipTokenizer tok = ClipTokenizer::load(kDir + "bpe_simple_vocab_16e6.txt.gz");
  const ClipTokenizer& builtin = ClipTokenizer::builtin();
  ASSERT_EQ(tok.vocab_size(), builtin.vocab_size());
  for (int64_t id : {0, 255, 256, 320, 511, 512, 30000, 49405, 49406, 49407}) EXPECT_EQ(tok.token(id), builtin.token(id));
  EXPECT_EQ(tok.token(320), "a</w>");
  const std::string prompt = read_json(kDir + "tokens.json")[1]["prompt"];
  EXPECT_EQ(tok.encode(prompt), builtin.encode(prompt));
}

// The cleaning openai's tokenizer applies: ftfy, HTML-unescape twice, whitespace runs -> one
// space, strip, Python's lower() (full Unicode, final sigma).
TEST(ClipTokenizer, Cleaning) {
  EXPECT_EQ(ClipTokenizer::cleaned("  A   3D render\tof 2\n robots, It's   HIGHLY  "),
            "a 3d render of 2 robots, it's highly");
  EXPECT_EQ(ClipTokenizer::cleaned("Tom &amp;amp; Jerry"), "tom & jerry");
  EXPECT_EQ(ClipTokenizer::cleaned("\u201cＴＯＫＹＯ\u201d \uFB01sh\u00a0\u3000ΟΔΟΣ"), "\"tokyo\" fish οδος");
  EXPECT_EQ(ClipTokenizer::cleaned(""), "");
}

// Ids from openai's SimpleTokenizer (run with Python's `regex` module) for prompts with
// non-ASCII letters, marks, digits of other scripts, contractions in capitals, literal special
// tokens and HTML entities; the last prompt needs ftfy (ligatures, NFC) to match.
TEST(ClipTokenizer, MatchesOpenaiOnUnicode) {
  const ClipTokenizer& tok = ClipTokenizer::builtin();
  const std::vector<std::pair<std::string, std::vector<int64_t>>> cases = {
      {"café naïve résumé — 東京 🐱🐱 ΟΔΟΣ straße",
       {15304, 1097, 35689, 563, 29106, 7054, 4166, 2005, 48338, 21078, 361, 35710, 22979,
        138, 123, 138, 112, 138, 123, 139, 480, 1894, 127, 253, 324}},
      {"It'S THEY'RE we'Ve I'M you'LL he'D can'T x'''s 1234.5 ½ Ⅻ ٣",
       {585, 568, 889, 982, 649, 1200, 328, 880, 592, 1342, 797, 1896, 753, 713, 343,
        6, 8445, 338, 272, 273, 274, 275, 269, 276, 33613, 158, 227, 375, 149, 352}},
      {"Tom &amp;amp; Jerry &lt;3 <|endoftext|> a<|startoftext|>b !<|endoftext|>",
       {2435, 261, 9164, 283, 274, 49407, 320, 49406, 321, 0, 27, 347, 40786, 4160, 91, 285}},
      {"tabs\tand\nnewlines\u00a0nbsp\u3000ideographic  \u2003em", {29163, 537, 1218, 3418, 6459, 4393, 1909, 78, 4245, 2270}},
      {"İstanbul \u01c5emal \ufb00 x̧y e\u0301",
       {328, 16384, 11231, 67, 129, 122, 908, 566, 1304, 343, 136, 356, 344, 4166}},
  };
  for (const auto& [prompt, want] : cases) EXPECT_EQ(tok.encode_pieces(prompt), want) << prompt;
}

TEST(ClipTokenizer, TruncatesAndPads) {
  const ClipTokenizer& tok = ClipTokenizer::builtin();
  EXPECT_EQ(tok.encode("", 5), (std::vector<int64_t>{49406, 49407, 49407, 49407, 49407}));
  EXPECT_EQ(tok.encode("a photo of a cat", 4), (std::vector<int64_t>{49406, 320, 1125, 49407}));
  test::expect_error([&] { tok.encode("a", 1); }, "length 1");
}

// A transformers tokenizer folder (vocab.json + merges.txt) gives the same ids; its pad token
// ("!" = 0 here) replaces the default <|endoftext|>, which reproduces openai's 0-padding.
class ClipTokenizerFolder : public test::TempDirTest {};

TEST_F(ClipTokenizerFolder, HfFilesAndPadToken) {
  const ClipTokenizer& builtin = ClipTokenizer::builtin();
  nlohmann::json vocab = nlohmann::json::object();
  for (int64_t id = 0; id < builtin.vocab_size(); ++id) vocab[builtin.token(id)] = id;
  test::write_file(dir_ / "vocab.json", vocab.dump());
  gzFile gz = gzopen((kDir + "bpe_simple_vocab_16e6.txt.gz").c_str(), "rb");
  ASSERT_NE(gz, nullptr);
  std::string merges;
  std::array<char, 1 << 16> buf;
  for (int n; (n = gzread(gz, buf.data(), unsigned(buf.size()))) > 0;) merges.append(buf.data(), size_t(n));
  gzclose(gz);
  test::write_file(dir_ / "merges.txt", merges);

  const ClipTokenizer hf = ClipTokenizer::load(dir_.string());
  const Tensor golden_ids = golden_io().get("input_ids");
  const nlohmann::json cases = read_json(kDir + "tokens.json");
  for (size_t i = 0; i < cases.size(); ++i) EXPECT_EQ(hf.encode(cases[i]["prompt"].get<std::string>()), row(golden_ids, int64_t(i)));

  test::write_file(dir_ / "special_tokens_map.json", R"({"pad_token": {"content": "!", "lstrip": false}})");
  const ClipTokenizer pad0 = ClipTokenizer::load(dir_.string());
  EXPECT_EQ(pad0.pad_id(), 0);
  const Tensor openai_ids = golden_io().get("input_ids_openai_pad0");
  for (size_t i = 0; i < cases.size(); ++i) EXPECT_EQ(pad0.encode(cases[i]["prompt"].get<std::string>()), row(openai_ids, int64_t(i)));

  std::filesystem::remove(dir_ / "merges.txt");
  test::expect_error([&] { ClipTokenizer::load(dir_.string()); }, {dir_.string(), std::string("vocab.json + merges.txt")});
  test::expect_error([&] { ClipTokenizer::load(path("missing.txt.gz")); }, {"missing.txt.gz", "does not exist"});
}

TEST(ClipTextEncoder, MatchesGolden) {
  const auto w = weights::ModelWeights::open(kDir + "weights.safetensors");
  EXPECT_EQ(w.family(), weights::Family::clip_l);
  const text::ClipTextEncoder enc(w, golden_config());
  check_encoder(enc, 1e-5, 5e-5);
}

// F16 weights named as in ComfyUI's combined checkpoints (prefix), with the extras real files
// carry (position_ids buffer, text projection); upcast exactly, so only the rounding of the
// weights to f16 separates the result from the golden.
TEST(ClipTextEncoder, F16WeightsBehindComfyPrefix) {
  const weights::Checkpoint golden = weights::Checkpoint::open(kDir + "weights.safetensors");
  std::map<std::string, Tensor> tensors;
  const std::string prefix = "text_encoders.clip_l.transformer.";
  for (const std::string& name : golden.names()) tensors[prefix + name] = golden.get(name).to(DType::F16);
  tensors[prefix + "text_model.embeddings.position_ids"] = Tensor::zeros({1, 77}, DType::I64);
  tensors[prefix + "text_projection.weight"] = Tensor::zeros({32, 32}, DType::F16);
  auto ckpt = std::make_shared<const weights::Checkpoint>(weights::Checkpoint::from_tensors(tensors));
  const weights::ModelWeights w(ckpt, weights::detect(ckpt->names()));
  EXPECT_EQ(w.family(), weights::Family::clip_l);
  EXPECT_EQ(w.detected().prefix, prefix);
  EXPECT_EQ(w.dtype("text_model.encoder.layers.0.mlp.fc1.weight"), DType::F16);
  check_encoder(text::ClipTextEncoder(w, golden_config()), 3e-3, 3e-2);
}

// The text-driven end-to-end golden: prompt -> builtin ids -> pooled vector (the DiT's `vec`).
TEST(ClipTextEncoder, E2eTextConditioning) {
  const std::string dir = test::kGolden + "flux_tiny/e2e_text/";
  const weights::Checkpoint io = weights::Checkpoint::open(dir + "io.safetensors");
  const std::string prompt = read_json(dir + "config.json")["prompt"];
  const Tensor ids = ClipTokenizer::builtin().encode_batch({prompt});
  EXPECT_EQ(row(ids, 0), row(io.get("clip.input_ids"), 0));
  const text::ClipTextEncoder enc(weights::ModelWeights::open(kDir + "weights.safetensors"), golden_config());
  const Diff d = diff(enc.forward(ids).pooled, io.get("vec"));
  EXPECT_LE(d.rel_rms, 1e-5);
  EXPECT_LE(d.max_abs, 5e-5);
}

TEST(ClipTextEncoder, RejectsBadInput) {
  const auto w = weights::ModelWeights::open(kDir + "weights.safetensors");
  weights::ClipTextConfig c = golden_config();
  const text::ClipTextEncoder enc(w, c);
  test::expect_error([&] { enc.forward(Tensor::zeros({78}, DType::I64).unsqueeze(0)); }, "78 tokens");
  test::expect_error([&] { enc.forward(Tensor::zeros({3}, DType::I64)); }, "[N, L]");
  c.hidden_act = "relu";
  test::expect_error([&] { text::ClipTextEncoder(w, c); }, "hidden_act 'relu'");
  c = golden_config();
  c.intermediate_size = 64;
  test::expect_error([&] { text::ClipTextEncoder(w, c); }, "mlp.fc1.weight");
}

}  // namespace
