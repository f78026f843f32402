#include "core/dtype.h"

#include <cmath>
#include <vector>

#include "core/error.h"

namespace ditkit {

namespace {

struct Info {
  DType type;
  const char* name;
  size_t size;
  bool floating;
};
constexpr Info kInfo[] = {
    {DType::F32, "F32", 4, true},         {DType::F64, "F64", 8, true},
    {DType::F16, "F16", 2, true},         {DType::BF16, "BF16", 2, true},
    {DType::F8_E4M3, "F8_E4M3", 1, true}, {DType::F8_E5M2, "F8_E5M2", 1, true},
    {DType::I8, "I8", 1, false},          {DType::U8, "U8", 1, false},
    {DType::I16, "I16", 2, false},        {DType::I32, "I32", 4, false},
    {DType::I64, "I64", 8, false},        {DType::BOOL, "BOOL", 1, false},
    {DType::Q8_0, "Q8_0", 0, true},
};
const Info& info(DType t) { return kInfo[static_cast<int>(t)]; }

// IEEE-like minifloat with `ebits` exponent and `mbits` mantissa bits, round to nearest even.
// `fn` marks the e4m3fn flavour: no infinities, the all-ones pattern is NaN, saturates at max.
uint32_t encode_minifloat(float f, int ebits, int mbits, bool fn) {
  const int bias = (1 << (ebits - 1)) - 1;
  const uint32_t sign = std::signbit(f) ? 1u << (ebits + mbits) : 0u;
  const uint32_t exp_all = (1u << ebits) - 1;
  if (std::isnan(f)) return sign | (exp_all << mbits) | (fn ? (1u << mbits) - 1 : 1u << (mbits - 1));
  const uint32_t max_code = fn ? (exp_all << mbits) | ((1u << mbits) - 2) : ((exp_all - 1) << mbits) | ((1u << mbits) - 1);
  const uint32_t inf_code = fn ? max_code : exp_all << mbits;
  double a = std::fabs(double(f));
  if (std::isinf(a)) return sign | inf_code;
  if (a == 0) return sign;
  int e;
  std::frexp(a, &e);
  int exp = e - 1;
  uint32_t code;
  if (exp < 1 - bias) {
    code = uint32_t(std::nearbyint(std::ldexp(a, bias - 1 + mbits)));  // subnormal quanta
  } else {
    double q = std::nearbyint(std::ldexp(a, mbits - exp));
    if (q >= double(2u << mbits)) {
      q /= 2;
      ++exp;
    }
    if (uint32_t(exp + bias) > (fn ? exp_all : exp_all - 1)) return sign | inf_code;
    code = (uint32_t(exp + bias) << mbits) | (uint32_t(q) - (1u << mbits));
  }
  return sign | (code > max_code ? inf_code : code);
}

float decode_minifloat(uint32_t v, int ebits, int mbits, bool fn) {
  const int bias = (1 << (ebits - 1)) - 1;
  const uint32_t exp_all = (1u << ebits) - 1;
  bool neg = (v >> (ebits + mbits)) & 1u;
  uint32_t ex = (v >> mbits) & exp_all, man = v & ((1u << mbits) - 1);
  float r;
  if (fn && ex == exp_all && man == (1u << mbits) - 1) {
    r = NAN;
  } else if (!fn && ex == exp_all) {
    r = man ? NAN : INFINITY;
  } else if (ex == 0) {
    r = float(std::ldexp(double(man), 1 - bias - mbits));
  } else {
    r = float(std::ldexp(double(man | (1u << mbits)), int(ex) - bias - mbits));
  }
  return neg ? -r : r;
}

template <typename T>
void ints_to_f32(const void* src, float* dst, int64_t n) {
  const T* s = static_cast<const T*>(src);
  for (int64_t i = 0; i < n; ++i) dst[i] = float(s[i]);
}

template <typename T>
void f32_to_ints(const float* src, void* dst, int64_t n) {
  T* d = static_cast<T*>(dst);
  for (int64_t i = 0; i < n; ++i) d[i] = T(src[i]);  // truncation toward zero, as torch
}

}  // namespace

size_t dtype_size(DType t) { return info(t).size; }

size_t dtype_bytes(DType t, int64_t n) {
  if (t == DType::Q8_0) {
    DK_CHECK(n % kQ8_0Block == 0, "Q8_0 tensors need a multiple of 32 elements, got ", n);
    return size_t(n / kQ8_0Block * kQ8_0BlockBytes);
  }
  return size_t(n) * info(t).size;
}

bool is_floating(DType t) { return info(t).floating; }
const char* dtype_name(DType t) { return info(t).name; }

std::optional<DType> dtype_from_name(std::string_view name) {
  for (const Info& i : kInfo)
    if (name == i.name) return i.type;
  return std::nullopt;
}

float f16_to_f32(uint16_t h) { return decode_minifloat(h, 5, 10, false); }
uint16_t f32_to_f16(float f) { return uint16_t(encode_minifloat(f, 5, 10, false)); }
float fp8_e4m3_to_f32(uint8_t v) { return decode_minifloat(v, 4, 3, true); }
uint8_t f32_to_fp8_e4m3(float f) { return uint8_t(encode_minifloat(f, 4, 3, true)); }
float fp8_e5m2_to_f32(uint8_t v) { return decode_minifloat(v, 5, 2, false); }
uint8_t f32_to_fp8_e5m2(float f) { return uint8_t(encode_minifloat(f, 5, 2, false)); }

void to_f32(DType t, const void* src, float* dst, int64_t n) {
  switch (t) {
    case DType::F32: std::memcpy(dst, src, size_t(n) * 4); return;
    case DType::F64: {
      const double* s = static_cast<const double*>(src);
      for (int64_t i = 0; i < n; ++i) dst[i] = float(s[i]);
      return;
    }
    case DType::BF16: {
      const uint16_t* s = static_cast<const uint16_t*>(src);
      for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_f32(s[i]);
      return;
    }
    case DType::F16: {
      // A table of all 65536 halves turns the conversion into a load.
      static const std::vector<float> table = [] {
        std::vector<float> v(65536);
        for (uint32_t i = 0; i < 65536; ++i) v[i] = f16_to_f32(uint16_t(i));
        return v;
      }();
      const uint16_t* s = static_cast<const uint16_t*>(src);
      for (int64_t i = 0; i < n; ++i) dst[i] = table[s[i]];
      return;
    }
    case DType::F8_E4M3:
    case DType::F8_E5M2: {
      float table[256];
      for (int i = 0; i < 256; ++i) table[i] = t == DType::F8_E4M3 ? fp8_e4m3_to_f32(uint8_t(i)) : fp8_e5m2_to_f32(uint8_t(i));
      const uint8_t* s = static_cast<const uint8_t*>(src);
      for (int64_t i = 0; i < n; ++i) dst[i] = table[s[i]];
      return;
    }
    case DType::Q8_0: {
      DK_CHECK(n % kQ8_0Block == 0, "Q8_0 conversion needs a multiple of 32 elements, got ", n);
      const uint8_t* s = static_cast<const uint8_t*>(src);
      for (int64_t b = 0; b < n / kQ8_0Block; ++b, s += kQ8_0BlockBytes) {
        uint16_t d;
        std::memcpy(&d, s, 2);
        float scale = f16_to_f32(d);
        const int8_t* q = reinterpret_cast<const int8_t*>(s + 2);
        for (int i = 0; i < kQ8_0Block; ++i) dst[b * kQ8_0Block + i] = scale * float(q[i]);
      }
      return;
    }
    case DType::I8: return ints_to_f32<int8_t>(src, dst, n);
    case DType::U8: return ints_to_f32<uint8_t>(src, dst, n);
    case DType::BOOL: return ints_to_f32<uint8_t>(src, dst, n);
    case DType::I16: return ints_to_f32<int16_t>(src, dst, n);
    case DType::I32: return ints_to_f32<int32_t>(src, dst, n);
    case DType::I64: return ints_to_f32<int64_t>(src, dst, n);
  }
}

void from_f32(const float* src, DType t, void* dst, int64_t n) {
  switch (t) {
    case DType::F32: std::memcpy(dst, src, size_t(n) * 4); return;
    case DType::F64: {
      double* d = static_cast<double*>(dst);
      for (int64_t i = 0; i < n; ++i) d[i] = src[i];
      return;
    }
    case DType::BF16: {
      uint16_t* d = static_cast<uint16_t*>(dst);
      for (int64_t i = 0; i < n; ++i) d[i] = f32_to_bf16(src[i]);
      return;
    }
    case DType::F16: {
      uint16_t* d = static_cast<uint16_t*>(dst);
      for (int64_t i = 0; i < n; ++i) d[i] = f32_to_f16(src[i]);
      return;
    }
    case DType::F8_E4M3:
    case DType::F8_E5M2: {
      uint8_t* d = static_cast<uint8_t*>(dst);
      for (int64_t i = 0; i < n; ++i) d[i] = t == DType::F8_E4M3 ? f32_to_fp8_e4m3(src[i]) : f32_to_fp8_e5m2(src[i]);
      return;
    }
    case DType::BOOL: {
      uint8_t* d = static_cast<uint8_t*>(dst);
      for (int64_t i = 0; i < n; ++i) d[i] = src[i] != 0.0f;
      return;
    }
    case DType::I8: return f32_to_ints<int8_t>(src, dst, n);
    case DType::U8: return f32_to_ints<uint8_t>(src, dst, n);
    case DType::I16: return f32_to_ints<int16_t>(src, dst, n);
    case DType::I32: return f32_to_ints<int32_t>(src, dst, n);
    case DType::I64: return f32_to_ints<int64_t>(src, dst, n);
    case DType::Q8_0: fail("conversion to Q8_0 is not supported");
  }
}

}  // namespace ditkit
