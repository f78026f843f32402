// `ditkit t2v` run exactly as a user would on the golden wan_tiny checkpoint (per-component
// flags, the e2e config's prompt, size, frames, steps, shift, cfg and seed) must give the
// official latents (1e-3) and frames (within 2 levels of 255).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <utility>

#include "io/image.h"
#include "io/video.h"
#include "test_util.h"
#include "weights/checkpoint.h"

using namespace ditkit;

namespace {

const std::string kGolden = std::string(DITKIT_TEST_DATA) + "/golden/wan_tiny/";

std::string temp_dir() {
  auto dir = std::filesystem::temp_directory_path() / ("ditkit_t2v_" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  return dir.string();
}

int run(const std::string& args) {
  std::string cmd = std::string(DITKIT_BINARY) + " " + args + " 2>&1";
  return std::system(cmd.c_str());
}

std::string base_args(const std::string& size = "-W 64 -H 64 --frames 5") {
  return "t2v -p 'A cat walks on the grass, realistic style.' --dit " + kGolden + "dit/weights.safetensors" +
         " --text-encoder " + kGolden + "t5/weights.safetensors --vae " + kGolden + "vae/weights.safetensors" +
         " --tokenizer " + kGolden + "tokenizer " + size + " --steps 4 --shift 5 --cfg 5";
}


void check_run(const std::string& sampler, const std::string& noise_args) {
  auto io = weights::Checkpoint::open(kGolden + "e2e/io_" + (sampler == "unipc" ? "unipc" : "dpmpp") + ".safetensors");
  std::string dir = temp_dir();
  std::string args = base_args() + " --sampler " + sampler + " " + noise_args + " --save-latents " + dir +
                     "/latents.safetensors -o " + dir + "/frame_%02d.png";
  ASSERT_EQ(run(args), 0) << args;

  auto got = weights::Checkpoint::open(dir + "/latents.safetensors").get("latents").to_vector();
  auto want = io.get("latent_final").to_vector();
  ASSERT_EQ(got.size(), want.size());
  double err = 0;
  for (size_t i = 0; i < got.size(); ++i) err = std::max(err, std::fabs(double(got[i]) - want[i]));
  EXPECT_LE(err, 1e-3) << sampler << " latents";

  Tensor video_u8 = io.get("video_u8");  // [F, H, W, 3]
  const uint8_t* ref = video_u8.data<uint8_t>();
  int max_level = 0;
  for (int64_t f = 0; f < video_u8.dim(0); ++f) {
    char name[32];
    std::snprintf(name, sizeof name, "/frame_%02d.png", int(f));
    Image img = read_image(dir + name, 3);
    ASSERT_EQ(img.width, 64);
    ASSERT_EQ(img.height, 64);
    for (size_t i = 0; i < img.pixels.size(); ++i)
      max_level = std::max(max_level, std::abs(int(img.pixels[i]) - int(ref[f * 64 * 64 * 3 + i])));
  }
  EXPECT_LE(max_level, 2) << sampler << " frames";
  std::filesystem::remove_all(dir);
}

std::string stored_noise(const std::string& sampler) {
  auto io = weights::Checkpoint::open(kGolden + "e2e/io_" + sampler + ".safetensors");
  std::string path = temp_dir() + "/noise.safetensors";
  weights::save_safetensors(path, {{"noise", io.get("noise").unsqueeze(0)}});  // with a batch dim
  return path;
}

}  // namespace

TEST(WanT2vCli, UniPCFromSeed) { check_run("unipc", "--seed 1234"); }
TEST(WanT2vCli, DPMppFromSeed) { check_run("dpm++", "--seed 1234"); }
TEST(WanT2vCli, UniPCFromStoredNoise) { check_run("unipc", "--noise " + stored_noise("unipc")); }
TEST(WanT2vCli, DPMppFromStoredNoise) { check_run("dpm++", "--noise " + stored_noise("dpmpp")); }

TEST(WanT2vCli, BadInputsAreClearErrors) {
  const std::string out = temp_dir() + "/never.mp4";
  auto [rc1, msg1] = test::run_ditkit(base_args("-W 64 -H 64 --frames 6") + " --seed 1 -o " + out);
  EXPECT_NE(rc1, 0);
  EXPECT_NE(msg1.find("--frames 6"), std::string::npos) << msg1;
  auto [rc2, msg2] = test::run_ditkit(base_args("-W 65 -H 64 --frames 5") + " --seed 1 -o " + out);
  EXPECT_NE(rc2, 0);
  EXPECT_NE(msg2.find("--width 65"), std::string::npos) << msg2;
  auto [rc3, msg3] = test::run_ditkit(base_args() + " --noise " + kGolden + "dit/weights.safetensors -o " + out);
  EXPECT_NE(rc3, 0);
  EXPECT_NE(msg3.find("--noise"), std::string::npos) << msg3;
  auto [rc4, msg4] = test::run_ditkit(base_args() + " --sampler ddim --seed 1 -o " + out);
  EXPECT_NE(rc4, 0);
  EXPECT_NE(msg4.find("ddim"), std::string::npos) << msg4;
  EXPECT_FALSE(std::filesystem::exists(out));
}

TEST(WanT2vCli, WritesMp4AndDecodesSavedLatents) {
  std::string dir = temp_dir();
  ASSERT_EQ(run(base_args() + " --seed 1234 --save-latents " + dir + "/z.safetensors -o " + dir + "/v.mp4"), 0);
  auto frames = read_video_frames(dir + "/v.mp4");
  ASSERT_EQ(frames.size(), 5u);
  EXPECT_EQ(frames[0].width, 64);
  // `ditkit decode` on the saved latents gives the same frames as t2v's PNG output.
  ASSERT_EQ(run("decode --vae " + kGolden + "vae/weights.safetensors --latents " + dir + "/z.safetensors -o " + dir +
                "/d_%02d.png"),
            0);
  ASSERT_EQ(run(base_args() + " --seed 1234 -o " + dir + "/t_%02d.png"), 0);
  for (const char* f : {"/d_00.png", "/d_04.png"}) {
    std::string t = std::string(f).replace(1, 1, "t");
    EXPECT_EQ(read_image(dir + f, 3).pixels, read_image(dir + t, 3).pixels) << f;
  }
  std::filesystem::remove_all(dir);
}

// Every attention kind (small parameters for the 2 x 4 x 4 token grid), a plan file, and
// PAG / SoftPAG run end to end and write the MP4; a sparse kind changes the result.
TEST(WanT2vCli, AttentionKindsPlansAndPag) {
  std::string dir = temp_dir();
  const std::string plan = dir + "/plan.json";
  std::ofstream(plan) << R"({"default": {"kind": "dense"}, "rules": [{"layers": [1], "steps": [1, null],
                          "kind": "neighborhood", "params": {"kernel_size": [1, 3, 3]}}]})";
  const std::pair<const char*, std::string> runs[] = {
      {"dense", ""},
      {"radial", "--attention radial:block_size=8,dense_timesteps=1,dense_layers=1"},
      {"neighborhood", "--attention neighborhood:kernel_size=1x3x3"},
      {"grat", "--attention grat:group_shape=1x2x2"},
      {"sliding_window", "--attention sliding-window:train_tokens_hw=2x2"},
      {"plan", "--attention-plan " + plan},
      {"pag", "--pag-scale 2 --pag-layers 0-1"},
      {"softpag", "--pag-scale 1.5 --pag-heads 1,3 --softpag 0.5"},
  };
  for (const auto& [name, flags] : runs) {
    const std::string base = dir + "/" + name;
    auto [rc, msg] = test::run_ditkit(base_args() + " --seed 1234 " + flags + " --save-latents " + base +
                                 ".safetensors -o " + base + ".mp4");
    ASSERT_EQ(rc, 0) << flags << "\n" << msg;
    EXPECT_EQ(read_video_frames(base + ".mp4").size(), 5u) << flags;
  }
  auto latents = [&](const std::string& name) {
    return weights::Checkpoint::open(dir + "/" + name + ".safetensors").get("latents").to_vector();
  };
  const auto dense = latents("dense");
  for (const char* name : {"radial", "neighborhood", "grat", "sliding_window", "plan", "pag", "softpag"})
    EXPECT_NE(latents(name), dense) << name;
  std::filesystem::remove_all(dir);
}

TEST(WanT2vCli, AttentionFlagErrorsNameTheFlag) {
  const std::string out = temp_dir() + "/never.mp4";
  const std::pair<std::string, std::string> cases[] = {
      {"--attention sparse-magic", "--attention"},
      {"--attention radial:blok=3", "blok"},
      {"--attention-plan /nonexistent/plan.json", "/nonexistent/plan.json"},
      {"--attention radial --attention-plan /nonexistent/plan.json", "--attention-plan"},
      {"--pag-scale 2 --pag-layers 5", "--pag-layers"},
      {"--pag-scale 2 --pag-layers 1-x", "--pag-layers"},
      {"--pag-scale 2 --pag-heads 4", "--pag-heads"},
      {"--pag-scale 2 --softpag 1.5", "--softpag"},
  };
  for (const auto& [flags, want] : cases) {
    auto [rc, msg] = test::run_ditkit(base_args() + " --seed 1 " + flags + " -o " + out);
    EXPECT_NE(rc, 0) << flags;
    EXPECT_NE(msg.find(want), std::string::npos) << flags << ": " << msg;
  }
  EXPECT_FALSE(std::filesystem::exists(out));
}
