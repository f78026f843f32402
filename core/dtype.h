// Element types: storage formats of checkpoints and compute types of kernels.
#pragma once
#include <cstdint>
#include <cstring>
#include <optional>
#include <string_view>

namespace ditkit {

enum class DType : uint8_t {
  F32, F64, F16, BF16,
  F8_E4M3,  // float8 e4m3fn (no infinities, max 448)
  F8_E5M2,
  I8, U8, I16, I32, I64, BOOL,
  Q8_0,  // GGUF block quantisation: 32 int8 values sharing one f16 scale (34 bytes)
};

constexpr int64_t kQ8_0Block = 32;
constexpr int64_t kQ8_0BlockBytes = 34;

// Bytes of one element; Q8_0 is blocked, use dtype_bytes for it.
size_t dtype_size(DType t);
// Bytes of n elements (n must be a multiple of 32 for Q8_0).
size_t dtype_bytes(DType t, int64_t n);
bool is_floating(DType t);
// Name as safetensors writes it ("F32", "BF16", "F8_E4M3", ...).
const char* dtype_name(DType t);
std::optional<DType> dtype_from_name(std::string_view name);

// Scalar conversions (round to nearest even, NaN kept, overflow saturates to inf/max as torch does).
inline float bf16_to_f32(uint16_t h) {
  uint32_t u = uint32_t(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
inline uint16_t f32_to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x40);  // quiet NaN
  u += 0x7fffu + ((u >> 16) & 1u);
  return uint16_t(u >> 16);
}
float f16_to_f32(uint16_t h);
uint16_t f32_to_f16(float f);
float fp8_e4m3_to_f32(uint8_t v);
uint8_t f32_to_fp8_e4m3(float f);  // saturates to +-448 (torch turns overflow into NaN)
float fp8_e5m2_to_f32(uint8_t v);
uint8_t f32_to_fp8_e5m2(float f);

// Converts n elements of any float or integer dtype to f32 (Q8_0: n multiple of 32).
void to_f32(DType src_type, const void* src, float* dst, int64_t n);
// Converts n f32 values into dtype dst_type (not Q8_0).
void from_f32(const float* src, DType dst_type, void* dst, int64_t n);

}  // namespace ditkit
