// Row conversion, layouts, GEMM panels and copies shared by the CPU kernels.
#include <cblas.h>
#include <immintrin.h>

#include <cmath>
#include <cstring>

#include "core/cpu/kernels.h"

namespace ditkit::cpu {
namespace {

template <typename T, typename Cvt>
void gather(const void* base, int64_t first, int64_t step, int64_t n, float* dst, Cvt cvt) {
  const T* p = static_cast<const T*>(base) + first;
  if (step == 1) {
    for (int64_t i = 0; i < n; ++i) dst[i] = cvt(p[i]);
  } else if (step == 0) {
    std::fill(dst, dst + n, cvt(p[0]));
  } else {
    for (int64_t i = 0; i < n; ++i) dst[i] = cvt(p[i * step]);
  }
}

template <typename T, typename Cvt>
void scatter(const float* src, void* base, int64_t first, int64_t step, int64_t n, Cvt cvt) {
  T* p = static_cast<T*>(base) + first;
  if (step == 1) {
    for (int64_t i = 0; i < n; ++i) p[i] = cvt(src[i]);
  } else {
    for (int64_t i = 0; i < n; ++i) p[i * step] = cvt(src[i]);
  }
}

template <typename T>
float as_float(T v) {
  return float(v);
}

// fp8 decoding is a table lookup; the tables are built once from the reference decoders.
const float* fp8_table(DType t) {
  static const auto tables = [] {
    std::array<std::array<float, 256>, 2> tb;
    for (int i = 0; i < 256; ++i) {
      tb[0][i] = fp8_e4m3_to_f32(uint8_t(i));
      tb[1][i] = fp8_e5m2_to_f32(uint8_t(i));
    }
    return tb;
  }();
  return tables[t == DType::F8_E4M3 ? 0 : 1].data();
}

void load_f16(const uint16_t* p, int64_t step, int64_t n, float* dst) {
  if (step != 1) {
    gather<uint16_t>(p, 0, step, n, dst, [](uint16_t h) { return _cvtsh_ss(h); });
    return;
  }
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + i))));
  for (; i < n; ++i) dst[i] = _cvtsh_ss(p[i]);
}

void store_f16(const float* src, uint16_t* p, int64_t step, int64_t n) {
  constexpr int kRound = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;
  if (step != 1) {
    for (int64_t i = 0; i < n; ++i) p[i * step] = _cvtss_sh(src[i], kRound);
    return;
  }
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm_storeu_si128(reinterpret_cast<__m128i*>(p + i), _mm256_cvtps_ph(_mm256_loadu_ps(src + i), kRound));
  for (; i < n; ++i) p[i] = _cvtss_sh(src[i], kRound);
}

}  // namespace

void load_f32(DType t, const void* base, int64_t first, int64_t step, int64_t n, float* dst) {
  switch (t) {
    case DType::F32: {
      const float* p = static_cast<const float*>(base) + first;
      if (step == 1) {
        std::memcpy(dst, p, size_t(n) * 4);
      } else {
        gather<float>(base, first, step, n, dst, [](float v) { return v; });
      }
      return;
    }
    case DType::F64: return gather<double>(base, first, step, n, dst, as_float<double>);
    case DType::BF16: return gather<uint16_t>(base, first, step, n, dst, bf16_to_f32);
    case DType::F16:
      if (step == 0) return std::fill(dst, dst + n, _cvtsh_ss(static_cast<const uint16_t*>(base)[first]));
      return load_f16(static_cast<const uint16_t*>(base) + first, step, n, dst);
    case DType::F8_E4M3:
    case DType::F8_E5M2: {
      const float* table = fp8_table(t);
      return gather<uint8_t>(base, first, step, n, dst, [table](uint8_t v) { return table[v]; });
    }
    case DType::Q8_0:
      DK_CHECK(step == 1 && first % kQ8_0Block == 0 && n % kQ8_0Block == 0,
               "Q8_0 data can only be read in whole 32-element blocks (row of ", n, " at element ", first, ")");
      return to_f32(t, static_cast<const uint8_t*>(base) + first / kQ8_0Block * kQ8_0BlockBytes, dst, n);
    case DType::I8: return gather<int8_t>(base, first, step, n, dst, as_float<int8_t>);
    case DType::U8:
    case DType::BOOL: return gather<uint8_t>(base, first, step, n, dst, as_float<uint8_t>);
    case DType::I16: return gather<int16_t>(base, first, step, n, dst, as_float<int16_t>);
    case DType::I32: return gather<int32_t>(base, first, step, n, dst, as_float<int32_t>);
    case DType::I64: return gather<int64_t>(base, first, step, n, dst, as_float<int64_t>);
  }
}

void store_f32(const float* src, DType t, void* base, int64_t first, int64_t step, int64_t n) {
  switch (t) {
    case DType::F32: return scatter<float>(src, base, first, step, n, [](float v) { return v; });
    case DType::F64: return scatter<double>(src, base, first, step, n, [](float v) { return double(v); });
    case DType::BF16: return scatter<uint16_t>(src, base, first, step, n, f32_to_bf16);
    case DType::F16: return store_f16(src, static_cast<uint16_t*>(base) + first, step, n);
    case DType::F8_E4M3: return scatter<uint8_t>(src, base, first, step, n, f32_to_fp8_e4m3);
    case DType::F8_E5M2: return scatter<uint8_t>(src, base, first, step, n, f32_to_fp8_e5m2);
    case DType::BOOL: return scatter<uint8_t>(src, base, first, step, n, [](float v) { return uint8_t(v != 0.0f); });
    // Integers truncate toward zero, as torch's casts do.
    case DType::I8: return scatter<int8_t>(src, base, first, step, n, [](float v) { return int8_t(v); });
    case DType::U8: return scatter<uint8_t>(src, base, first, step, n, [](float v) { return uint8_t(v); });
    case DType::I16: return scatter<int16_t>(src, base, first, step, n, [](float v) { return int16_t(v); });
    case DType::I32: return scatter<int32_t>(src, base, first, step, n, [](float v) { return int32_t(v); });
    case DType::I64: return scatter<int64_t>(src, base, first, step, n, [](float v) { return int64_t(v); });
    case DType::Q8_0: fail("cannot write Q8_0 data (conversion to Q8_0 is not supported)");
  }
}

Layout coalesce(const Shape& shape, const std::vector<Shape>& strides) {
  Layout l;
  l.strides.resize(strides.size());
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == 1) continue;
    bool merge = !l.shape.empty();
    for (size_t k = 0; merge && k < strides.size(); ++k) merge = l.strides[k].back() == strides[k][d] * shape[d];
    if (merge) {
      l.shape.back() *= shape[d];
      for (size_t k = 0; k < strides.size(); ++k) l.strides[k].back() = strides[k][d];
    } else {
      l.shape.push_back(shape[d]);
      for (size_t k = 0; k < strides.size(); ++k) l.strides[k].push_back(strides[k][d]);
    }
  }
  if (l.shape.empty()) {
    l.shape.push_back(1);
    for (Shape& s : l.strides) s.push_back(1);
  }
  return l;
}

// Same-dtype strided copy moves raw elements, so integers and f64 pass unchanged.
template <typename T>
void copy_elements(Tensor& dst, const Tensor& src) {
  for_each_chunk(dst.shape(), {dst.strides(), src.strides()}, [&](const int64_t* offs, const int64_t* steps, int64_t n) {
    T* d = dst.data<T>() + offs[0];
    const T* s = src.data<T>() + offs[1];
    if (steps[0] == 1 && steps[1] == 1) {
      std::memcpy(d, s, size_t(n) * sizeof(T));
    } else {
      for (int64_t i = 0; i < n; ++i) d[i * steps[0]] = s[i * steps[1]];
    }
  });
}

void copy_(Tensor& dst, const Tensor& src) {
  if (dst.numel() == 0) return;
  if (src.dtype() == dst.dtype() && src.is_contiguous() && dst.is_contiguous()) {
    const size_t bytes = dst.nbytes(), piece = size_t(1) << 20;
    char* d = static_cast<char*>(dst.raw());
    const char* s = static_cast<const char*>(src.raw());
    parallel_for(0, int64_t((bytes + piece - 1) / piece), 1, [&](int64_t b, int64_t e) {
      const size_t lo = size_t(b) * piece, hi = std::min(bytes, size_t(e) * piece);
      std::memcpy(d + lo, s + lo, hi - lo);
    });
    return;
  }
  if (src.dtype() == dst.dtype()) {
    switch (dtype_size(src.dtype())) {
      case 1: return copy_elements<uint8_t>(dst, src);
      case 2: return copy_elements<uint16_t>(dst, src);
      case 4: return copy_elements<uint32_t>(dst, src);
      case 8: return copy_elements<uint64_t>(dst, src);
      default: fail("copy: strided ", src.str(), " cannot be copied");
    }
  }
  if (src.dtype() == DType::Q8_0) {
    // Q8_0 has no views, so src is contiguous: read whole blocks around each chunk.
    for_each_chunk(dst.shape(), {dst.strides(), contiguous_strides(dst.shape())},
                   [&](const int64_t* offs, const int64_t* steps, int64_t n) {
                     const int64_t first = offs[1] / kQ8_0Block * kQ8_0Block, skip = offs[1] - first;
                     const int64_t len = (skip + n + kQ8_0Block - 1) / kQ8_0Block * kQ8_0Block;
                     std::vector<float> buf(static_cast<size_t>(len));
                     load_f32(DType::Q8_0, src.raw(), first, 1, len, buf.data());
                     store_f32(buf.data() + skip, dst.dtype(), dst.raw(), offs[0], steps[0], n);
                   });
    return;
  }
  elementwise<1>(dst, {src}, [](const float* const* in, float* out, int64_t n) { std::copy(in[0], in[0] + n, out); });
}

void fill_(Tensor& dst, float value) {
  elementwise<0>(dst, {}, [value](const float* const*, float* out, int64_t n) { std::fill(out, out + n, value); });
}

Tensor contiguous_f32(const Tensor& x) {
  if (x.dtype() == DType::F32 && x.is_contiguous()) return x;
  Tensor out = Tensor::empty(x.shape(), DType::F32);
  copy_(out, x);
  return out;
}

namespace {
__m256 exp8(__m256 x) {
  const __m256 lo = _mm256_set1_ps(-87.3f), hi = _mm256_set1_ps(88.7228f);  // ~ln(FLT_MIN), ~ln(FLT_MAX)
  const __m256 xc = _mm256_min_ps(_mm256_max_ps(x, lo), hi);
  const __m256 fx = _mm256_floor_ps(_mm256_fmadd_ps(xc, _mm256_set1_ps(1.44269504088896341f), _mm256_set1_ps(0.5f)));
  __m256 r = _mm256_fnmadd_ps(fx, _mm256_set1_ps(0.693359375f), xc);
  r = _mm256_fnmadd_ps(fx, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.9875691500e-4f);
  for (float c : {1.3981999507e-3f, 8.3334519073e-3f, 4.1665795894e-2f, 1.6666665459e-1f, 5.0000001201e-1f})
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(c));
  const __m256 y = _mm256_add_ps(_mm256_fmadd_ps(p, _mm256_mul_ps(r, r), r), _mm256_set1_ps(1.0f));
  // 2^fx as 2^(fx - 1) * 2 keeps the exponent field in range for fx = 128.
  const __m256i bits = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(fx), _mm256_set1_epi32(126)), 23);
  __m256 e = _mm256_mul_ps(_mm256_mul_ps(y, _mm256_castsi256_ps(bits)), _mm256_set1_ps(2.0f));
  e = _mm256_blendv_ps(e, _mm256_setzero_ps(), _mm256_cmp_ps(x, lo, _CMP_LT_OQ));
  e = _mm256_blendv_ps(e, _mm256_set1_ps(INFINITY), _mm256_cmp_ps(x, hi, _CMP_GT_OQ));
  return _mm256_blendv_ps(e, x, _mm256_cmp_ps(x, x, _CMP_UNORD_Q));
}
}  // namespace

void exp_f32(const float* x, float* y, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, exp8(_mm256_loadu_ps(x + i)));
  if (i < n) {
    float tail[8] = {};
    std::copy(x + i, x + n, tail);
    _mm256_storeu_ps(tail, exp8(_mm256_loadu_ps(tail)));
    std::copy(tail, tail + (n - i), y + i);
  }
}

float max_f32(const float* v, int64_t n) {
  float m = v[0];
  int64_t i = 0;
  if (n >= 8) {
    __m256 acc = _mm256_loadu_ps(v);
    for (i = 8; i + 8 <= n; i += 8) acc = _mm256_max_ps(acc, _mm256_loadu_ps(v + i));
    float lanes[8];
    _mm256_storeu_ps(lanes, acc);
    m = *std::max_element(lanes, lanes + 8);
  }
  for (; i < n; ++i) m = std::max(m, v[i]);
  return m;
}

double sum_f64(const float* v, int64_t n) {
  double acc[8] = {};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j) acc[j] += double(v[i + j]);
  for (; i < n; ++i) acc[0] += double(v[i]);
  return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

double sum_sq_dev_f64(const float* v, int64_t n, double mean) {
  double acc[8] = {};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j) {
      const double d = double(v[i + j]) - mean;
      acc[j] += d * d;
    }
  for (; i < n; ++i) acc[0] += (double(v[i]) - mean) * (double(v[i]) - mean);
  return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

std::vector<float> vector_f32(const Tensor& t) {
  if (!t.defined()) return {};
  Tensor c = t.contiguous();
  std::vector<float> v(static_cast<size_t>(c.numel()));
  load_f32(c.dtype(), c.raw(), 0, 1, c.numel(), v.data());
  return v;
}

bool is_blas_matrix(const Tensor& w) {
  const int64_t rows = w.dim(0), k = w.dim(1);
  return w.dtype() == DType::F32 && (w.strides()[1] == 1 || k == 1) && (w.strides()[0] >= k || rows == 1);
}

const float* weight_rows_f32(const Tensor& w, int64_t r0, int64_t n, std::vector<float>& scratch, int64_t* ld) {
  const int64_t k = w.dim(1);
  if (is_blas_matrix(w)) {
    *ld = std::max<int64_t>(w.strides()[0], k);
    return w.data<float>() + r0 * w.strides()[0];
  }
  DK_CHECK(w.dtype() != DType::Q8_0 || k % kQ8_0Block == 0, "Q8_0 weight ", w.str(),
           ": rows must hold whole 32-element blocks");
  scratch.resize(size_t(n * k));
  parallel_for(0, n, std::max<int64_t>(1, 16384 / std::max<int64_t>(k, 1)), [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r)
      load_f32(w.dtype(), w.raw(), (r0 + r) * w.strides()[0], w.strides()[1], k, scratch.data() + r * k);
  });
  *ld = k;
  return scratch.data();
}

void sgemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
           const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  if (m == 0 || n == 0) return;
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, blasint(m), blasint(n),
              blasint(k), alpha, a, blasint(std::max<int64_t>(lda, 1)), b, blasint(std::max<int64_t>(ldb, 1)), beta, c,
              blasint(std::max<int64_t>(ldc, 1)));
}

}  // namespace ditkit::cpu
