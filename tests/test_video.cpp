#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "io/video.h"
#include "test_util.h"

using namespace ditkit;
namespace fs = std::filesystem;

namespace {

using namespace ditkit::test;

class VideoTest : public TempDirTest {};

// A coloured 16x12 square moving right over a gradient background.
Image moving_square(int w, int h, int t) {
  Image img(w, h, 3);
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x) {
      uint8_t* p = img.at(x, y);
      bool inside = x >= 4 + 4 * t && x < 20 + 4 * t && y >= 10 && y < 22;
      p[0] = inside ? 230 : uint8_t(40 + x);
      p[1] = inside ? 60 : uint8_t(40 + y * 2);
      p[2] = inside ? 30 : 120;
    }
  }
  return img;
}

// PSNR of b against a over a's size (b may be larger, as padded videos are).
double psnr(const Image& a, const Image& b) {
  double se = 0;
  for (int y = 0; y < a.height; ++y)
    for (int x = 0; x < a.width; ++x)
      for (int k = 0; k < a.channels; ++k) {
        double d = double(a.at(x, y)[k]) - double(b.at(x, y)[k]);
        se += d * d;
      }
  double mse = se / (double(a.width) * a.height * a.channels);
  return mse == 0 ? 99.0 : 10.0 * std::log10(255.0 * 255.0 / mse);
}

}  // namespace

TEST_F(VideoTest, Mp4RoundTrip) {
  std::vector<Image> frames;
  for (int t = 0; t < 9; ++t) frames.push_back(moving_square(64, 48, t));
  // Streamed: the source makes each frame when the encoder asks for it.
  int t = 0;
  write_video(path("out.mp4"), [&](Image& frame) {
    if (t == 9) return false;
    frame = moving_square(64, 48, t++);
    return true;
  });
  std::vector<Image> back;
  VideoInfo info = read_video(path("out.mp4"), [&](Image&& f) { back.push_back(std::move(f)); });
  EXPECT_EQ(info.width, 64);
  EXPECT_EQ(info.height, 48);
  EXPECT_EQ(info.frames, 9);
  EXPECT_NEAR(info.fps, 16.0, 1e-6);
  ASSERT_EQ(back.size(), 9u);
  for (int i = 0; i < 9; ++i) {
    ASSERT_EQ(back[i].width, 64);
    ASSERT_EQ(back[i].height, 48);
    ASSERT_EQ(back[i].channels, 3);
    double p = psnr(frames[i], back[i]);
    EXPECT_GT(p, 30.0) << "frame " << i;
    // The square moved: each decoded frame is closer to its own input than to the next one.
    if (i + 1 < 9) {
      EXPECT_GT(p, psnr(frames[i + 1], back[i]) + 3.0) << "frame " << i;
    }
  }
  EXPECT_EQ(file_count(), 1);
}

TEST_F(VideoTest, OptionsAndOddSizesArePadded) {
  std::vector<Image> frames;
  for (int t = 0; t < 3; ++t) frames.push_back(moving_square(33, 25, 0));
  VideoOptions options;
  options.fps = 24;
  options.crf = 10;
  options.preset = "ultrafast";
  write_video(path("odd.mkv"), frames, options);
  std::vector<Image> back;
  VideoInfo info = read_video(path("odd.mkv"), [&](Image&& f) { back.push_back(std::move(f)); });
  EXPECT_EQ(info.frames, 3);
  EXPECT_NEAR(info.fps, 24.0, 1e-6);
  ASSERT_EQ(back.size(), 3u);
  EXPECT_EQ(back[0].width, 34);
  EXPECT_EQ(back[0].height, 26);
  // Sharp saturated edges on a tiny frame lose more to 4:2:0 chroma than the 64x48 case.
  EXPECT_GT(psnr(frames[0], back[0]), 28.0);
  // The padding repeats the last column and row.
  for (int k = 0; k < 3; ++k) {
    EXPECT_NEAR(back[0].at(33, 5)[k], back[0].at(32, 5)[k], 6);
    EXPECT_NEAR(back[0].at(5, 25)[k], back[0].at(5, 24)[k], 6);
  }
}

TEST_F(VideoTest, FromTensor) {
  // [C, T, H, W] in [-1, 1]: frame 0 black, frame 1 white.
  std::vector<float> v(3 * 2 * 16 * 16);
  for (size_t i = 0; i < v.size(); ++i) v[i] = (i / 256) % 2 ? 1.0f : -1.0f;
  Tensor video = Tensor::from_vector(v, {3, 2, 16, 16});
  write_video(path("t.mp4"), video_tensor_frames(video));
  std::vector<Image> back = read_video_frames(path("t.mp4"));
  ASSERT_EQ(back.size(), 2u);
  EXPECT_LT(back[0].at(8, 8)[0], 8);
  EXPECT_GT(back[1].at(8, 8)[0], 247);
}

TEST_F(VideoTest, PngSequenceRoundTripExact) {
  std::vector<Image> frames;
  for (int t = 0; t < 4; ++t) frames.push_back(moving_square(32, 24, t));
  EXPECT_EQ(write_png_sequence(path("frame_%04d.png"), frames, 1), 4);
  for (int t = 0; t < 4; ++t) {
    Image back = read_image(path(format_frame_path("frame_%04d.png", t + 1)));
    EXPECT_EQ(back.pixels, frames[t].pixels);
  }
  EXPECT_TRUE(fs::exists(path("frame_0004.png")));
  EXPECT_EQ(file_count(), 4);
}

TEST_F(VideoTest, FramePattern) {
  EXPECT_EQ(format_frame_path("f_%04d.png", 7), "f_0007.png");
  EXPECT_EQ(format_frame_path("f%d.png", 12345), "f12345.png");
  EXPECT_EQ(format_frame_path("100%%_%3d.png", 5), "100%_  5.png");
  for (const char* bad : {"frame.png", "%s.png", "%d_%d.png", "%n", "%04x.png", "50%", "%099d"})
    expect_error([&] { format_frame_path(bad, 1); }, std::string("frame pattern '") + bad + "'");
}

TEST_F(VideoTest, FailedWriteLeavesNoFileAndKeepsExisting) {
  auto failing = [](int fail_at) {
    return [fail_at, t = 0](Image& frame) mutable -> bool {
      if (t == fail_at) throw Error("decoder failed at frame " + std::to_string(t));
      frame = moving_square(64, 48, t++);
      return true;
    };
  };
  expect_error([&] { write_video(path("new.mp4"), failing(3)); }, "decoder failed at frame 3");
  EXPECT_FALSE(fs::exists(path("new.mp4")));
  EXPECT_EQ(file_count(), 0);

  write_file(path("old.mp4"), "previous result");
  expect_error([&] { write_video(path("old.mp4"), failing(5)); }, "decoder failed at frame 5");
  EXPECT_EQ(read_file(path("old.mp4")), "previous result");

  // Frames of changing size are refused the same way.
  std::vector<Image> mixed = {moving_square(64, 48, 0), moving_square(32, 24, 0)};
  expect_error([&] { write_video(path("old.mp4"), mixed); }, "frame 1 is 32x24x3");
  EXPECT_EQ(read_file(path("old.mp4")), "previous result");
  EXPECT_EQ(file_count(), 1);

  VideoOptions bad;
  bad.crf = 60;
  expect_error([&] { write_video(path("x.mp4"), mixed, bad); }, "crf 60");
  expect_error([&] { write_video(path("x.mp4"), std::vector<Image>{}); }, "no frames");
  expect_error([&] { write_video(path("x.unknownext"), mixed); }, "x.unknownext");
  EXPECT_EQ(file_count(), 1);
}

TEST_F(VideoTest, GarbageAndMissingFilesThrowNamingTheFile) {
  expect_error([&] { read_video_frames(path("missing.mp4")); }, "missing.mp4");
  std::string garbage(4096, '\0');
  for (size_t i = 0; i < garbage.size(); ++i) garbage[i] = char(i * 37 + 11);
  write_file(path("garbage.mp4"), garbage);
  expect_error([&] { read_video_frames(path("garbage.mp4")); }, "garbage.mp4");

  // A real MP4 cut in half (its index is at the end) is refused too.
  std::vector<Image> frames(3, moving_square(64, 48, 0));
  write_video(path("full.mp4"), frames);
  std::string bytes = read_file(path("full.mp4"));
  write_file(path("cut.mp4"), bytes.substr(0, bytes.size() / 2));
  expect_error([&] { read_video_frames(path("cut.mp4")); }, "cut.mp4");

  // Damaged bytes anywhere either still decode or throw Error; they never crash.
  uint32_t seed = 7;
  int refused = 0;
  for (int i = 0; i < 40; ++i) {
    std::string damaged = bytes;
    for (int k = 0; k < 8; ++k) {
      seed = seed * 1664525u + 1013904223u;
      damaged[seed % damaged.size()] = char(seed >> 24);
    }
    write_file(path("damaged.mp4"), damaged);
    try {
      for (const Image& frame : read_video_frames(path("damaged.mp4"))) ASSERT_EQ(frame.channels, 3);
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("damaged.mp4"), std::string::npos) << e.what();
      ++refused;
    }
  }
  EXPECT_GT(refused, 0);
}
