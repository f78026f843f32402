// Images: 8-bit interleaved pixels, conversion to and from model tensors, reading
// PNG/JPEG/BMP/WebP, writing PNG with generation parameters in text chunks, resizing, masks.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"

namespace ditkit {

// Decoders refuse images larger than this (garbage headers must not allocate gigabytes).
constexpr int64_t kMaxImageSide = 1 << 16;
constexpr int64_t kMaxImagePixels = int64_t(1) << 28;

struct Image {
  int width = 0, height = 0, channels = 0;  // channels: 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA
  std::vector<uint8_t> pixels;              // row-major, interleaved, no row padding

  Image() = default;
  Image(int width, int height, int channels);  // zero-filled; throws on absurd sizes
  uint8_t* at(int x, int y) { return pixels.data() + (size_t(y) * width + x) * channels; }
  const uint8_t* at(int x, int y) const { return pixels.data() + (size_t(y) * width + x) * channels; }
};

enum class Layout { CHW, HWC };
// Value range of the float tensor: the VAEs of Wan and FLUX decode to [-1, 1].
enum class PixelRange { MinusOneOne, ZeroOne };
// Float -> uint8 after v = (clamp(x, -1, 1) + 1) / 2 * 255 (or clamp(x, 0, 1) * 255):
// Truncate as the official Wan (save_video) and FLUX (cli) scripts do with .byte()/uint8
// casts; Round (half to even) as diffusers' numpy_to_pil does.
enum class Rounding { Truncate, Round };

// Image -> F32 CPU tensor [C, H, W] or [H, W, C]; p / 255 or 2 * (p / 255) - 1 as diffusers.
Tensor image_to_tensor(const Image& image, Layout layout = Layout::CHW,
                       PixelRange range = PixelRange::MinusOneOne);
// 3-D tensor of any dtype/device ([C, H, W] or [H, W, C], C in 1..4) -> Image. A video frame
// of a [C, T, H, W] tensor is tensor_to_image(video.select(1, t)).
Image tensor_to_image(const Tensor& tensor, Layout layout = Layout::CHW,
                      PixelRange range = PixelRange::MinusOneOne, Rounding rounding = Rounding::Truncate);

// Reads PNG, JPEG, BMP or WebP (detected from the content). channels: 0 keeps the file's,
// 1/3/4 converts (gray, RGB, RGBA). Errors name `path`.
Image read_image(const std::string& path, int channels = 0);
// Same from memory; `name` is used in error messages.
Image decode_image(const uint8_t* data, size_t size, const std::string& name, int channels = 0);

// JPEG through FFmpeg's MJPEG decoder (implemented with the other libav code in video.cpp):
// stb_image 2.27, as Debian ships it, has memory-safety bugs on crafted JPEGs.
Image decode_jpeg(const uint8_t* data, size_t size, const std::string& name, int channels = 0);

// PNG text chunks as (keyword, value) pairs; values are UTF-8. Keywords are 1-79 printable
// ASCII characters. ASCII values go in tEXt chunks, others in uncompressed iTXt (UTF-8).
using PngText = std::vector<std::pair<std::string, std::string>>;

// Writes `image` as PNG atomically, with the text chunks placed before the image data.
void write_png(const std::string& path, const Image& image, const PngText& text = {});
// Encodes to PNG bytes in memory (what write_png writes).
std::vector<uint8_t> encode_png(const Image& image, const PngText& text = {});
// Text chunks (tEXt, zTXt, iTXt) of a PNG file in file order; errors name `path` for
// non-PNG, truncated or corrupt (CRC) files.
PngText read_png_text(const std::string& path);

// Generation parameters as PNG text: one human-readable "parameters" line
// ("prompt\nNegative prompt: ...\nSteps: 30, Seed: 42, ..." as other tools write it)
// followed by each pair under its own keyword. `prompt` and `negative_prompt` lead the line.
PngText generation_text(const std::string& prompt, const std::string& negative_prompt,
                        const std::vector<std::pair<std::string, std::string>>& settings);

enum class ResizeFilter {
  Auto,   // Area when shrinking, Cubic when enlarging
  Area,   // cv::INTER_AREA: box average, no aliasing when downscaling
  Cubic,  // cv::INTER_CUBIC
};
Image resize_image(const Image& image, int width, int height, ResizeFilter filter = ResizeFilter::Auto);

// Reads a mask image as F32 [H, W] in [0, 1] (gray of the file; white = 1). Resized to
// width x height when both are > 0; with a threshold, values become 1 where v >= threshold else 0.
Tensor read_mask(const std::string& path, int width = 0, int height = 0,
                 std::optional<float> threshold = std::nullopt);

}  // namespace ditkit
