// Random weights at a model's real shapes, for benchmarks without a download: every tensor of
// expected_tensors(config), initialised the way training starts (so activations stay finite
// through deep stacks) and generated in parallel from a counter-based generator (the values
// depend only on the seed and the tensor name, not on the thread count).
#pragma once
#include <cstdint>
#include <map>
#include <string>

#include "core/tensor.h"
#include "weights/layout.h"

namespace ditkit::weights {

// A CPU tensor of `dtype` (F32, F16, BF16 or F8_E4M3) with values uniform in [-sqrt(3) std, sqrt(3) std]
// (mean 0, standard deviation `std`), a function of `seed` only.
Tensor random_tensor(const Shape& shape, DType dtype, float std, uint64_t seed);

// Official name -> tensor for every expected tensor of `config`: biases 0, norm scales 1,
// lookup tables (token embeddings, relative position biases) std 1, Wan modulations
// std 1/sqrt(dim) as the official init, every other weight std 1/sqrt(fan_in).
std::map<std::string, Tensor> random_weights(const ModelConfig& config, DType dtype = DType::BF16, uint64_t seed = 0);

// The same tensors seen through ModelWeights (official layout), ready for a model constructor.
ModelWeights random_model_weights(const ModelConfig& config, DType dtype = DType::BF16, uint64_t seed = 0);

}  // namespace ditkit::weights
