#include "dit/rope.h"

#include <cmath>

#include "core/error.h"

namespace ditkit::dit {

RopeTable rope_table(const std::vector<int64_t>& positions, const std::vector<int64_t>& axes_dim, double theta,
                     Device device) {
  return rope_table(std::vector<double>(positions.begin(), positions.end()), axes_dim, theta, device);
}

RopeTable rope_table(const std::vector<double>& positions, const std::vector<int64_t>& axes_dim, double theta,
                     Device device) {
  DK_CHECK(!axes_dim.empty(), "rope_table: no axes");
  int64_t pairs = 0;
  std::vector<double> freq;  // per pair, axis by axis
  for (int64_t d : axes_dim) {
    DK_CHECK(d > 0 && d % 2 == 0, "rope_table: axis width ", d, " must be positive and even");
    for (int64_t j = 0; j < d / 2; ++j) freq.push_back(1.0 / std::pow(theta, double(2 * j) / double(d)));
    pairs += d / 2;
  }
  const int64_t axes = int64_t(axes_dim.size());
  DK_CHECK(positions.size() % axes == 0, "rope_table: ", positions.size(), " positions are not a multiple of ", axes,
           " axes");
  const int64_t tokens = int64_t(positions.size()) / axes;
  std::vector<float> cos(tokens * pairs), sin(tokens * pairs);
  for (int64_t n = 0; n < tokens; ++n) {
    int64_t j = 0;
    for (int64_t a = 0; a < axes; ++a) {
      for (int64_t i = 0; i < axes_dim[a] / 2; ++i, ++j) {
        const double angle = positions[n * axes + a] * freq[j];
        cos[n * pairs + j] = float(std::cos(angle));
        sin[n * pairs + j] = float(std::sin(angle));
      }
    }
  }
  RopeTable t{Tensor::from_vector(cos, {tokens, pairs}), Tensor::from_vector(sin, {tokens, pairs})};
  if (device != Device::cpu()) t = {t.cos.to(device), t.sin.to(device)};
  return t;
}

std::vector<int64_t> grid_positions(int64_t frames, int64_t height, int64_t width) {
  std::vector<int64_t> p;
  p.reserve(frames * height * width * 3);
  for (int64_t f = 0; f < frames; ++f)
    for (int64_t h = 0; h < height; ++h)
      for (int64_t w = 0; w < width; ++w) p.insert(p.end(), {f, h, w});
  return p;
}

std::vector<int64_t> wan_rope_axes(int64_t head_dim) {
  DK_CHECK(head_dim >= 6 && head_dim % 2 == 0, "wan rope: head dim ", head_dim, " must be even and at least 6");
  const int64_t s = head_dim / 6;
  return {head_dim - 4 * s, 2 * s, 2 * s};
}

}  // namespace ditkit::dit
