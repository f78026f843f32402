#include "samplers/torch_rng.h"

#include <cmath>

namespace ditkit::samplers {

void TorchGenerator::manual_seed(uint64_t seed) {
  state_[0] = uint32_t(seed & 0xffffffffu);
  for (uint32_t j = 1; j < 624; ++j) state_[j] = 1812433253u * (state_[j - 1] ^ (state_[j - 1] >> 30)) + j;
  index_ = 624;
  next_double_normal_.reset();
}

uint32_t TorchGenerator::random() {
  constexpr uint32_t kUpper = 0x80000000u, kLower = 0x7fffffffu, kMatrix = 0x9908b0dfu;
  if (index_ >= 624) {
    for (int i = 0; i < 624; ++i) {
      uint32_t y = (state_[i] & kUpper) | (state_[(i + 1) % 624] & kLower);
      state_[i] = state_[(i + 397) % 624] ^ (y >> 1) ^ ((y & 1u) ? kMatrix : 0u);
    }
    index_ = 0;
  }
  uint32_t y = state_[index_++];
  y ^= y >> 11;
  y ^= (y << 7) & 0x9d2c5680u;
  y ^= (y << 15) & 0xefc60000u;
  y ^= y >> 18;
  return y;
}

uint64_t TorchGenerator::random64() {
  uint64_t hi = random();
  uint64_t lo = random();
  return (hi << 32) | lo;
}

float TorchGenerator::uniform_float() { return float(random() & ((1u << 24) - 1)) * std::ldexp(1.0f, -24); }

double TorchGenerator::uniform_double() {
  return double(random64() & ((uint64_t(1) << 53) - 1)) * std::ldexp(1.0, -53);
}

double TorchGenerator::normal_double() {
  if (next_double_normal_) {
    double v = *next_double_normal_;
    next_double_normal_.reset();
    return v;
  }
  double u1 = uniform_double();
  double u2 = uniform_double();
  double r = std::sqrt(-2.0 * std::log(1.0 - u2));
  double theta = 2.0 * M_PI * u1;
  next_double_normal_ = r * std::sin(theta);
  return r * std::cos(theta);
}

Tensor TorchGenerator::randn(const Shape& shape) {
  Tensor out = Tensor::empty(shape, DType::F32);
  float* data = out.data<float>();
  int64_t n = out.numel();
  if (n < 16) {
    // Small tensors: serial draws of normal_distribution<double>, cast to float.
    for (int64_t i = 0; i < n; ++i) data[i] = float(normal_double());
    return out;
  }
  // Vectorised path: fill uniforms, then Box-Muller on blocks of 16 pairing i with i + 8.
  auto fill_16 = [](float* d) {
    for (int j = 0; j < 8; ++j) {
      float u1 = 1.0f - d[j];  // (0, 1] for the log
      float u2 = d[j + 8];
      float radius = std::sqrt(-2.0f * std::log(u1));
      float theta = 2.0f * float(M_PI) * u2;
      d[j] = radius * std::cos(theta);
      d[j + 8] = radius * std::sin(theta);
    }
  };
  for (int64_t i = 0; i < n; ++i) data[i] = uniform_float();
  for (int64_t i = 0; i + 16 <= n; i += 16) fill_16(data + i);
  if (n % 16 != 0) {
    // torch redraws the last 16 values and transforms them again.
    float* tail = data + n - 16;
    for (int i = 0; i < 16; ++i) tail[i] = uniform_float();
    fill_16(tail);
  }
  return out;
}

}  // namespace ditkit::samplers
