// A CPU generator that draws exactly what PyTorch's CPU generator draws:
//   torch.randn(shape, generator=torch.Generator().manual_seed(seed))
// so that `--seed N` gives the same noise as the official pipelines.
#pragma once
#include <array>
#include <cstdint>
#include <optional>

#include "core/tensor.h"

namespace ditkit::samplers {

class TorchGenerator {
 public:
  explicit TorchGenerator(uint64_t seed = 67280421310721ull) { manual_seed(seed); }

  // As torch: the Mersenne Twister is seeded with the low 32 bits; cached normals are dropped.
  void manual_seed(uint64_t seed);
  uint32_t random();    // one mt19937 draw
  uint64_t random64();  // two draws, the first in the high word

  // torch.randn(shape) in float32 on the CPU; a second call continues the stream.
  Tensor randn(const Shape& shape);

 private:
  float uniform_float();    // 24 random bits in [0, 1)
  double uniform_double();  // 53 random bits in [0, 1)
  double normal_double();   // Box-Muller pairs; the second value is cached, as torch does

  std::array<uint32_t, 624> state_{};
  int index_ = 624;
  std::optional<double> next_double_normal_;
};

}  // namespace ditkit::samplers
