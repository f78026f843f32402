// `ditkit attention run|mask|bench|list` run as a program on the attention goldens
// (tests/data/golden/attention): outputs within the README's tolerances, masks, block classes
// and kernel orders exactly as stored, pictures written, and clear errors that leave no file behind.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>

#include "io/image.h"
#include "test_util.h"
#include "weights/checkpoint.h"

namespace {

using namespace ditkit;
using namespace ditkit::test;

const std::string kCases = kGolden + "attention/";

struct CliRun {
  int code = -1;
  std::string output;  // stdout and stderr together
};

CliRun attention(const std::string& args) {
  const auto [status, output] = test::run_ditkit("attention " + args);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, output};
}

bool has(const CliRun& r, const std::string& text) { return r.output.find(text) != std::string::npos; }

std::string config(const std::string& name) { return kCases + name + "/config.json"; }
std::string data(const std::string& name) { return kCases + name + "/data.safetensors"; }

// The golden's tensor against the one the command wrote, as the README's tolerances say:
// out within 1e-5 absolute or 1e-4 of max|out|, lse within 1e-5.
void expect_close(const std::string& golden, const std::string& written, const std::string& name) {
  const auto want = weights::Checkpoint::open(data(golden)).get(name);
  const auto got = weights::Checkpoint::open(written).get(name);
  ASSERT_EQ(got.shape(), want.shape()) << name;
  const std::vector<float> w = want.to_vector(), g = got.to_vector();
  double diff = 0, peak = 0;
  for (size_t i = 0; i < w.size(); ++i) {
    diff = std::max(diff, double(std::fabs(w[i] - g[i])));
    peak = std::max(peak, double(std::fabs(w[i])));
  }
  if (name == "lse")
    EXPECT_LE(diff, 1e-5) << golden << " lse";
  else
    EXPECT_TRUE(diff <= 1e-5 || diff <= 1e-4 * peak) << golden << " out: max|diff| " << diff << ", max|out| " << peak;
}

// The stored tensor equals the written one exactly (masks, block classes, orders).
void expect_equal(const std::string& golden, const std::string& golden_name, const std::string& written,
                  const std::string& name) {
  const auto want = weights::Checkpoint::open(data(golden)).get(golden_name);
  const auto got = weights::Checkpoint::open(written).get(name);
  ASSERT_EQ(got.shape(), want.shape()) << golden << ": " << name;
  EXPECT_EQ(got.dtype(), want.dtype()) << golden << ": " << name;
  EXPECT_TRUE(got.to_vector() == want.to_vector()) << golden << ": " << name << " differs from " << golden_name;
}

class AttentionCli : public TempDirTest {};

TEST_F(AttentionCli, RunMatchesEveryGoldenFromItsConfig) {
  const char* cases[] = {
      "dense_self_t4h6w8",
      "dense_joint_t3h6w6_text20v13_suffix",
      "dense_cross_t3h6w6_text24",
      "radial_wan_t8h8w16_bs32_df1",
      "radial_hunyuan_t5h12w20_bs64_df095_text24v17",
      "natten_1d_l40_k7",
      "natten_1d_l37_k6_s2_d3_causal",
      "natten_2d_12x14_k5x7_d2x1",
      "natten_2d_16x16_k12_s4_tile4x4_gna",
      "natten_3d_4x8x10_k3x5x5_s1x2x3_d1x1x2_causalT",
      "natten_3d_4x8x8_blocked_k2x4x4_text12",
      "grat_x_3d_t4h12w16_g2x4x4_text32v20",
      "grat_x_2d_h16w24_g4x4_textprefix16",
      "grat_b_3d_t4h12w16_g2x4x4_r1_text32v20",
      "freeswim_t3h12w16_train6x8",
      "freeswim_t2h10w12_train4x6_noinward",
  };
  for (const std::string name : cases) {
    SCOPED_TRACE(name);
    const std::string out = path(name + ".safetensors");
    const CliRun r = attention("run --config " + config(name) + " --in " + data(name) + " --out " + out + " --lse");
    ASSERT_EQ(r.code, 0) << r.output;
    EXPECT_TRUE(has(r, "reference \"out\" in --in")) << r.output;
    expect_close(name, out, "out");
    expect_close(name, out, "lse");
  }
}

TEST_F(AttentionCli, RunFromKindGridAndOpts) {
  struct Case {
    std::string golden, args;
  };
  const Case cases[] = {
      {"natten_2d_12x14_k5x7_d2x1", "--kind natten --grid 12,14 --opts kernel_size=5x7,dilation=2x1"},
      {"natten_1d_l37_k6_s2_d3_causal", "--kind neighborhood:kernel_size=6,stride=2 --opts dilation=3,is_causal=true --grid 37"},
      {"radial_wan_t8h8w16_bs32_df1", "--kind radial --grid 8,8,16 --opts block_size=32,decay_factor=1,model_type=wan"},
      {"dense_joint_t3h6w6_text20v13_suffix", "--kind dense --grid 3,6,6 --text 20 --text-valid 13"},
      {"dense_cross_t3h6w6_text24", "--kind dense --grid 3,6,6 --text 24 --text-position cross"},
      {"freeswim_t3h12w16_train6x8", "--kind freeswim --grid 3,12,16 --opts train_tokens_hw=6x8"},
      {"grat_b_3d_t4h12w16_g2x4x4_r1_text32v20",
       "--kind grat:variant=b,group_shape=2x4x4 --grid 4,12,16 --text 32 --text-valid 20"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.golden);
    const std::string out = path(c.golden + ".safetensors");
    const CliRun r = attention("run " + c.args + " --in " + data(c.golden) + " --out " + out);
    ASSERT_EQ(r.code, 0) << r.output;
    expect_close(c.golden, out, "out");
    EXPECT_FALSE(weights::Checkpoint::open(out).contains("lse")) << "lse written without --lse";
  }
}

TEST_F(AttentionCli, RunInBf16IsWithinTheReadmeTolerance) {
  const std::string name = "natten_3d_4x8x10_k3x5x5_s1x2x3_d1x1x2_causalT", out = path("bf16.safetensors");
  const CliRun r = attention("run --config " + config(name) + " --in " + data(name) + " --out " + out + " --dtype bf16");
  ASSERT_EQ(r.code, 0) << r.output;
  const auto want = weights::Checkpoint::open(data(name)).get("out");
  const auto got = weights::Checkpoint::open(out).get("out");
  EXPECT_EQ(got.dtype(), DType::F32);
  const std::vector<float> w = want.to_vector(), g = got.to_vector();
  const int64_t d = want.dim(-1);
  double diff = 0, worst_cos = 1;
  for (size_t row = 0; row < w.size() / size_t(d); ++row) {
    double dot = 0, ww = 0, gg = 0;
    for (int64_t i = 0; i < d; ++i) {
      const size_t j = row * size_t(d) + size_t(i);
      diff = std::max(diff, double(std::fabs(w[j] - g[j])));
      dot += double(w[j]) * g[j], ww += double(w[j]) * w[j], gg += double(g[j]) * g[j];
    }
    worst_cos = std::min(worst_cos, dot / std::sqrt(ww * gg));
  }
  EXPECT_LE(diff, 2e-2);
  EXPECT_GE(worst_cos, 0.999);
}

TEST_F(AttentionCli, MaskEqualsTheGoldens) {
  // In canonical order (--opts on top of the config): block_class over blocks of the golden's size.
  const char* canonical[][2] = {{"natten_2d_12x14_k5x7_d2x1", "tile_shape=none"},
                                {"natten_1d_l37_k6_s2_d3_causal", "tile_shape=none"},
                                {"freeswim_t3h12w16_train6x8", "tile_shape=none"},
                                {"radial_wan_t8h8w16_bs32_df1", ""},
                                {"dense_joint_t3h6w6_text20v13_suffix", ""}};
  for (const auto& [name_, opts] : canonical) {
    const std::string name = name_;
    SCOPED_TRACE(name);
    const auto cfg = nlohmann::json::parse(std::ifstream(config(name)));
    const std::string out = path(name + "_mask.safetensors");
    const std::string bs = std::to_string(cfg["params"].value("block_size_for_block_class", 64));
    const CliRun r = attention("mask --config " + config(name) + (*opts ? std::string(" --opts ") + opts : "") +
                               " --block " + bs + "," + bs + " --out " + out);
    ASSERT_EQ(r.code, 0) << r.output;
    expect_equal(name, "mask", out, "mask");
    if (cfg["tensors"].contains("block_class")) expect_equal(name, "block_class", out, "block_class");
    EXPECT_FALSE(weights::Checkpoint::open(out).contains("order")) << "canonical order written as a permutation";
    EXPECT_TRUE(has(r, "density")) << r.output;
  }
  // Permuting kinds: the kernel order is the golden's perm, block classes over tiles / groups.
  struct Permuted {
    std::string name;
    int block;
  };
  for (const Permuted& c : {Permuted{"natten_3d_4x8x10_k3x5x5_s1x2x3_d1x1x2_causalT", 32},
                            Permuted{"natten_2d_16x16_k12_s4_tile4x4_gna", 16},
                            Permuted{"grat_x_3d_t4h12w16_g2x4x4_text32v20", 32},
                            Permuted{"grat_x_2d_h16w24_g4x4_textprefix16", 16}}) {
    SCOPED_TRACE(c.name);
    const std::string out = path(c.name + "_mask.safetensors"), bs = std::to_string(c.block);
    const CliRun r = attention("mask --config " + config(c.name) + " --block " + bs + "," + bs + " --out " + out);
    ASSERT_EQ(r.code, 0) << r.output;
    expect_equal(c.name, "mask", out, "mask");
    expect_equal(c.name, "perm", out, "order");
    expect_equal(c.name, "block_class_permuted", out, "block_class");
  }
}

TEST_F(AttentionCli, MaskPictureAndSizeLimit) {
  const std::string name = "natten_3d_4x8x10_k3x5x5_s1x2x3_d1x1x2_causalT";
  const std::string out = path("mask.safetensors"), png = path("mask.png");
  const CliRun r = attention("mask --config " + config(name) + " --out " + out + " --png " + png + " --max-mask-mb 0");
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_TRUE(has(r, "token mask: skipped")) << r.output;
  const auto written = weights::Checkpoint::open(out);
  EXPECT_FALSE(written.contains("mask"));
  EXPECT_TRUE(written.contains("block_class"));
  EXPECT_TRUE(written.contains("order"));
  // 320 tokens: one pixel per token pair, the block classes beside them after an 8-pixel gap.
  const Image image = read_image(png, 3);
  ASSERT_EQ(image.height, 320);
  ASSERT_EQ(image.width, 2 * 320 + 8);
  const std::vector<float> mask = weights::Checkpoint::open(data(name)).get("mask").to_vector();
  int64_t wrong = 0;
  for (int y = 0; y < 320; ++y)
    for (int x = 0; x < 320; ++x) wrong += image.at(x, y)[0] != (mask[size_t(y) * 320 + size_t(x)] > 0 ? 255 : 0);
  EXPECT_EQ(wrong, 0) << "pixels differing from the golden mask";
  EXPECT_EQ(image.at(320 + 4, 0)[0], 128);
  EXPECT_EQ(file_count(), 2);
}

TEST_F(AttentionCli, MaskAtWan480pSizeSkipsTheTokenMask) {
  const std::string out = path("wan.safetensors"), png = path("wan.png");
  const CliRun r = attention("mask --kind radial --grid 21,30,52 --out " + out + " --png " + png);
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_TRUE(has(r, "token mask: skipped")) << r.output;
  const Image image = read_image(png);
  EXPECT_LE(image.height, 2048);
  EXPECT_EQ(image.width, 2 * image.height + 8);
}

TEST_F(AttentionCli, BenchAndList) {
  const CliRun bench = attention("bench --kind natten --grid 4,8,8 --heads 2 --dim 32 --dtype f32 --repeat 1");
  ASSERT_EQ(bench.code, 0) << bench.output;
  for (const char* text : {"schedule: built in", "density", "ms/call", "TFLOP/s", "speedup over dense"})
    EXPECT_TRUE(has(bench, text)) << text << " not in: " << bench.output;
  const CliRun list = attention("list");
  ASSERT_EQ(list.code, 0) << list.output;
  for (const char* kind : {"dense", "radial", "neighborhood", "grat", "sliding-window"})
    EXPECT_TRUE(has(list, kind)) << kind << " not in: " << list.output;
}

TEST_F(AttentionCli, ErrorsNameTheCauseAndWriteNothing) {
  const std::string name = "natten_2d_12x14_k5x7_d2x1", out = path("out.safetensors");
  write_file(out, "keep");
  // Inputs with one tensor missing, and with k of the wrong length.
  const auto golden = weights::Checkpoint::open(data(name));
  const std::string no_v = path("no_v.safetensors"), short_k = path("short_k.safetensors");
  weights::save_safetensors(no_v, {{"q", golden.get("q")}, {"k", golden.get("k")}});
  weights::save_safetensors(short_k,
                            {{"q", golden.get("q")}, {"k", golden.get("k").narrow(1, 0, 100)}, {"v", golden.get("v")}});
  struct Case {
    std::string args;
    std::vector<std::string> parts;
  };
  const Case cases[] = {
      {"run --kind swirl --grid 12,14 --in " + data(name), {"swirl"}},
      {"run --kind natten --grid 12,x --in " + data(name), {"--grid", "12,x"}},
      {"run --kind natten --grid 0,14 --in " + data(name), {"--grid"}},
      {"run --kind natten --grid 12,15 --in " + data(name), {"168", "180"}},
      {"run --kind natten --opts kernel_size=5x7,colour=red --grid 12,14 --in " + data(name), {"colour"}},
      {"run --config " + config(name) + " --in " + no_v, {"--in", no_v, "\"v\""}},
      {"run --config " + config(name) + " --in " + short_k, {"--in", "k and v", "[2, 100, 32]"}},
      {"run --config " + path("missing.json") + " --in " + data(name), {"--config", "missing.json"}},
      {"run --grid 12,14 --in " + data(name), {"--kind"}},
      {"run --config " + config(name) + " --in " + data(name) + " --dtype f8", {"--dtype", "f8"}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.args);
    const CliRun r = attention(c.args + " --out " + out);
    EXPECT_EQ(r.code, 1) << r.output;
    for (const std::string& part : c.parts) EXPECT_TRUE(has(r, part)) << "'" << part << "' not in: " << r.output;
  }
  EXPECT_EQ(read_file(out), "keep");
  EXPECT_EQ(file_count(), 3);  // out, no_v, short_k: no temporary files left
}

}  // namespace
