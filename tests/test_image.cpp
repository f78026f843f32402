#include <gtest/gtest.h>
#include <webp/encode.h>

#include <cmath>

#include "io/image.h"
#include "test_util.h"

// The test writes JPEG and BMP inputs with its own copy of stb's writer.
#define STB_IMAGE_WRITE_STATIC
#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb/stb_image_write.h>

using namespace ditkit;

namespace {

using namespace ditkit::test;

class ImageTest : public TempDirTest {};

Image pattern_image(int w, int h, int c) {
  Image img(w, h, c);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int k = 0; k < c; ++k) img.at(x, y)[k] = uint8_t((x * 7 + y * 13 + k * 50) % 256);
  return img;
}

// Smooth content, so that lossy JPEG stays close.
Image gradient_image(int w, int h) {
  Image img(w, h, 3);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      uint8_t* p = img.at(x, y);
      p[0] = uint8_t(x * 255 / (w - 1));
      p[1] = uint8_t(y * 255 / (h - 1));
      p[2] = 128;
    }
  return img;
}

void expect_same(const Image& a, const Image& b) {
  ASSERT_EQ(a.width, b.width);
  ASSERT_EQ(a.height, b.height);
  ASSERT_EQ(a.channels, b.channels);
  EXPECT_EQ(a.pixels, b.pixels);
}

}  // namespace

TEST_F(ImageTest, PngRoundTripExact) {
  for (int c : {1, 2, 3, 4}) {
    Image img = pattern_image(37, 23, c);
    write_png(path("a.png"), img);
    expect_same(read_image(path("a.png")), img);
  }
}

TEST_F(ImageTest, ChannelConversionOnRead) {
  write_png(path("rgb.png"), pattern_image(8, 4, 3));
  EXPECT_EQ(read_image(path("rgb.png"), 4).channels, 4);
  EXPECT_EQ(read_image(path("rgb.png"), 1).channels, 1);
  expect_error([&] { read_image(path("rgb.png"), 2); }, "requested 2 channels");
}

TEST_F(ImageTest, PngTextRoundTrip) {
  PngText text = generation_text("a cat on a sofa, 猫, café", "blurry",
                                 {{"Steps", "30"}, {"Seed", "42"}, {"Sampler", "flow_euler"},
                                  {"Model", "wan2.1-t2v-1.3b"}, {"Attention", "sdpa"}});
  ASSERT_EQ(text[0].first, "parameters");
  EXPECT_EQ(text[0].second,
            "a cat on a sofa, 猫, café\nNegative prompt: blurry\n"
            "Steps: 30, Seed: 42, Sampler: flow_euler, Model: wan2.1-t2v-1.3b, Attention: sdpa");
  Image img = pattern_image(16, 9, 3);
  write_png(path("t.png"), img, text);
  EXPECT_EQ(read_png_text(path("t.png")), text);
  expect_same(read_image(path("t.png")), img);

  // ASCII values are tEXt, the non-ASCII prompt is iTXt (UTF-8), as the PNG spec asks.
  std::vector<uint8_t> bytes = read_bytes(path("t.png"));
  std::string raw(bytes.begin(), bytes.end());
  EXPECT_NE(raw.find("tEXtSeed"), std::string::npos);
  EXPECT_NE(raw.find("iTXtprompt"), std::string::npos);
  EXPECT_LT(raw.find("tEXtSeed"), raw.find("IDAT"));
}

TEST_F(ImageTest, PngTextRejectsBadKeysAndCorruption) {
  Image img = pattern_image(4, 4, 3);
  expect_error([&] { encode_png(img, {{"", "x"}}); }, "keyword");
  expect_error([&] { encode_png(img, {{std::string(80, 'k'), "x"}}); }, "keyword");
  expect_error([&] { encode_png(img, {{"k", std::string("a\0b", 3)}}); }, "UTF-8");
  expect_error([&] { encode_png(img, {{"k", "\xff\xfe"}}); }, "UTF-8");

  std::vector<uint8_t> png = encode_png(img, {{"parameters", "hello"}});
  std::string raw(png.begin(), png.end());
  png[raw.find("hello")] ^= 1;  // breaks the chunk's CRC
  write_bytes(path("crc.png"), png);
  expect_error([&] { read_png_text(path("crc.png")); }, "crc.png' is corrupt");

  png = encode_png(img, {{"parameters", "hello"}});
  png.resize(png.size() / 2);
  write_bytes(path("half.png"), png);
  expect_error([&] { read_png_text(path("half.png")); }, "half.png' is truncated");
  expect_error([&] { read_image(path("half.png")); }, "half.png");
  write_bytes(path("notpng.png"), {'h', 'e', 'l', 'l', 'o'});
  expect_error([&] { read_png_text(path("notpng.png")); }, "notpng.png' is not a PNG");
}

TEST_F(ImageTest, TensorConversion) {
  Image img(2, 1, 3);
  img.pixels = {0, 51, 255, 255, 102, 0};
  Tensor chw = image_to_tensor(img, Layout::CHW, PixelRange::ZeroOne);
  EXPECT_EQ(chw.shape(), (Shape{3, 1, 2}));
  std::vector<float> v = chw.to_vector();
  EXPECT_FLOAT_EQ(v[0], 0.0f);  // R of pixel 0
  EXPECT_FLOAT_EQ(v[1], 1.0f);  // R of pixel 1
  EXPECT_FLOAT_EQ(v[2], 0.2f);  // G of pixel 0
  Tensor hwc = image_to_tensor(img, Layout::HWC, PixelRange::MinusOneOne);
  EXPECT_EQ(hwc.shape(), (Shape{1, 2, 3}));
  std::vector<float> w = hwc.to_vector();
  EXPECT_FLOAT_EQ(w[0], -1.0f);
  EXPECT_FLOAT_EQ(w[2], 1.0f);
  EXPECT_NEAR(w[1], -0.6f, 1e-6);

  // Exact round trip with rounding, in both layouts and from a non-contiguous view.
  Image big = pattern_image(13, 7, 3);
  expect_same(tensor_to_image(image_to_tensor(big), Layout::CHW, PixelRange::MinusOneOne, Rounding::Round), big);
  Tensor as_hwc = image_to_tensor(big, Layout::CHW, PixelRange::ZeroOne).permute({1, 2, 0});
  expect_same(tensor_to_image(as_hwc, Layout::HWC, PixelRange::ZeroOne, Rounding::Round), big);
}

TEST_F(ImageTest, TensorToImageClampsAndRounds) {
  // 0 -> 127.5: truncation (official Wan/FLUX scripts) gives 127, rounding (diffusers) 128.
  Tensor t = Tensor::from_vector({-2.0f, -1.0f, 0.0f, 1.0f, 3.0f, NAN}, {1, 1, 6});
  Image trunc = tensor_to_image(t, Layout::CHW, PixelRange::MinusOneOne, Rounding::Truncate);
  EXPECT_EQ(trunc.pixels, (std::vector<uint8_t>{0, 0, 127, 255, 255, 0}));
  Image round = tensor_to_image(t, Layout::CHW, PixelRange::MinusOneOne, Rounding::Round);
  EXPECT_EQ(round.pixels, (std::vector<uint8_t>{0, 0, 128, 255, 255, 0}));
  Tensor bf16 = Tensor::from_vector({0.5f, 0.25f}, {1, 1, 2}, DType::BF16);
  EXPECT_EQ(tensor_to_image(bf16, Layout::CHW, PixelRange::ZeroOne, Rounding::Round).pixels,
            (std::vector<uint8_t>{128, 64}));
  expect_error([] { tensor_to_image(Tensor::zeros({3, 4}, DType::F32)); }, "3-D");
  expect_error([] { tensor_to_image(Tensor::zeros({5, 4, 4}, DType::F32)); }, "5 channels");
}

TEST_F(ImageTest, ReadsJpegAndBmp) {
  Image img = gradient_image(64, 48);
  ASSERT_TRUE(stbi_write_jpg(path("g.jpg").c_str(), img.width, img.height, 3, img.pixels.data(), 95));
  Image jpg = read_image(path("g.jpg"));
  ASSERT_EQ(jpg.width, 64);
  ASSERT_EQ(jpg.height, 48);
  ASSERT_EQ(jpg.channels, 3);
  double err = 0;
  for (size_t i = 0; i < img.pixels.size(); ++i) err += std::abs(int(img.pixels[i]) - int(jpg.pixels[i]));
  EXPECT_LT(err / double(img.pixels.size()), 3.0);

  std::vector<uint8_t> cut = read_bytes(path("g.jpg"));
  cut.resize(cut.size() * 2 / 3);
  write_bytes(path("cut.jpg"), cut);
  expect_error([&] { read_image(path("cut.jpg")); }, "cut.jpg': corrupt or truncated JPEG");
  EXPECT_EQ(read_image(path("g.jpg"), 1).channels, 1);
  EXPECT_EQ(read_image(path("g.jpg"), 4).at(5, 5)[3], 255);

  ASSERT_TRUE(stbi_write_bmp(path("g.bmp").c_str(), img.width, img.height, 3, img.pixels.data()));
  expect_same(read_image(path("g.bmp")), img);
}

TEST_F(ImageTest, ReadsWebp) {
  Image rgb = pattern_image(21, 11, 3);
  uint8_t* out = nullptr;
  size_t size = WebPEncodeLosslessRGB(rgb.pixels.data(), rgb.width, rgb.height, rgb.width * 3, &out);
  ASSERT_GT(size, 0u);
  write_bytes(path("a.webp"), std::vector<uint8_t>(out, out + size));
  std::vector<uint8_t> bytes(out, out + size);
  WebPFree(out);
  expect_same(read_image(path("a.webp")), rgb);
  EXPECT_EQ(read_image(path("a.webp"), 1).channels, 1);
  Image rgba4 = read_image(path("a.webp"), 4);
  EXPECT_EQ(rgba4.channels, 4);
  EXPECT_EQ(rgba4.at(3, 2)[3], 255);

  Image rgba = pattern_image(9, 5, 4);
  size = WebPEncodeLosslessRGBA(rgba.pixels.data(), rgba.width, rgba.height, rgba.width * 4, &out);
  ASSERT_GT(size, 0u);
  write_bytes(path("b.webp"), std::vector<uint8_t>(out, out + size));
  WebPFree(out);
  expect_same(read_image(path("b.webp")), rgba);

  bytes.resize(bytes.size() / 2);
  write_bytes(path("cut.webp"), bytes);
  expect_error([&] { read_image(path("cut.webp")); }, "cut.webp");
}

TEST_F(ImageTest, GarbageAndAbsurdFilesThrowNamingTheFile) {
  expect_error([&] { read_image(path("missing.png")); }, "missing.png");
  write_bytes(path("empty.png"), {});
  expect_error([&] { read_image(path("empty.png")); }, "empty.png");
  std::vector<uint8_t> garbage(1000);
  for (size_t i = 0; i < garbage.size(); ++i) garbage[i] = uint8_t(i * 31 + 7);
  write_bytes(path("garbage.jpg"), garbage);
  expect_error([&] { read_image(path("garbage.jpg")); }, "garbage.jpg");

  // Headers claiming 60000 x 60000 pixels are refused before anything is allocated (stb and
  // FFmpeg check PNG and JPEG sizes themselves, BMP reaches our own limit).
  std::vector<uint8_t> png = encode_png(pattern_image(4, 4, 3));
  for (int i : {16, 20}) {
    png[i + 2] = 0xea;  // IHDR width and height = 0x0000ea60 = 60000
    png[i + 3] = 0x60;
  }
  write_bytes(path("huge.png"), png);
  expect_error([&] { read_image(path("huge.png")); }, "huge.png");
  Image small = gradient_image(8, 8);
  ASSERT_TRUE(stbi_write_jpg(path("huge.jpg").c_str(), 8, 8, 3, small.pixels.data(), 90));
  std::vector<uint8_t> jpg = read_bytes(path("huge.jpg"));
  size_t sof = 0;
  while (sof + 9 < jpg.size() && !(jpg[sof] == 0xff && jpg[sof + 1] == 0xc0)) ++sof;
  ASSERT_LT(sof + 9, jpg.size());
  for (size_t i : {sof + 5, sof + 7}) {  // SOF0: marker, length, precision, height, width
    jpg[i] = 0xea;
    jpg[i + 1] = 0x60;
  }
  write_bytes(path("huge.jpg"), jpg);
  expect_error([&] { read_image(path("huge.jpg")); }, "huge.jpg'");
  ASSERT_TRUE(stbi_write_bmp(path("huge.bmp").c_str(), 8, 8, 3, small.pixels.data()));
  std::vector<uint8_t> bmp = read_bytes(path("huge.bmp"));
  for (size_t i : {18, 22}) {  // BITMAPINFOHEADER width and height, little-endian
    bmp[i] = 0x60;
    bmp[i + 1] = 0xea;
  }
  write_bytes(path("huge.bmp"), bmp);
  expect_error([&] { read_image(path("huge.bmp")); }, "huge.bmp' has unsupported size 60000x60000");

  std::vector<uint8_t> fake_webp = {'R', 'I', 'F', 'F', 0, 0, 0, 0, 'W', 'E', 'B', 'P', 'V', 'P', '8', ' '};
  write_bytes(path("fake.webp"), fake_webp);
  expect_error([&] { read_image(path("fake.webp")); }, "fake.webp");
  expect_error([&] { read_image(dir_.string()); }, dir_.string());
}

// Every prefix and many single-byte corruptions of valid files either decode or throw Error.
TEST_F(ImageTest, DamagedFilesNeverCrash) {
  Image img = gradient_image(24, 16);
  std::vector<std::vector<uint8_t>> files;
  files.push_back(encode_png(img, {{"parameters", "a prompt"}, {"prompt", "ünïcode"}}));
  ASSERT_TRUE(stbi_write_jpg(path("j.jpg").c_str(), img.width, img.height, 3, img.pixels.data(), 90));
  files.push_back(read_bytes(path("j.jpg")));
  ASSERT_TRUE(stbi_write_bmp(path("b.bmp").c_str(), img.width, img.height, 3, img.pixels.data()));
  files.push_back(read_bytes(path("b.bmp")));
  uint8_t* out = nullptr;
  size_t size = WebPEncodeRGB(img.pixels.data(), img.width, img.height, img.width * 3, 80, &out);
  files.emplace_back(out, out + size);
  WebPFree(out);

  int decoded = 0, refused = 0;
  auto attempt = [&](const std::vector<uint8_t>& bytes) {
    try {
      Image back = decode_image(bytes.data(), bytes.size(), "damaged");
      EXPECT_EQ(back.pixels.size(), size_t(back.width) * back.height * back.channels);
      ++decoded;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("damaged"), std::string::npos) << e.what();
      ++refused;
    }
    write_bytes(path("d.png"), bytes);
    try {
      read_png_text(path("d.png"));
    } catch (const Error&) {
    }
  };
  uint32_t seed = 12345;
  for (const auto& file : files) {
    for (size_t n = 0; n < file.size(); n += 1 + file.size() / 97) attempt({file.begin(), file.begin() + n});
    for (int i = 0; i < 200; ++i) {
      std::vector<uint8_t> bytes = file;
      seed = seed * 1664525u + 1013904223u;
      bytes[seed % bytes.size()] ^= uint8_t(1 + (seed >> 24) % 255);
      attempt(bytes);
    }
  }
  EXPECT_GT(refused, 100);
  EXPECT_GT(decoded, 100);
}

TEST_F(ImageTest, FailedWriteKeepsExistingFile) {
  Image img = pattern_image(8, 8, 3);
  write_png(path("keep.png"), img);
  std::vector<uint8_t> before = read_bytes(path("keep.png"));
  expect_error([&] { write_png(path("keep.png"), img, {{"bad key ", "x"}}); }, "keyword");
  Image broken = img;
  broken.pixels.resize(10);
  expect_error([&] { write_png(path("keep.png"), broken); }, "bytes");
  EXPECT_EQ(read_bytes(path("keep.png")), before);
  expect_error([&] { write_png(path("no/such/dir/x.png"), img); }, "does not exist");
  EXPECT_EQ(file_count(), 1);  // no temporary left behind
}

TEST_F(ImageTest, Resize) {
  // 4x2 -> 2x1 with area averaging: each output pixel is the mean of a 2x2 block.
  Image img(4, 2, 1);
  img.pixels = {0, 100, 200, 200, 100, 200, 0, 40};
  Image small = resize_image(img, 2, 1);
  EXPECT_EQ(small.pixels, (std::vector<uint8_t>{100, 110}));
  Image flat(3, 3, 3);
  std::fill(flat.pixels.begin(), flat.pixels.end(), 77);
  Image big = resize_image(flat, 7, 5, ResizeFilter::Cubic);
  EXPECT_EQ(big.width, 7);
  EXPECT_EQ(big.height, 5);
  EXPECT_TRUE(std::all_of(big.pixels.begin(), big.pixels.end(), [](uint8_t v) { return v == 77; }));
}

TEST_F(ImageTest, ReadMask) {
  Image gray(3, 1, 1);
  gray.pixels = {0, 255, 128};
  write_png(path("m.png"), gray);
  Tensor mask = read_mask(path("m.png"));
  EXPECT_EQ(mask.shape(), (Shape{1, 3}));
  std::vector<float> v = mask.to_vector();
  EXPECT_FLOAT_EQ(v[0], 0.0f);
  EXPECT_FLOAT_EQ(v[1], 1.0f);
  EXPECT_FLOAT_EQ(v[2], 128.0f / 255.0f);
  EXPECT_EQ(read_mask(path("m.png"), 0, 0, 0.6f).to_vector(), (std::vector<float>{0, 1, 0}));

  Image rgb(4, 4, 3);
  std::fill(rgb.pixels.begin(), rgb.pixels.end(), 255);
  write_png(path("white.png"), rgb);
  Tensor resized = read_mask(path("white.png"), 2, 2, 0.5f);
  EXPECT_EQ(resized.shape(), (Shape{2, 2}));
  EXPECT_EQ(resized.to_vector(), (std::vector<float>{1, 1, 1, 1}));
  expect_error([&] { read_mask(path("white.png"), 2, 0); }, "white.png");
}
