#include "io/image.h"

#include <sys/stat.h>
#include <webp/decode.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>

#include "core/atomic_file.h"
#include "core/error.h"

namespace {

// stb_image_write's own deflate is slow and large; zlib's is the reference implementation.
unsigned char* zlib_compress_for_stb(unsigned char* data, int size, int* out_size, int /*quality*/) {
  uLongf bound = compressBound(uLong(size));
  auto* out = static_cast<unsigned char*>(std::malloc(bound));
  if (!out) return nullptr;
  if (compress2(out, &bound, data, uLong(size), 6) != Z_OK) {
    std::free(out);
    return nullptr;
  }
  *out_size = int(bound);
  return out;
}

}  // namespace

// stb reads PNG and BMP only (JPEG goes to decode_jpeg); everything decodes from memory.
#define STB_IMAGE_STATIC
#define STB_IMAGE_IMPLEMENTATION
#define STBI_ONLY_PNG
#define STBI_ONLY_BMP
#define STBI_NO_STDIO
#define STBI_MAX_DIMENSIONS (1 << 16)
#define STB_IMAGE_WRITE_STATIC
#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STBI_WRITE_NO_STDIO
#define STBIW_ZLIB_COMPRESS zlib_compress_for_stb
#include <stb_image.h>
#include <stb_image_write.h>

namespace ditkit {
namespace {

constexpr size_t kMaxImageFileBytes = size_t(1) << 30;
constexpr uint8_t kPngSignature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
// Decompressed zTXt/iTXt text is capped so a zip bomb cannot exhaust memory.
constexpr size_t kMaxPngTextBytes = size_t(16) << 20;

void check_size(int64_t width, int64_t height, int64_t channels, const std::string& name) {
  DK_CHECK(width > 0 && height > 0 && width <= kMaxImageSide && height <= kMaxImageSide &&
               width * height <= kMaxImagePixels,
           "image '", name, "' has unsupported size ", width, "x", height, " (at most ", kMaxImageSide,
           " per side and ", kMaxImagePixels, " pixels)");
  DK_CHECK(channels >= 1 && channels <= 4, "image '", name, "' has ", channels, " channels; expected 1 to 4");
}

std::vector<uint8_t> read_file(const std::string& path, const char* what) {
  FILE* f = std::fopen(path.c_str(), "rb");
  DK_CHECK(f, "cannot open ", what, " '", path, "': ", std::strerror(errno));
  std::vector<uint8_t> bytes;
  struct stat st {};
  bool ok = fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode) && size_t(st.st_size) <= kMaxImageFileBytes;
  if (ok) {
    bytes.resize(size_t(st.st_size));
    ok = std::fread(bytes.data(), 1, bytes.size(), f) == bytes.size();
  }
  std::fclose(f);
  DK_CHECK(ok, "cannot read ", what, " '", path, "': not a regular file of at most 1 GiB, or a read error");
  return bytes;
}

Image from_cv(const cv::Mat& m) {
  Image out(m.cols, m.rows, m.channels());
  cv::Mat dst(m.rows, m.cols, CV_8UC(m.channels()), out.pixels.data());
  m.copyTo(dst);
  return out;
}

cv::Mat as_cv(const Image& image) {
  return cv::Mat(image.height, image.width, CV_8UC(image.channels), const_cast<uint8_t*>(image.pixels.data()));
}

Image decode_webp(const uint8_t* data, size_t size, const std::string& name, int channels) {
  WebPBitstreamFeatures features;
  DK_CHECK(WebPGetFeatures(data, size, &features) == VP8_STATUS_OK, "cannot read image '", name,
           "': corrupt or truncated WebP");
  DK_CHECK(!features.has_animation, "cannot read image '", name, "': animated WebP is not supported");
  int decoded_channels = (channels == 4 || (channels == 0 && features.has_alpha)) ? 4 : 3;
  check_size(features.width, features.height, decoded_channels, name);
  Image image(features.width, features.height, decoded_channels);
  int stride = image.width * decoded_channels;
  uint8_t* ok = decoded_channels == 4
                    ? WebPDecodeRGBAInto(data, size, image.pixels.data(), image.pixels.size(), stride)
                    : WebPDecodeRGBInto(data, size, image.pixels.data(), image.pixels.size(), stride);
  DK_CHECK(ok, "cannot read image '", name, "': corrupt or truncated WebP");
  if (channels == 1) {
    cv::Mat gray;
    cv::cvtColor(as_cv(image), gray, cv::COLOR_RGB2GRAY);
    return from_cv(gray);
  }
  return image;
}

void put_be32(std::vector<uint8_t>& out, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(uint8_t(v >> shift));
}

uint32_t get_be32(const uint8_t* p) {
  return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | uint32_t(p[3]);
}

void append_chunk(std::vector<uint8_t>& out, const char type[4], const std::string& data) {
  put_be32(out, uint32_t(data.size()));
  size_t start = out.size();
  out.insert(out.end(), type, type + 4);
  out.insert(out.end(), data.begin(), data.end());
  put_be32(out, uint32_t(crc32(0, out.data() + start, uInt(out.size() - start))));
}

bool is_ascii(const std::string& s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return (unsigned char)c < 0x80; });
}

bool is_utf8(const std::string& s) {
  for (size_t i = 0; i < s.size();) {
    unsigned char c = s[i];
    int extra = c < 0x80 ? 0 : (c >> 5) == 0x6 ? 1 : (c >> 4) == 0xe ? 2 : (c >> 3) == 0x1e ? 3 : -1;
    if (extra < 0 || i + extra >= s.size()) return false;
    for (int k = 1; k <= extra; ++k)
      if ((static_cast<unsigned char>(s[i + k]) >> 6) != 0x2) return false;
    i += extra + 1;
  }
  return true;
}

std::string latin1_to_utf8(std::string_view s) {
  std::string out;
  for (unsigned char c : s) {
    if (c < 0x80) {
      out += char(c);
    } else {
      out += char(0xc0 | (c >> 6));
      out += char(0x80 | (c & 0x3f));
    }
  }
  return out;
}

std::string inflate_text(std::string_view compressed, const std::string& path) {
  z_stream zs{};
  DK_CHECK(inflateInit(&zs) == Z_OK, "cannot read PNG text of '", path, "': zlib init failed");
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(compressed.data()));
  zs.avail_in = uInt(compressed.size());
  std::string out;
  int rc = Z_OK;
  while (rc == Z_OK && out.size() < kMaxPngTextBytes) {
    char buf[65536];
    zs.next_out = reinterpret_cast<Bytef*>(buf);
    zs.avail_out = sizeof(buf);
    rc = inflate(&zs, Z_NO_FLUSH);
    out.append(buf, sizeof(buf) - zs.avail_out);
    if (rc == Z_BUF_ERROR && zs.avail_in == 0) break;  // input ended before the stream did
  }
  inflateEnd(&zs);
  DK_CHECK(rc == Z_STREAM_END, "cannot read PNG text of '", path,
           "': corrupt or oversized compressed text chunk");
  return out;
}

// Splits chunk data at its first NUL; throws when there is none.
std::string_view take_until_nul(std::string_view& data, const std::string& path, const char* type) {
  size_t nul = data.find('\0');
  DK_CHECK(nul != std::string_view::npos, "cannot read PNG text of '", path, "': malformed ", type, " chunk");
  std::string_view head = data.substr(0, nul);
  data.remove_prefix(nul + 1);
  return head;
}

std::pair<std::string, std::string> parse_text_chunk(const std::string& type, std::string_view data,
                                                     const std::string& path) {
  std::string key = latin1_to_utf8(take_until_nul(data, path, type.c_str()));
  DK_CHECK(!key.empty() && key.size() <= 79, "cannot read PNG text of '", path, "': bad keyword in ", type);
  if (type == "tEXt") return {key, latin1_to_utf8(data)};
  DK_CHECK(data.size() >= 2, "cannot read PNG text of '", path, "': malformed ", type, " chunk");
  if (type == "zTXt") return {key, latin1_to_utf8(inflate_text(data.substr(1), path))};
  bool compressed = data[0] != 0;
  data.remove_prefix(2);
  take_until_nul(data, path, "iTXt");  // language tag
  take_until_nul(data, path, "iTXt");  // translated keyword
  return {key, compressed ? inflate_text(data, path) : std::string(data)};
}

}  // namespace

Image::Image(int w, int h, int c) : width(w), height(h), channels(c) {
  check_size(w, h, c, "in memory");
  pixels.assign(size_t(w) * h * c, 0);
}

Tensor image_to_tensor(const Image& image, Layout layout, PixelRange range) {
  const int64_t c = image.channels, h = image.height, w = image.width;
  Tensor t = Tensor::empty(layout == Layout::CHW ? Shape{c, h, w} : Shape{h, w, c}, DType::F32);
  float* out = t.data<float>();
  for (int64_t y = 0; y < h; ++y) {
    for (int64_t x = 0; x < w; ++x) {
      for (int64_t k = 0; k < c; ++k) {
        float v = image.pixels[(y * w + x) * c + k] / 255.0f;
        if (range == PixelRange::MinusOneOne) v = 2.0f * v - 1.0f;
        out[layout == Layout::CHW ? (k * h + y) * w + x : (y * w + x) * c + k] = v;
      }
    }
  }
  return t;
}

Image tensor_to_image(const Tensor& tensor, Layout layout, PixelRange range, Rounding rounding) {
  DK_CHECK(tensor.ndim() == 3, "image tensor must be 3-D (", layout == Layout::CHW ? "[C, H, W]" : "[H, W, C]",
           "), got ", tensor.str());
  const int64_t c = layout == Layout::CHW ? tensor.dim(0) : tensor.dim(2);
  const int64_t h = layout == Layout::CHW ? tensor.dim(1) : tensor.dim(0);
  const int64_t w = layout == Layout::CHW ? tensor.dim(2) : tensor.dim(1);
  check_size(w, h, c, "tensor " + tensor.str());
  std::vector<float> values = tensor.to_vector();
  const float lo = range == PixelRange::MinusOneOne ? -1.0f : 0.0f;
  Image image{int(w), int(h), int(c)};
  for (int64_t y = 0; y < h; ++y) {
    for (int64_t x = 0; x < w; ++x) {
      for (int64_t k = 0; k < c; ++k) {
        float v = values[layout == Layout::CHW ? (k * h + y) * w + x : (y * w + x) * c + k];
        if (!(v >= lo)) v = lo;  // also maps NaN to black: casting NaN to uint8 is undefined
        if (v > 1.0f) v = 1.0f;
        v = (range == PixelRange::MinusOneOne ? (v + 1.0f) / 2.0f : v) * 255.0f;
        image.pixels[(y * w + x) * c + k] = uint8_t(rounding == Rounding::Round ? std::nearbyint(v) : v);
      }
    }
  }
  return image;
}

Image decode_image(const uint8_t* data, size_t size, const std::string& name, int channels) {
  DK_CHECK(channels == 0 || channels == 1 || channels == 3 || channels == 4, "image '", name,
           "': requested ", channels, " channels; expected 0 (as stored), 1, 3 or 4");
  if (size >= 12 && std::memcmp(data, "RIFF", 4) == 0 && std::memcmp(data + 8, "WEBP", 4) == 0)
    return decode_webp(data, size, name, channels);
  if (size >= 3 && data[0] == 0xff && data[1] == 0xd8 && data[2] == 0xff)
    return decode_jpeg(data, size, name, channels);
  DK_CHECK(size > 0 && size <= size_t(INT32_MAX), "cannot read image '", name, "': empty or too large file");
  int w = 0, h = 0, c = 0;
  DK_CHECK(stbi_info_from_memory(data, int(size), &w, &h, &c), "cannot read image '", name,
           "': ", stbi_failure_reason(), " (expected PNG, JPEG, BMP or WebP)");
  check_size(w, h, channels ? channels : c, name);
  stbi_uc* pixels = stbi_load_from_memory(data, int(size), &w, &h, &c, channels);
  DK_CHECK(pixels, "cannot read image '", name, "': ", stbi_failure_reason(), " (corrupt or truncated file)");
  Image image;
  image.width = w;
  image.height = h;
  image.channels = channels ? channels : c;
  image.pixels.assign(pixels, pixels + size_t(w) * h * image.channels);
  stbi_image_free(pixels);
  return image;
}

Image read_image(const std::string& path, int channels) {
  std::vector<uint8_t> bytes = read_file(path, "image");
  return decode_image(bytes.data(), bytes.size(), path, channels);
}

std::vector<uint8_t> encode_png(const Image& image, const PngText& text) {
  check_size(image.width, image.height, image.channels, "to encode");
  DK_CHECK(image.pixels.size() == size_t(image.width) * image.height * image.channels,
           "image to encode has ", image.pixels.size(), " bytes; expected ", image.width, "x", image.height, "x",
           image.channels);
  std::vector<uint8_t> png;
  auto append = [](void* ctx, void* data, int size) {
    auto* out = static_cast<std::vector<uint8_t>*>(ctx);
    out->insert(out->end(), static_cast<uint8_t*>(data), static_cast<uint8_t*>(data) + size);
  };
  DK_CHECK(stbi_write_png_to_func(append, &png, image.width, image.height, image.channels, image.pixels.data(),
                                  image.width * image.channels),
           "PNG encoding failed (out of memory)");
  // stb writes signature, IHDR (13 bytes of data), IDAT, IEND; text goes right after IHDR.
  constexpr size_t kAfterIhdr = 8 + 8 + 13 + 4;
  std::vector<uint8_t> chunks;
  for (const auto& [key, value] : text) {
    bool key_ok = !key.empty() && key.size() <= 79 && key.front() != ' ' && key.back() != ' ' &&
                  std::all_of(key.begin(), key.end(), [](char c) { return c >= 32 && c <= 126; });
    DK_CHECK(key_ok, "PNG text keyword '", key, "' must be 1-79 printable ASCII characters");
    DK_CHECK(value.find('\0') == std::string::npos && is_utf8(value), "PNG text value for '", key,
             "' must be UTF-8 without NUL characters");
    DK_CHECK(value.size() <= kMaxPngTextBytes, "PNG text value for '", key, "' is longer than ",
             kMaxPngTextBytes, " bytes");
    if (is_ascii(value)) {
      append_chunk(chunks, "tEXt", key + '\0' + value);
    } else {
      // No compression, empty language tag and translated keyword.
      append_chunk(chunks, "iTXt", key + std::string("\0\0\0\0\0", 5) + value);
    }
  }
  png.insert(png.begin() + kAfterIhdr, chunks.begin(), chunks.end());
  return png;
}

void write_png(const std::string& path, const Image& image, const PngText& text) {
  std::vector<uint8_t> png = encode_png(image, text);
  write_file_atomically(path, png.data(), png.size());
}

PngText read_png_text(const std::string& path) {
  std::vector<uint8_t> bytes = read_file(path, "PNG");
  DK_CHECK(bytes.size() >= 8 && std::memcmp(bytes.data(), kPngSignature, 8) == 0, "'", path,
           "' is not a PNG file");
  PngText text;
  size_t pos = 8;
  while (true) {
    DK_CHECK(bytes.size() - pos >= 12, "PNG '", path, "' is truncated (no IEND chunk)");
    size_t length = get_be32(&bytes[pos]);
    DK_CHECK(length <= bytes.size() - pos - 12, "PNG '", path, "' is truncated (chunk at byte ", pos,
             " runs past the end)");
    std::string type(reinterpret_cast<const char*>(&bytes[pos + 4]), 4);
    if (type == "IEND") break;
    if (type == "tEXt" || type == "zTXt" || type == "iTXt") {
      uint32_t crc = uint32_t(crc32(0, &bytes[pos + 4], uInt(length + 4)));
      DK_CHECK(crc == get_be32(&bytes[pos + 8 + length]), "PNG '", path, "' is corrupt (bad CRC in ", type,
               " chunk)");
      std::string_view data(reinterpret_cast<const char*>(&bytes[pos + 8]), length);
      text.push_back(parse_text_chunk(type, data, path));
    }
    pos += 12 + length;
  }
  return text;
}

PngText generation_text(const std::string& prompt, const std::string& negative_prompt,
                        const std::vector<std::pair<std::string, std::string>>& settings) {
  std::string line = prompt;
  if (!negative_prompt.empty()) line += "\nNegative prompt: " + negative_prompt;
  std::string joined;
  for (const auto& [key, value] : settings) joined += (joined.empty() ? "" : ", ") + key + ": " + value;
  if (!joined.empty()) line += "\n" + joined;
  PngText text = {{"parameters", line}, {"prompt", prompt}};
  if (!negative_prompt.empty()) text.emplace_back("negative_prompt", negative_prompt);
  text.insert(text.end(), settings.begin(), settings.end());
  return text;
}

Image resize_image(const Image& image, int width, int height, ResizeFilter filter) {
  check_size(width, height, image.channels, "resize target");
  if (filter == ResizeFilter::Auto)
    filter = (width <= image.width && height <= image.height) ? ResizeFilter::Area : ResizeFilter::Cubic;
  cv::Mat out;
  cv::resize(as_cv(image), out, cv::Size(width, height), 0, 0,
             filter == ResizeFilter::Area ? cv::INTER_AREA : cv::INTER_CUBIC);
  return from_cv(out);
}

Tensor read_mask(const std::string& path, int width, int height, std::optional<float> threshold) {
  DK_CHECK((width > 0) == (height > 0), "mask '", path, "': give both width and height or neither");
  Image gray = read_image(path, 1);
  if (width > 0 && (width != gray.width || height != gray.height)) gray = resize_image(gray, width, height);
  Tensor mask = image_to_tensor(gray, Layout::HWC, PixelRange::ZeroOne).reshape({gray.height, gray.width});
  if (threshold) {
    float* v = mask.data<float>();
    for (int64_t i = 0; i < mask.numel(); ++i) v[i] = v[i] >= *threshold ? 1.0f : 0.0f;
  }
  return mask;
}

}  // namespace ditkit
