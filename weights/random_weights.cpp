#include "weights/random_weights.h"

#include <cmath>
#include <vector>

#include "core/threadpool.h"

namespace ditkit::weights {
namespace {

// splitmix64: a full-period mix of a counter, good enough for weights and cheap enough to fill
// tens of gigabytes in seconds.
uint64_t mix(uint64_t z) {
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

uint64_t hash_name(const std::string& name) {
  uint64_t h = 0xcbf29ce484222325ull;  // FNV-1a
  for (unsigned char c : name) h = (h ^ c) * 0x100000001b3ull;
  return h;
}

bool ends_with(const std::string& s, std::string_view tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

bool is_table(const std::string& name) {
  for (std::string_view t : {"token_embedding.weight", "shared.weight", "pos_embedding.embedding.weight",
                             "relative_attention_bias.weight", "position_embedding.weight"})
    if (ends_with(name, t)) return true;
  return false;
}

}  // namespace

Tensor random_tensor(const Shape& shape, DType dtype, float std, uint64_t seed) {
  DK_CHECK(dtype == DType::F32 || dtype == DType::F16 || dtype == DType::BF16 || dtype == DType::F8_E4M3,
           "random_tensor: dtype ", dtype_name(dtype), " is not one of F32, F16, BF16, F8_E4M3");
  Tensor t = Tensor::empty(shape, dtype);
  const float bound = std * std::sqrt(3.0f);
  const uint64_t key = mix(seed);
  char* out = static_cast<char*>(t.raw());
  const size_t elem = dtype_size(dtype);
  constexpr int64_t kChunk = 4096;
  parallel_for(0, (t.numel() + kChunk - 1) / kChunk, 16, [&](int64_t c0, int64_t c1) {
    std::vector<float> buf(kChunk);
    for (int64_t c = c0; c < c1; ++c) {
      const int64_t begin = c * kChunk, n = std::min(kChunk, t.numel() - begin);
      // Two 32-bit uniforms per 64-bit draw.
      for (int64_t i = 0; i < n; i += 2) {
        const uint64_t r = mix(key ^ uint64_t(begin + i));
        buf[i] = (float(uint32_t(r)) * 0x1p-31f - 1.0f) * bound;
        if (i + 1 < n) buf[i + 1] = (float(uint32_t(r >> 32)) * 0x1p-31f - 1.0f) * bound;
      }
      from_f32(buf.data(), dtype, out + size_t(begin) * elem, n);
    }
  });
  return t;
}

std::map<std::string, Tensor> random_weights(const ModelConfig& config, DType dtype, uint64_t seed) {
  std::map<std::string, Tensor> out;
  for (const auto& [name, shape] : expected_tensors(config)) {
    const bool norm_scale = (shape.size() == 1 && ends_with(name, ".weight")) || ends_with(name, ".gamma");
    if (ends_with(name, ".bias")) {
      out[name] = Tensor::zeros(shape, dtype);
    } else if (norm_scale) {
      out[name] = Tensor::full(shape, 1.0f, dtype);
    } else {
      float std = 1.0f;
      if (ends_with(name, "modulation"))
        std = 1.0f / std::sqrt(float(shape.back()));
      else if (!is_table(name))
        std = 1.0f / std::sqrt(float(shape_numel(shape) / std::max<int64_t>(shape.front(), 1)));
      out[name] = random_tensor(shape, dtype, std, mix(seed) ^ hash_name(name));
    }
  }
  return out;
}

ModelWeights random_model_weights(const ModelConfig& config, DType dtype, uint64_t seed) {
  Detected d;
  d.family = config.family;
  // The text encoders' official names are the transformers ones.
  if (config.family == Family::clip_l || config.family == Family::t5_xxl) d.layout = d.naming = Layout::hf;
  auto ckpt = std::make_shared<const Checkpoint>(Checkpoint::from_tensors(random_weights(config, dtype, seed)));
  return ModelWeights(std::move(ckpt), d);
}

}  // namespace ditkit::weights
