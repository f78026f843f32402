// `ditkit t2v --model DIR` on the golden checkpoint laid out as a user gets it: a diffusers
// folder (transformer/, text_encoder/ in transformers names, tokenizer/, vae/, each with its
// config.json), and with every weight stored as bf16.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "weights/checkpoint.h"

using namespace ditkit;
namespace fs = std::filesystem;

namespace {

const fs::path kGolden = fs::path(DITKIT_TEST_DATA) / "golden/wan_tiny";

// Copies `src` to `dst`, optionally re-storing every float tensor as bf16.
void put_weights(const fs::path& src, const fs::path& dst, bool bf16) {
  fs::create_directories(dst.parent_path());
  if (!bf16) {
    fs::copy_file(src, dst, fs::copy_options::overwrite_existing);
    return;
  }
  auto ck = weights::Checkpoint::open(src.string());
  std::map<std::string, Tensor> out;
  for (const auto& name : ck.names()) out[name] = ck.get(name).to(DType::BF16);
  weights::save_safetensors(dst.string(), out);
}

fs::path diffusers_folder(bool bf16) {
  fs::path dir = fs::temp_directory_path() / ("ditkit_wan_diffusers_" + std::to_string(getpid()) + (bf16 ? "_bf16" : ""));
  fs::remove_all(dir);
  put_weights(kGolden / "dit/weights_diffusers.safetensors", dir / "transformer/diffusion_pytorch_model.safetensors", bf16);
  fs::copy_file(kGolden / "dit/config_diffusers.json", dir / "transformer/config.json");
  put_weights(kGolden / "t5/weights_hf.safetensors", dir / "text_encoder/model.safetensors", bf16);
  std::ofstream(dir / "text_encoder/config.json")
      << R"({"model_type": "umt5", "vocab_size": 1000, "d_model": 64, "d_kv": 16, "d_ff": 128, "num_heads": 4,
             "num_layers": 2, "relative_attention_num_buckets": 32, "relative_attention_max_distance": 128,
             "feed_forward_proj": "gated-gelu", "layer_norm_epsilon": 1e-06})";
  fs::create_directories(dir / "tokenizer");
  fs::copy_file(kGolden / "tokenizer/spiece.model", dir / "tokenizer/spiece.model");
  put_weights(kGolden / "vae/weights.safetensors", dir / "vae/diffusion_pytorch_model.safetensors", bf16);
  fs::copy_file(kGolden / "vae/config.json", dir / "vae/config.json");
  return dir;
}

// Largest |latents - golden latent_final| of a UniPC run from --seed 1234.
double run_and_compare(const fs::path& model) {
  fs::path latents = model / "latents.safetensors";
  // diffusers configs carry no text_len: the tiny model's is 32, passed as diffusers users do.
  std::string cmd = std::string(DITKIT_BINARY) + " t2v -p 'A cat walks on the grass, realistic style.' --model " +
                    model.string() + " --max-sequence-length 32 -W 64 -H 64 --frames 5 --steps 4 --seed 1234" +
                    " --save-latents " + latents.string() + " -o " + (model / "v.mp4").string() + " 2>&1";
  EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
  auto got = weights::Checkpoint::open(latents.string()).get("latents").to_vector();
  auto want = weights::Checkpoint::open((kGolden / "e2e/io_unipc.safetensors").string()).get("latent_final").to_vector();
  EXPECT_EQ(got.size(), want.size());
  double err = 0;
  for (size_t i = 0; i < got.size() && i < want.size(); ++i) err = std::max(err, std::fabs(double(got[i]) - want[i]));
  return err;
}

}  // namespace

TEST(WanT2vLayouts, DiffusersFolderWithHfTextEncoder) {
  fs::path dir = diffusers_folder(false);
  EXPECT_LE(run_and_compare(dir), 1e-3);
  fs::remove_all(dir);
}

TEST(WanT2vLayouts, Bf16StoredWeights) {
  fs::path dir = diffusers_folder(true);
  // bf16 weights (f32 compute) move the result by bf16 rounding noise, not more.
  double err = run_and_compare(dir);
  EXPECT_GT(err, 0.0);
  EXPECT_LE(err, 0.1);
  std::cout << "bf16-stored weights: max |latents - golden| = " << err << "\n";
  fs::remove_all(dir);
}

// The official Wan2.1 folder: config.json and diffusion_pytorch_model.safetensors beside the
// umT5 (bf16) and VAE as torch.save .pth archives (written by tools/make_official_wan_pth.py)
// and the tokenizer under google/umt5-xxl/.
TEST(WanT2vLayouts, OfficialFolderWithPthFiles) {
  fs::path dir = fs::temp_directory_path() / ("ditkit_wan_official_" + std::to_string(getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir / "google/umt5-xxl");
  fs::copy_file(kGolden / "dit/weights.safetensors", dir / "diffusion_pytorch_model.safetensors");
  fs::copy_file(kGolden / "dit/config.json", dir / "config.json");
  const fs::path pth = fs::path(DITKIT_TEST_DATA) / "wan_official";
  fs::copy_file(pth / "models_t5_umt5-xxl-enc-bf16.pth", dir / "models_t5_umt5-xxl-enc-bf16.pth");
  fs::copy_file(pth / "Wan2.1_VAE.pth", dir / "Wan2.1_VAE.pth");
  fs::copy_file(kGolden / "tokenizer/spiece.model", dir / "google/umt5-xxl/spiece.model");
  // The text encoder is stored in bf16 as the real file is: bf16 rounding noise, not more.
  double err = run_and_compare(dir);
  EXPECT_LE(err, 0.1);
  std::cout << "official folder (bf16 umT5 .pth): max |latents - golden| = " << err << "\n";
  fs::remove_all(dir);
}

// ComfyUI single files: the DiT under model.diffusion_model.*, umT5 in transformers names stored
// as fp16 or fp8 (e4m3fn), the VAE file in official names; passed with per-component flags.
TEST(WanT2vLayouts, ComfyUiSingleFiles) {
  fs::path dir = fs::temp_directory_path() / ("ditkit_wan_comfy_" + std::to_string(getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  auto resave = [&](const fs::path& src, const fs::path& dst, const std::string& prefix, DType dtype) {
    auto ck = weights::Checkpoint::open(src.string());
    std::map<std::string, Tensor> out;
    for (const auto& name : ck.names()) out[prefix + name] = ck.get(name).to(dtype);
    weights::save_safetensors(dst.string(), out);
  };
  resave(kGolden / "dit/weights.safetensors", dir / "wan2.1_t2v_tiny.safetensors", "model.diffusion_model.", DType::F16);
  resave(kGolden / "vae/weights.safetensors", dir / "wan_2.1_vae.safetensors", "", DType::F32);
  // The tiny DiT's head count cannot be told from shapes (real ones match a known config by
  // width), so its config.json sits beside the files; the other components ignore it.
  fs::copy_file(kGolden / "dit/config.json", dir / "config.json");
  auto latents_error = [&](DType t5_dtype) {
    resave(kGolden / "t5/weights_hf.safetensors", dir / "umt5_xxl.safetensors", "", t5_dtype);
    fs::path latents = dir / "latents.safetensors";
    std::string cmd = std::string(DITKIT_BINARY) + " t2v -p 'A cat walks on the grass, realistic style.' --dit " +
                      (dir / "wan2.1_t2v_tiny.safetensors").string() + " --text-encoder " +
                      (dir / "umt5_xxl.safetensors").string() + " --vae " + (dir / "wan_2.1_vae.safetensors").string() +
                      " --tokenizer " + (kGolden / "tokenizer").string() +
                      " --max-sequence-length 32 -W 64 -H 64 --frames 5 --steps 4 --seed 1234 --save-latents " +
                      latents.string() + " -o " + (dir / "v.mp4").string() + " 2>&1";
    EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
    auto got = weights::Checkpoint::open(latents.string()).get("latents").to_vector();
    auto want = weights::Checkpoint::open((kGolden / "e2e/io_unipc.safetensors").string()).get("latent_final").to_vector();
    double err = 0;
    for (size_t i = 0; i < got.size() && i < want.size(); ++i) err = std::max(err, std::fabs(double(got[i]) - want[i]));
    return err;
  };
  double fp16 = latents_error(DType::F16), fp8 = latents_error(DType::F8_E4M3);
  std::cout << "ComfyUI files: max |latents - golden| fp16 umT5 " << fp16 << ", fp8 umT5 " << fp8 << "\n";
  EXPECT_LE(fp16, 0.02);
  EXPECT_LE(fp8, 1.0);  // fp8 keeps 3 mantissa bits: a coarse but working encoder
  fs::remove_all(dir);
}
