// `ditkit info` run as a program on golden checkpoints, folders, and bad paths.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "test_util.h"
#include "weights/checkpoint.h"

namespace {

using namespace ditkit::test;

struct CliRun {
  int code = -1;
  std::string output;  // stdout and stderr together
};

CliRun run_info(const std::string& args) {
  const auto [status, output] = run_ditkit("info " + args);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, output};
}

bool has(const CliRun& r, const std::string& text) { return r.output.find(text) != std::string::npos; }

}  // namespace

TEST(InfoCli, DescribesGoldenCheckpoints) {
  struct Case {
    const char* path;
    const char* family;
    const char* layout;
    const char* tensors;
  };
  const Case cases[] = {
      {"wan_tiny/dit/weights.safetensors", "wan_dit", "official", "69"},
      {"wan_tiny/dit/weights_diffusers.safetensors", "wan_dit", "diffusers", "69"},
      {"wan_tiny/t5/weights_hf.safetensors", "umt5", "hf", "23"},
      {"wan_tiny/vae/weights.safetensors", "wan_vae", "official", "194"},
      {"flux_tiny/dit/weights.safetensors", "flux_dit", "official", "84"},
      {"flux_tiny/ae/weights.safetensors", "flux_ae", "official", "176"},
      {"flux_tiny/t5/weights.safetensors", "t5_xxl", "hf", "31"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.path);
    CliRun r = run_info(kGolden + c.path);
    EXPECT_EQ(r.code, 0) << r.output;
    EXPECT_TRUE(has(r, std::string("family: ") + c.family)) << r.output;
    EXPECT_TRUE(has(r, std::string("layout: ") + c.layout)) << r.output;
    EXPECT_TRUE(has(r, std::string("tensors: ") + c.tensors + "\n")) << r.output;
    EXPECT_TRUE(has(r, "format: safetensors")) << r.output;
    EXPECT_TRUE(has(r, "validation: ok")) << r.output;
  }
}

TEST(InfoCli, FolderListsEveryComponentAndUnknownFiles) {
  CliRun r = run_info(kGolden + "flux_tiny/clip");
  EXPECT_EQ(r.code, 0) << r.output;
  EXPECT_TRUE(has(r, "family: clip_l")) << r.output;
  EXPECT_TRUE(has(r, "config (from " + kGolden + "flux_tiny/clip/config.json)")) << r.output;
  EXPECT_TRUE(has(r, "hidden_size: 32")) << r.output;
  // io.safetensors holds test vectors, not a model.
  EXPECT_TRUE(has(r, "io.safetensors\n")) << r.output;
  EXPECT_TRUE(has(r, "family: unknown")) << r.output;
}

TEST(InfoCli, JsonOutputHasCountsConfigAndMemory) {
  CliRun r = run_info(kGolden + "wan_tiny/dit/weights.safetensors --json");
  ASSERT_EQ(r.code, 0) << r.output;
  auto j = nlohmann::json::parse(r.output);
  ASSERT_EQ(j["components"].size(), 1u);
  const auto& c = j["components"][0];
  EXPECT_EQ(c["family"], "wan_dit");
  EXPECT_EQ(c["layout"], "official");
  EXPECT_EQ(c["tensors"], 69);
  EXPECT_EQ(c["dtypes"]["F32"]["tensors"], 69);
  const int64_t params = c["parameters"];
  EXPECT_EQ(c["memory"]["f32_bytes"], params * 4);
  EXPECT_EQ(c["memory"]["stored_bytes"], params * 4);
  EXPECT_EQ(c["config"]["dim"], 128);
  EXPECT_EQ(c["config"]["num_heads"], 4);
  EXPECT_EQ(c["validation"]["ok"], true);
}

TEST(InfoCli, ExplicitFamilyAndLayoutWin) {
  CliRun r = run_info(kGolden + "flux_tiny/dit/weights.safetensors --family flux_dit --layout comfyui");
  EXPECT_EQ(r.code, 0) << r.output;
  EXPECT_TRUE(has(r, "layout: comfyui")) << r.output;
  CliRun bad = run_info(kGolden + "flux_tiny/dit/weights.safetensors --family sdxl");
  EXPECT_NE(bad.code, 0);
  EXPECT_TRUE(has(bad, "\"sdxl\"")) << bad.output;
}

TEST(InfoCli, WrongShapesAreReported) {
  using namespace ditkit;
  weights::Checkpoint ck = weights::Checkpoint::open(kGolden + "wan_tiny/dit/weights.safetensors");
  std::map<std::string, Tensor> tensors;
  for (const auto& name : ck.names()) tensors[name] = ck.get(name);
  tensors["blocks.1.ffn.0.weight"] = tensors["blocks.1.ffn.0.weight"].narrow(0, 0, 255).contiguous();
  tensors.erase("head.head.bias");
  const std::string path = temp_path("a3_wrong_shape.safetensors");
  weights::save_safetensors(path, tensors);
  CliRun r = run_info(path);
  std::remove(path.c_str());
  EXPECT_EQ(r.code, 0) << r.output;
  EXPECT_TRUE(has(r, "family: wan_dit")) << r.output;
  EXPECT_TRUE(has(r, "validation: FAILED")) << r.output;
  EXPECT_TRUE(has(r, "blocks.1.ffn.0.weight: expected [256, 128], got [255, 128]")) << r.output;
  EXPECT_TRUE(has(r, "missing (1): head.head.bias")) << r.output;
}

TEST(InfoCli, ForcedFamilyThatDoesNotFitIsDescribedNotFatal) {
  CliRun r = run_info(kGolden + "flux_tiny/ae/weights.safetensors --family wan_vae");
  EXPECT_EQ(r.code, 0) << r.output;
  EXPECT_TRUE(has(r, "family: wan_vae")) << r.output;
  EXPECT_TRUE(has(r, "config: unusable: cannot infer the config: tensor encoder.conv1.weight is missing")) << r.output;
}

TEST(InfoCli, MissingPathAndGarbageFileFailNamingThePath) {
  CliRun missing = run_info("/nonexistent/dir/model.safetensors");
  EXPECT_NE(missing.code, 0);
  EXPECT_TRUE(has(missing, "/nonexistent/dir/model.safetensors")) << missing.output;
  const std::string garbage =
      write_temp("a3_garbage.safetensors", "this is not a checkpoint at all, just text");
  CliRun g = run_info(garbage);
  std::remove(garbage.c_str());
  EXPECT_NE(g.code, 0);
  EXPECT_TRUE(has(g, garbage)) << g.output;
}

// An official Wan folder: sharded DiT with its index and config.json, T5 and VAE beside it,
// tokenizer in google/umt5-xxl. The folder's config.json belongs to the DiT only.
TEST(InfoCli, OfficialWanFolder) {
  namespace fs = std::filesystem;
  const fs::path dir = fresh_dir("a3_wan_folder");
  fs::create_directories(dir / "google" / "umt5-xxl");
  const fs::path wan = kGolden + "wan_tiny/";
  const std::string shard = "diffusion_pytorch_model-00001-of-00001.safetensors";
  fs::copy_file(wan / "dit/weights.safetensors", dir / shard);
  fs::copy_file(wan / "dit/config.json", dir / "config.json");
  fs::copy_file(wan / "t5/weights.safetensors", dir / "models_t5_umt5-xxl-enc-bf16.safetensors");
  fs::copy_file(wan / "vae/weights.safetensors", dir / "Wan2.1_VAE.safetensors");
  fs::copy_file(wan / "tokenizer/spiece.model", dir / "google" / "umt5-xxl" / "spiece.model");
  nlohmann::json index;
  for (const auto& name : ditkit::weights::Checkpoint::open((dir / shard).string()).names())
    index["weight_map"][name] = shard;
  std::ofstream(dir / "diffusion_pytorch_model.safetensors.index.json") << index.dump();
  CliRun r = run_info(dir.string() + " --json");
  fs::remove_all(dir);
  ASSERT_EQ(r.code, 0) << r.output;
  auto j = nlohmann::json::parse(r.output);
  std::map<std::string, nlohmann::json> by_family;
  for (const auto& c : j["components"]) by_family[c["family"]] = c;
  ASSERT_EQ(j["components"].size(), 3u) << r.output;
  const auto& dit = by_family.at("wan_dit");
  EXPECT_EQ(dit["component"], "diffusion_pytorch_model.safetensors.index.json");
  EXPECT_EQ(dit["format"], "safetensors index");
  EXPECT_EQ(dit["config_source"], (dir / "config.json").string());
  EXPECT_EQ(dit["config"]["num_heads"], 4);
  EXPECT_EQ(by_family.at("umt5")["config_source"], "tensor shapes");
  EXPECT_EQ(by_family.at("umt5")["config"]["num_heads"], 4);
  EXPECT_EQ(by_family.at("wan_vae")["config"]["dim"], 12);
  for (const auto& [family, c] : by_family) EXPECT_EQ(c["validation"]["ok"], true) << family;
  EXPECT_EQ(j["tokenizers"], nlohmann::json::array({"google/umt5-xxl"}));
}
