// PSNR and SSIM of frames against a reference, optionally inside a pixel mask (io/metrics.h).
#include "io/metrics.h"

#include <algorithm>
#include <array>
#include <cmath>

#include "core/error.h"

namespace ditkit {

namespace {

void check_sizes(const std::vector<Image>& a, const std::vector<Image>& b, const PixelMask& mask,
                 const std::string& what) {
  DK_CHECK(!a.empty() && a.size() == b.size(), what, ": expected ", a.size(), " frames, got ", b.size());
  for (size_t f = 0; f < a.size(); ++f)
    DK_CHECK(a[f].width == b[f].width && a[f].height == b[f].height && a[f].width == a[0].width &&
                 a[f].height == a[0].height && std::min(a[f].channels, 3) == std::min(b[f].channels, 3),
             what, ": frame ", f, " is ", b[f].width, "x", b[f].height, "x", b[f].channels, ", expected ", a[f].width,
             "x", a[f].height, "x", a[f].channels);
  if (mask.empty()) return;
  const size_t plane = size_t(a[0].width) * size_t(a[0].height);
  DK_CHECK(mask.width == a[0].width && mask.height == a[0].height &&
               (mask.values.size() == plane || mask.values.size() == plane * a.size()),
           what, ": the mask is ", mask.width, "x", mask.height, " with ", mask.values.size(), " values, expected ",
           a[0].width, "x", a[0].height, " (one plane or one per frame)");
}

bool counted(const PixelMask& mask, size_t frame, size_t pixel, size_t plane) {
  if (mask.empty()) return true;
  return mask.values[mask.values.size() == plane ? pixel : frame * plane + pixel] != 0;
}

// Reflect-101 index (OpenCV's default border): -1 -> 1, n -> n - 2.
int reflect(int i, int n) {
  if (n == 1) return 0;
  while (i < 0 || i >= n) i = i < 0 ? -i : 2 * (n - 1) - i;
  return i;
}

// Separable Gaussian blur (11 taps, sigma 1.5) of a w x h plane.
std::vector<double> blur(const std::vector<double>& x, int w, int h) {
  constexpr int kRadius = 5;
  static const std::array<double, 2 * kRadius + 1> k = [] {
    std::array<double, 2 * kRadius + 1> g{};
    double sum = 0;
    for (int i = -kRadius; i <= kRadius; ++i) sum += g[size_t(i + kRadius)] = std::exp(-i * i / (2 * 1.5 * 1.5));
    for (double& v : g) v /= sum;
    return g;
  }();
  std::vector<double> rows(x.size()), out(x.size());
  for (int y = 0; y < h; ++y)
    for (int c = 0; c < w; ++c) {
      double s = 0;
      for (int i = -kRadius; i <= kRadius; ++i) s += k[size_t(i + kRadius)] * x[size_t(y) * w + reflect(c + i, w)];
      rows[size_t(y) * w + c] = s;
    }
  for (int y = 0; y < h; ++y)
    for (int c = 0; c < w; ++c) {
      double s = 0;
      for (int i = -kRadius; i <= kRadius; ++i) s += k[size_t(i + kRadius)] * rows[size_t(reflect(y + i, h)) * w + c];
      out[size_t(y) * w + c] = s;
    }
  return out;
}

}  // namespace

double psnr(const std::vector<Image>& frames, const std::vector<Image>& reference, const PixelMask& mask,
            const std::string& what) {
  check_sizes(frames, reference, mask, what);
  const size_t plane = size_t(frames[0].width) * size_t(frames[0].height);
  const int channels = std::min(frames[0].channels, 3);
  double se = 0, n = 0;
  for (size_t f = 0; f < frames.size(); ++f)
    for (size_t p = 0; p < plane; ++p) {
      if (!counted(mask, f, p, plane)) continue;
      for (int c = 0; c < channels; ++c) {
        const double d = double(frames[f].pixels[p * size_t(frames[f].channels) + size_t(c)]) -
                         double(reference[f].pixels[p * size_t(reference[f].channels) + size_t(c)]);
        se += d * d;
        n += 1;
      }
    }
  DK_CHECK(n > 0, what, ": the mask selects no pixel");
  return se == 0 ? INFINITY : 10.0 * std::log10(255.0 * 255.0 / (se / n));
}

double ssim(const std::vector<Image>& frames, const std::vector<Image>& reference, const PixelMask& mask,
            const std::string& what) {
  check_sizes(frames, reference, mask, what);
  const int w = frames[0].width, h = frames[0].height, channels = std::min(frames[0].channels, 3);
  const size_t plane = size_t(w) * size_t(h);
  const double c1 = (0.01 * 255) * (0.01 * 255), c2 = (0.03 * 255) * (0.03 * 255);
  double sum = 0, n = 0;
  for (size_t f = 0; f < frames.size(); ++f)
    for (int c = 0; c < channels; ++c) {
      std::vector<double> a(plane), b(plane), aa(plane), bb(plane), ab(plane);
      for (size_t p = 0; p < plane; ++p) {
        a[p] = frames[f].pixels[p * size_t(frames[f].channels) + size_t(c)];
        b[p] = reference[f].pixels[p * size_t(reference[f].channels) + size_t(c)];
        aa[p] = a[p] * a[p], bb[p] = b[p] * b[p], ab[p] = a[p] * b[p];
      }
      const auto ma = blur(a, w, h), mb = blur(b, w, h), saa = blur(aa, w, h), sbb = blur(bb, w, h),
                 sab = blur(ab, w, h);
      for (size_t p = 0; p < plane; ++p) {
        if (!counted(mask, f, p, plane)) continue;
        const double va = saa[p] - ma[p] * ma[p], vb = sbb[p] - mb[p] * mb[p], cov = sab[p] - ma[p] * mb[p];
        sum += ((2 * ma[p] * mb[p] + c1) * (2 * cov + c2)) / ((ma[p] * ma[p] + mb[p] * mb[p] + c1) * (va + vb + c2));
        n += 1;
      }
    }
  DK_CHECK(n > 0, what, ": the mask selects no pixel");
  return sum / n;
}

}  // namespace ditkit
