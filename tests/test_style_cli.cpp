// `ditkit style` as a user runs it on the tiny goldens (flux_tiny, wan_tiny): at
// --share-strength 0 the images equal `t2i --prompts` pixel for pixel and the video latents equal
// `t2v --seed N+i`; at strength 1 the reference row is unchanged and the other rows differ; an
// external --reference replaces row 0; the parameters are in the PNG text; flag errors.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>

#include "io/image.h"
#include "io/video.h"
#include "test_util.h"
#include "weights/checkpoint.h"

using namespace ditkit;

namespace {

const std::string kFlux = test::kGolden + "flux_tiny/";
const std::string kWan = test::kGolden + "wan_tiny/";


const std::string kFluxFlags = "--dit " + kFlux + "dit --vae " + kFlux + "ae -W 128 -H 128 --steps 4 --t5 " + kFlux +
                               "t5 --clip-l " + kFlux + "clip --t5-tokenizer " + kFlux +
                               "t5/tokenizer_2 --max-sequence-length 24 --seed 7 ";
const std::string kWanFlags = "--dit " + kWan + "dit/weights.safetensors --text-encoder " + kWan +
                              "t5/weights.safetensors --vae " + kWan + "vae/weights.safetensors --tokenizer " + kWan +
                              "tokenizer -W 64 -H 64 --frames 5 --steps 3 --shift 5 --cfg 5 ";

class StyleCli : public test::TempDirTest {
 protected:
  std::string prompts() const {
    const std::string file = path("prompts.txt");
    test::write_file(file, "a red cube on a table\na blue ball\na green tree in a field\n");
    return file;
  }
  Tensor latents(const std::string& name) const {
    return weights::Checkpoint::open(path(name)).get("latents").to(DType::F32).contiguous();
  }
  void style(const std::string& args, const std::string& out) {
    const auto [rc, log] = test::run_ditkit("style " + args + " -o " + path(out));
    ASSERT_EQ(rc, 0) << args << "\n" << log;
  }
};

std::vector<uint8_t> pixels(const std::string& file) { return read_image(file, 3).pixels; }

TEST_F(StyleCli, FluxStrengthZeroIsT2iAndStrengthOneSharesFromRowZero) {
  const std::string file = prompts();
  const auto [rc, log] = test::run_ditkit("t2i --prompts " + file + " " + kFluxFlags + "-o " + path("t2i.png"));
  ASSERT_EQ(rc, 0) << log;
  style("--prompts " + file + " " + kFluxFlags + "--share-strength 0", "s0");
  style("--prompts " + file + " " + kFluxFlags, "s1");
  for (int i = 0; i < 3; ++i) {
    const std::string name = "00" + std::to_string(i) + ".png";
    const auto plain = pixels(path("t2i_" + std::to_string(i) + ".png"));
    EXPECT_EQ(pixels(path("s0/" + name)), plain) << name;
    if (i == 0)
      EXPECT_EQ(pixels(path("s1/" + name)), plain) << "the reference row is its plain image";
    else
      EXPECT_NE(pixels(path("s1/" + name)), plain) << name;
  }
  EXPECT_FALSE(std::filesystem::exists(path("s1/003.png")));
  std::string text;
  for (const auto& [key, value] : read_png_text(path("s1/001.png"))) text += key + "=" + value + "\n";
  for (const char* want : {"share-strength=1", "lambda=1.1", "shared-layers=2,3", "a blue ball", "image=1 of 3"})
    EXPECT_NE(text.find(want), std::string::npos) << want << " not in\n" << text;
  // --share-layers picks the layers: all four differ from the default two.
  style("--prompts " + file + " " + kFluxFlags + "--share-layers 0-3", "all");
  EXPECT_EQ(pixels(path("all/000.png")), pixels(path("s1/000.png")));
  EXPECT_NE(pixels(path("all/001.png")), pixels(path("s1/001.png")));
}

TEST_F(StyleCli, FluxStyleTextAndExternalReference) {
  style("-p 'a cube' -p 'a ball' --style 'in watercolor' " + kFluxFlags, "styled");
  EXPECT_NE(read_png_text(path("styled/001.png")).front().second.find("a ball, in watercolor"), std::string::npos);
  // The reference image takes row 0: both prompts are targets and written, the reference is not.
  style("-p 'a cube' -p 'a ball' --reference " + path("styled/000.png") + " --reference-prompt 'a cube' " + kFluxFlags,
        "ref");
  EXPECT_TRUE(std::filesystem::exists(path("ref/000.png")));
  EXPECT_TRUE(std::filesystem::exists(path("ref/001.png")));
  EXPECT_FALSE(std::filesystem::exists(path("ref/002.png")));
  style("-p 'a cube' -p 'a ball' " + kFluxFlags + "--share-strength 0", "plain");
  EXPECT_NE(pixels(path("ref/000.png")), pixels(path("plain/000.png")));  // row 0 is now a target
}

// Compared on the saved latents: H.264 streams of the same frames are not byte-stable.
TEST_F(StyleCli, WanVideos) {
  const std::string rows = "-p 'a red circle' -p 'a blue square moving left' " + kWanFlags + "--seed 7 ";
  style(rows + "--share-strength 0 --save-latents " + path("s0.safetensors"), "s0");
  style(rows + "--save-latents " + path("s1.safetensors"), "s1");
  for (const char* name : {"s0/000.mp4", "s0/001.mp4", "s1/000.mp4", "s1/001.mp4"})
    EXPECT_EQ(read_video_frames(path(name)).size(), 5u) << name;
  EXPECT_FALSE(std::filesystem::exists(path("s1/002.mp4")));
  // Video i's noise is t2v's for seed + i.
  const auto [rc, log] = test::run_ditkit("t2v -p 'a blue square moving left' " + kWanFlags + "--seed 8 -o " +
                                          path("t2v.mp4") + " --save-latents " + path("t2v.safetensors"));
  ASSERT_EQ(rc, 0) << log;
  const Tensor plain = latents("t2v.safetensors"), s0 = latents("s0.safetensors"), s1 = latents("s1.safetensors");
  ASSERT_EQ(s0.dim(0), 2);
  EXPECT_EQ(test::compare(s0.select(0, 1), plain).max_abs, 0.0);
  EXPECT_GT(test::compare(s1.select(0, 1), plain).max_abs, 1e-3);
  EXPECT_EQ(test::compare(s1.select(0, 0), s0.select(0, 0)).max_abs, 0.0);  // the reference row
  // Sharing only latent frame 0 of the reference (of 2) gives another target, the same reference.
  style(rows + "--share-frame-stride 2 --save-latents " + path("s2.safetensors"), "s2");
  const Tensor s2 = latents("s2.safetensors");
  EXPECT_EQ(test::compare(s2.select(0, 0), s0.select(0, 0)).max_abs, 0.0);
  EXPECT_GT(test::compare(s2.select(0, 1), s1.select(0, 1)).max_abs, 1e-4);
}

TEST_F(StyleCli, ErrorsNameTheFlag) {
  const std::string file = prompts();
  const std::pair<std::string, std::string> cases[] = {
      {kFluxFlags, "-p/--prompt"},
      {"-p a --prompts " + file + " " + kFluxFlags, "--prompts"},
      {"--prompts " + file + " " + kFluxFlags + "--share-strength -1", "--share-strength"},
      {"--prompts " + file + " " + kFluxFlags + "--lambda 0", "--lambda"},
      {"--prompts " + file + " " + kFluxFlags + "--reference " + path("missing.png"), "--reference"},
      {"-p a --reference-prompt x " + kFluxFlags, "--reference-prompt"},
      {"-p a " + kFluxFlags + "--shift 3", "--shift"},
      {"-p a " + kWanFlags + "--shift on", "--shift"},
      {"-p a " + kWanFlags + "--attention sliding-window", "dual_path"},
      {"-p a " + kFluxFlags + "--share-layers 4", "--share-layers 4: layer 4 does not exist"},
      {"-p a " + kWanFlags + "--share-frame-stride 0", "--share-frame-stride 0: must be at least 1"},
  };
  for (const auto& [args, needle] : cases) {
    const auto [rc, log] = test::run_ditkit("style " + args + " -o " + path("x"));
    EXPECT_NE(rc, 0) << args;
    EXPECT_NE(log.find(needle), std::string::npos) << args << "\n" << log;
  }
}

}  // namespace
