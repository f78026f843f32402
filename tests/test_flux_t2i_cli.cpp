// FLUX.1 text-to-image end to end against the tiny golden (flux_tiny, README §3 and §8):
// the official chain in process (packing, schedule, every Euler step's prediction and latent,
// unpack, AE decode, uint8) from the saved embeddings (e2e/) and from the prompt text through
// both tokenizers and encoders (e2e_text/), within the README's float32 thresholds; then
// `ditkit t2i` and `ditkit encode-prompt` as a user runs them: PNGs within 2 levels of the
// golden image from the stored noise (with and without the batch dimension) and from --seed,
// numbered batch outputs, the parameters in the PNG, PAG and attention kinds, and flag errors.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>

#include "dit/flux.h"
#include "io/image.h"
#include "samplers/flow.h"
#include "test_util.h"
#include "text/clip.h"
#include "text/tokenizer.h"
#include "text/umt5.h"
#include "vae/flux_ae.h"
#include "weights/checkpoint.h"
#include "weights/model_files.h"

using namespace ditkit;

namespace {

const std::string kG = ditkit::test::kGolden + "flux_tiny/";


// README thresholds: rel RMS and max abs (e2e latents and image: 2e-4 / 1e-3).
void expect_close(const Tensor& got, const Tensor& want, const std::string& what, double rel = 2e-4,
                  double max_abs = 1e-3) {
  const test::Err e = test::compare(got, want);
  EXPECT_LE(e.rel_rms, rel) << what << " (max abs " << e.max_abs << ")";
  EXPECT_LE(e.max_abs, max_abs) << what << " (rel RMS " << e.rel_rms << ")";
}

nlohmann::json read_json(const std::string& path) {
  std::ifstream f(path);
  return nlohmann::json::parse(f);
}

// uint8 HWC image vs the golden's: at most `levels` apart, fewer than `share` of the values differ.
void expect_image(const Image& got, const Tensor& want_hwc, int levels, double share, const std::string& what) {
  ASSERT_EQ(int64_t(got.height), want_hwc.dim(0)) << what;
  ASSERT_EQ(int64_t(got.width), want_hwc.dim(1)) << what;
  ASSERT_EQ(int64_t(got.channels), want_hwc.dim(2)) << what;
  const uint8_t* ref = want_hwc.contiguous().data<uint8_t>();
  int max_level = 0;
  size_t differ = 0;
  for (size_t i = 0; i < got.pixels.size(); ++i) {
    const int d = std::abs(int(got.pixels[i]) - int(ref[i]));
    max_level = std::max(max_level, d);
    differ += d != 0;
  }
  EXPECT_LE(max_level, levels) << what;
  EXPECT_LT(double(differ) / double(got.pixels.size()), share) << what << ": " << differ << " values differ";
}

// The official denoise + decode from the golden's noise with conditioning txt [T, D] and vec [D],
// checked step by step against `io` (e2e/ or e2e_text/).
void check_chain(const weights::Checkpoint& io, const nlohmann::json& cfg, const Tensor& txt, const Tensor& vec) {
  const auto dit_c = test::load_family(kG + "dit", weights::Family::flux_dit);
  const auto dit_cfg = dit_c.config.as<weights::FluxDitConfig>();
  const dit::FluxModel model(*dit_c.weights, dit_cfg);
  const int64_t height = cfg["height"].get<int64_t>(), width = cfg["width"].get<int64_t>();
  const int64_t h = (height + 15) / 16, w = (width + 15) / 16;

  const Tensor noise = io.get("noise").select(0, 0);
  Tensor x = dit::pack_latents(noise);
  expect_close(x, io.get("img"), "packed noise", 0, 0);
  const Tensor img_ids = dit::image_ids(h, w);
  expect_close(img_ids, io.get("img_ids"), "img_ids", 0, 0);
  const Tensor txt_ids = Tensor::zeros({txt.dim(0), 3}, DType::F32);

  const auto schedule = samplers::flux_schedule(cfg["num_steps"].get<int>(), h * w, cfg["shift"].get<bool>());
  samplers::FlowSampler sampler(samplers::SamplerKind::Euler, schedule);
  const double guidance = io.get("guidance").item();
  for (int i = 0; i < sampler.steps(); ++i) {
    const std::string s = "step" + std::to_string(i);
    const Tensor pred = model.forward(x, img_ids, txt, txt_ids, schedule.timesteps[size_t(i)], vec, guidance);
    expect_close(pred, io.get(s + ".pred"), s + ".pred");
    x = sampler.step(i, x, pred);
    expect_close(x, io.get(s + ".latent_out"), s + ".latent_out");
  }
  expect_close(x, io.get("latent_final"), "latent_final");
  const Tensor z = dit::unpack_latents(x, 2 * h, 2 * w);
  expect_close(z, io.get("latent_unpacked"), "latent_unpacked");

  const auto ae_c = test::load_family(kG + "ae", weights::Family::flux_ae);
  const vae::FluxAE ae(*ae_c.weights, ae_c.config.as<weights::FluxAeConfig>());
  const Tensor image = ae.decode(z);
  expect_close(image, io.get("image"), "image");
  expect_image(tensor_to_image(image), io.get("image_uint8_hwc"), 1, 0.005, "image uint8");
}

TEST(FluxE2e, FromSavedEmbeddings) {
  const auto io = weights::Checkpoint::open(kG + "e2e/io.safetensors");
  check_chain(io, read_json(kG + "e2e/config.json"), io.get("txt").select(0, 0), io.get("vec").select(0, 0));
}

std::string utf8(const Tensor& bytes) {
  const Tensor c = bytes.contiguous();
  return std::string(c.data<char>(), size_t(c.numel()));
}

std::vector<int64_t> ints(const Tensor& t) {
  std::vector<int64_t> out;
  for (float v : t.to_vector()) out.push_back(int64_t(v));
  return out;
}

TEST(FluxE2e, FromPromptText) {
  const auto io = weights::Checkpoint::open(kG + "e2e_text/io.safetensors");
  const auto cfg = read_json(kG + "e2e_text/config.json");
  const std::string prompt = utf8(io.get("prompt_utf8"));
  ASSERT_EQ(prompt, cfg["prompt"].get<std::string>());

  // T5: slow-tokenizer ids, unmasked encoder over all max_length rows.
  const auto t5_tok = text::load_t5_tokenizer(kG + "t5/tokenizer_2", text::Clean::none);
  const Tensor t5_ids = t5_tok->encode_batch({prompt}, cfg["max_length"].get<int64_t>()).ids;
  EXPECT_EQ(ints(t5_ids), ints(io.get("t5.input_ids")));
  const auto t5_c = test::load_family(kG + "t5", weights::Family::t5_xxl);
  const text::UMT5Encoder t5(*t5_c.weights, t5_c.config.as<weights::T5Config>());
  const Tensor txt = t5.forward(t5_ids, Tensor::full(t5_ids.shape(), 1.0f, DType::I64)).select(0, 0);
  expect_close(txt, io.get("txt"), "txt", 1e-5, 5e-5);

  // CLIP: the builtin vocabulary (the golden's bpe file is the same one) and the pooled EOT state.
  const Tensor clip_ids = text::ClipTokenizer::builtin().encode_batch({prompt});
  EXPECT_EQ(ints(clip_ids), ints(io.get("clip.input_ids")));
  EXPECT_EQ(ints(text::ClipTokenizer::load(kG + "clip/bpe_simple_vocab_16e6.txt.gz").encode_batch({prompt})),
            ints(io.get("clip.input_ids")));
  const auto clip_c = test::load_family(kG + "clip", weights::Family::clip_l);
  const text::ClipTextEncoder clip(*clip_c.weights, clip_c.config.as<weights::ClipTextConfig>());
  const Tensor vec = clip.forward(clip_ids).pooled.select(0, 0);
  expect_close(vec, io.get("vec"), "vec", 1e-5, 5e-5);

  check_chain(io, cfg, txt, vec);
}

// ---- the CLI ----


// The golden's components by flag; the text side only where the run needs it.
std::string image_flags(const std::string& size = "-W 128 -H 128") {
  return "--dit " + kG + "dit --vae " + kG + "ae " + size + " --steps 4 ";
}
std::string text_flags() {
  return "--t5 " + kG + "t5 --clip-l " + kG + "clip --t5-tokenizer " + kG + "t5/tokenizer_2 --max-sequence-length 24 ";
}
const char* kPrompt = "'a fluffy kitten sitting on a red sofa, soft focus'";

class FluxT2iCli : public ditkit::test::TempDirTest {
 protected:
  // Writes e2e/'s txt and vec as encode-prompt would and returns the path.
  std::string e2e_embeds() const {
    const auto io = weights::Checkpoint::open(kG + "e2e/io.safetensors");
    const std::string p = path("e2e_embeds.safetensors");
    weights::save_safetensors(p, {{"prompt_embeds", io.get("txt")}, {"pooled_prompt_embeds", io.get("vec")}});
    return p;
  }
  // The golden noise, with or without its batch dimension.
  std::string noise(const std::string& dir, bool batch_dim) const {
    Tensor n = weights::Checkpoint::open(kG + dir + "/io.safetensors").get("noise");
    if (!batch_dim) n = n.select(0, 0).contiguous();
    const std::string p = path(dir + (batch_dim ? "_noise4.safetensors" : "_noise3.safetensors"));
    weights::save_safetensors(p, {{"noise", n}});
    return p;
  }
  void expect_golden_png(const std::string& png, const std::string& dir) const {
    const auto io = weights::Checkpoint::open(kG + dir + "/io.safetensors");
    expect_image(read_image(png, 3), io.get("image_uint8_hwc"), 2, 1.0, png + " vs " + dir);
  }
};

TEST_F(FluxT2iCli, PromptEmbedsAndStoredNoise) {
  const std::string embeds = e2e_embeds();
  for (bool batch_dim : {true, false}) {
    const std::string out = path(batch_dim ? "a.png" : "b.png");
    const auto [rc, log] = test::run_ditkit("t2i " + image_flags() + "--prompt-embeds " + embeds + " --noise " +
                               noise("e2e", batch_dim) + " -o " + out);
    ASSERT_EQ(rc, 0) << log;
    expect_golden_png(out, "e2e");
  }
}

TEST_F(FluxT2iCli, PromptTextWithSeedAndMetadata) {
  const std::string out = path("kitten.png"), latents = path("latents.safetensors");
  const auto [rc, log] = test::run_ditkit("t2i -p " + std::string(kPrompt) + " " + image_flags() + text_flags() +
                             "--seed 1234 --save-latents " + latents + " -o " + out);
  ASSERT_EQ(rc, 0) << log;
  expect_golden_png(out, "e2e_text");
  const auto io = weights::Checkpoint::open(kG + "e2e_text/io.safetensors");
  expect_close(weights::Checkpoint::open(latents).get("latents"), io.get("latent_unpacked"), "latents");
  std::string params;
  for (const auto& [key, value] : read_png_text(out))
    if (key == "parameters") params = value;
  EXPECT_NE(params.find("a fluffy kitten sitting on a red sofa, soft focus"), std::string::npos) << params;
  EXPECT_NE(params.find("1234"), std::string::npos) << params;
  EXPECT_NE(params.find("guidance"), std::string::npos) << params;
}

TEST_F(FluxT2iCli, StoredNoiseFromPromptText) {
  const std::string out = path("text_noise.png");
  const auto [rc, log] = test::run_ditkit("t2i -p " + std::string(kPrompt) + " " + image_flags() + text_flags() + "--noise " +
                             noise("e2e_text", false) + " -o " + out);
  ASSERT_EQ(rc, 0) << log;
  expect_golden_png(out, "e2e_text");
}

// --model DIR with diffusers-style component folders, no CLIP tokenizer (the builtin vocabulary)
// and the T5 tokenizer found in tokenizer_2/.
TEST_F(FluxT2iCli, ModelFolder) {
  namespace fs = std::filesystem;
  const fs::path model = dir_ / "model";
  fs::create_directories(model);
  for (const auto& [link, target] : std::vector<std::pair<std::string, std::string>>{
           {"transformer", "dit"}, {"vae", "ae"}, {"text_encoder", "clip"}, {"text_encoder_2", "t5"},
           {"tokenizer_2", "t5/tokenizer_2"}})
    fs::create_directory_symlink(kG + target, model / link);
  const std::string out = path("model.png");
  const auto [rc, log] = test::run_ditkit("t2i -p " + std::string(kPrompt) + " --model " + model.string() +
                             " -W 128 -H 128 --steps 4 --max-sequence-length 24 --seed 1234 -o " + out);
  ASSERT_EQ(rc, 0) << log;
  expect_golden_png(out, "e2e_text");
}

// encode-prompt saves what t2i --prompt-embeds reads: the golden txt / vec.
TEST_F(FluxT2iCli, EncodePromptRoundTrip) {
  const std::string embeds = path("embeds.safetensors"), out = path("from_embeds.png");
  auto [rc, log] = test::run_ditkit("encode-prompt -p " + std::string(kPrompt) + " " + text_flags() + "-o " + embeds);
  ASSERT_EQ(rc, 0) << log;
  const auto io = weights::Checkpoint::open(kG + "e2e_text/io.safetensors");
  const auto saved = weights::Checkpoint::open(embeds);
  EXPECT_EQ(saved.get("prompt_embeds").shape(), io.get("txt").shape());
  EXPECT_EQ(saved.get("pooled_prompt_embeds").shape(), io.get("vec").shape());
  expect_close(saved.get("prompt_embeds"), io.get("txt"), "prompt_embeds", 1e-5, 5e-5);
  expect_close(saved.get("pooled_prompt_embeds"), io.get("vec"), "pooled_prompt_embeds", 1e-5, 5e-5);
  std::tie(rc, log) = test::run_ditkit("t2i " + image_flags() + "--prompt-embeds " + embeds + " --seed 1234 -o " + out);
  ASSERT_EQ(rc, 0) << log;
  expect_golden_png(out, "e2e_text");
  std::string params;
  for (const auto& [key, value] : read_png_text(out))
    if (key == "parameters") params = value;
  EXPECT_EQ(params.rfind("a fluffy kitten", 0), 0u) << "the saved prompt leads the parameters: " << params;
}

// get_noise(2, ...) draws both images at once: the first is the single-image run's.
TEST_F(FluxT2iCli, BatchOutputsAreNumbered) {
  const auto [rc, log] = test::run_ditkit("t2i " + image_flags() + "--prompt-embeds " + e2e_embeds() +
                             " --seed 1234 --batch 2 -o " + path("img.png"));
  ASSERT_EQ(rc, 0) << log;
  ASSERT_TRUE(std::filesystem::exists(path("img_0.png"))) << log;
  ASSERT_TRUE(std::filesystem::exists(path("img_1.png"))) << log;
  EXPECT_FALSE(std::filesystem::exists(path("img.png")));
  EXPECT_NE(read_image(path("img_0.png")).pixels, read_image(path("img_1.png")).pixels);
}

// PAG on FLUX's global layer numbering changes the image; a kind that fits the 8x8 grid runs.
TEST_F(FluxT2iCli, PagAndAttentionKinds) {
  const std::string base = "t2i " + image_flags() + "--prompt-embeds " + e2e_embeds() + " --noise " +
                           noise("e2e", true);
  auto [rc, log] = test::run_ditkit(base + " --pag-scale 2 --pag-layers 1,3 -o " + path("pag.png"));
  ASSERT_EQ(rc, 0) << log;
  const Tensor plain = weights::Checkpoint::open(kG + "e2e/io.safetensors").get("image_uint8_hwc").contiguous();
  const std::vector<uint8_t> plain_pixels(plain.data<uint8_t>(), plain.data<uint8_t>() + plain.numel());
  EXPECT_NE(read_image(path("pag.png"), 3).pixels, plain_pixels) << "PAG left the image unchanged";
  std::tie(rc, log) = test::run_ditkit(base + " --attention neighborhood:kernel_size=3x3 -o " + path("na.png"));
  EXPECT_EQ(rc, 0) << log;
}

TEST_F(FluxT2iCli, FlagErrors) {
  const std::string embeds = e2e_embeds();
  const std::string base = "t2i " + image_flags();
  const std::vector<std::pair<std::string, std::string>> cases = {
      {base, "--prompt"},
      {base + "--prompt-embeds " + embeds + " --shift maybe", "--shift maybe"},
      {base + "--prompt-embeds " + embeds + " --noise " + embeds, "--noise"},
      {base + "--prompt-embeds " + noise("e2e", true), "prompt_embeds"},
      {base + "--prompt-embeds " + embeds + " --pag-scale 1 --pag-layers 9", "--pag-layers"},
      {"t2i " + image_flags("-W 8 -H 128") + "--prompt-embeds " + embeds, "-W/--width"},
      {base + "--prompt-embeds " + embeds + " --sampler heun", "--sampler"},
      {"t2i -p x -W 128 -H 128 --vae " + kG + "ae", "--dit"},
      {"t2i -p x --dit " + kG + "dit --vae " + kG + "ae --clip-l " + kG + "clip --t5 " + kG + "ae", "--t5"},
  };
  for (const auto& [args, needle] : cases) {
    const auto [rc, log] = test::run_ditkit(args + " -o " + path("x.png"));
    EXPECT_NE(rc, 0) << args;
    EXPECT_NE(log.find(needle), std::string::npos) << args << "\n" << log;
  }
}

// `bench t2i` at the golden's tiny shapes: every stage runs and reports its time and memory.
TEST(FluxBenchT2i, TinyConfigsRunEveryStage) {
  const std::string configs = "--config " + kG + "dit/config.json --clip-config " + kG + "clip/config.json --t5-config " +
                              kG + "t5/config.json --ae-config " + kG + "ae/config.json";
  for (const char* dtype : {"bf16", "fp8"}) {
    const auto [rc, log] =
        test::run_ditkit("bench t2i --random-weights " + configs + " -W 64 -H 64 --text-len 24 --steps 2 --dtype " + dtype);
    ASSERT_EQ(rc, 0) << log;
    for (const char* line : {"clip:", "t5:", "step 2/2:", "s/step", "latents: finite", "ae decode:", "image: finite",
                             "peak RSS"})
      EXPECT_NE(log.find(line), std::string::npos) << dtype << ": no '" << line << "' in\n" << log;
  }
  const auto [rc, log] = test::run_ditkit("bench t2i " + configs);
  EXPECT_NE(rc, 0);
  EXPECT_NE(log.find("--random-weights"), std::string::npos) << log;
}

}  // namespace
