// Device-side helpers of the CUDA kernels: dtype loads/stores and reductions.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>

#include "core/cuda/kernels.h"

namespace ditkit::cuda {

// ---- element access by runtime dtype --------------------------------------------------
// The dtype is uniform across a launch, so the switch costs a predictable branch; one kernel
// then serves every dtype combination and compile time stays small.
__device__ __forceinline__ float load(const void* base, int64_t i, DType t) {
  switch (t) {
    case DType::F32: return static_cast<const float*>(base)[i];
    case DType::F16: return __half2float(static_cast<const __half*>(base)[i]);
    case DType::BF16: return __bfloat162float(static_cast<const __nv_bfloat16*>(base)[i]);
    case DType::F64: return float(static_cast<const double*>(base)[i]);
    case DType::F8_E4M3: return float(static_cast<const __nv_fp8_e4m3*>(base)[i]);
    case DType::F8_E5M2: return float(static_cast<const __nv_fp8_e5m2*>(base)[i]);
    case DType::I8: return float(static_cast<const int8_t*>(base)[i]);
    case DType::U8:
    case DType::BOOL: return float(static_cast<const uint8_t*>(base)[i]);
    case DType::I16: return float(static_cast<const int16_t*>(base)[i]);
    case DType::I32: return float(static_cast<const int32_t*>(base)[i]);
    case DType::I64: return float(static_cast<const int64_t*>(base)[i]);
    case DType::Q8_0: {
      // Blocks of 34 bytes: an f16 scale, then 32 int8 values; i indexes the values.
      const uint8_t* block = static_cast<const uint8_t*>(base) + (i / kQ8_0Block) * kQ8_0BlockBytes;
      float scale = __half2float(*reinterpret_cast<const __half*>(block));
      return scale * float(reinterpret_cast<const int8_t*>(block + 2)[i % kQ8_0Block]);
    }
  }
  return 0.0f;
}

__device__ __forceinline__ void store(void* base, int64_t i, DType t, float v) {
  switch (t) {
    case DType::F32: static_cast<float*>(base)[i] = v; return;
    case DType::F16: static_cast<__half*>(base)[i] = __float2half_rn(v); return;
    case DType::BF16: static_cast<__nv_bfloat16*>(base)[i] = __float2bfloat16_rn(v); return;
    case DType::F64: static_cast<double*>(base)[i] = v; return;
    // Same overflow rules as the CPU: e4m3 saturates to +-448, e5m2 overflows to inf.
    case DType::F8_E4M3:
      static_cast<__nv_fp8_storage_t*>(base)[i] = __nv_cvt_float_to_fp8(v, __NV_SATFINITE, __NV_E4M3);
      return;
    case DType::F8_E5M2:
      static_cast<__nv_fp8_storage_t*>(base)[i] = __nv_cvt_float_to_fp8(v, __NV_NOSAT, __NV_E5M2);
      return;
    case DType::I8: static_cast<int8_t*>(base)[i] = int8_t(v); return;
    case DType::U8: static_cast<uint8_t*>(base)[i] = uint8_t(v); return;
    case DType::BOOL: static_cast<uint8_t*>(base)[i] = v != 0.0f; return;
    case DType::I16: static_cast<int16_t*>(base)[i] = int16_t(v); return;
    case DType::I32: static_cast<int32_t*>(base)[i] = int32_t(v); return;
    case DType::I64: static_cast<int64_t*>(base)[i] = int64_t(v); return;
    default: return;
  }
}

// Integer reads for ids and integer-to-integer copies (exact beyond 2^24).
__device__ __forceinline__ int64_t load_int(const void* base, int64_t i, DType t) {
  switch (t) {
    case DType::I8: return static_cast<const int8_t*>(base)[i];
    case DType::U8:
    case DType::BOOL: return static_cast<const uint8_t*>(base)[i];
    case DType::I16: return static_cast<const int16_t*>(base)[i];
    case DType::I32: return static_cast<const int32_t*>(base)[i];
    case DType::I64: return static_cast<const int64_t*>(base)[i];
    default: return int64_t(load(base, i, t));
  }
}

__device__ __forceinline__ void store_int(void* base, int64_t i, DType t, int64_t v) {
  switch (t) {
    case DType::I8: static_cast<int8_t*>(base)[i] = int8_t(v); return;
    case DType::U8: static_cast<uint8_t*>(base)[i] = uint8_t(v); return;
    case DType::BOOL: static_cast<uint8_t*>(base)[i] = v != 0; return;
    case DType::I16: static_cast<int16_t*>(base)[i] = int16_t(v); return;
    case DType::I32: static_cast<int32_t*>(base)[i] = int32_t(v); return;
    case DType::I64: static_cast<int64_t*>(base)[i] = v; return;
    default: store(base, i, t, float(v));
  }
}

// ---- reductions -----------------------------------------------------------------------
enum class Combine { Sum, Max, Min };

__device__ __forceinline__ float combine(float a, float b, Combine c) {
  if (c == Combine::Sum) return a + b;
  if (isnan(a) || isnan(b)) return a + b;  // NaN propagates, as in torch.amax/amin
  return c == Combine::Max ? fmaxf(a, b) : fminf(a, b);
}

__device__ __forceinline__ float warp_reduce(float v, Combine c) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = combine(v, __shfl_xor_sync(0xffffffffu, v, o), c);
  return v;
}

// Reduces v over the block (blockDim.x a multiple of 32, at most 1024); every thread gets
// the result. `shared` holds 32 floats.
__device__ __forceinline__ float block_reduce(float v, Combine c, float* shared) {
  int lane = threadIdx.x % 32, warp = threadIdx.x / 32, nwarps = blockDim.x / 32;
  v = warp_reduce(v, c);
  __syncthreads();  // shared may still be read from a previous call
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  float identity = c == Combine::Sum ? 0.0f : c == Combine::Max ? -INFINITY : INFINITY;
  v = lane < nwarps ? shared[lane] : identity;
  return warp_reduce(v, c);
}

}  // namespace ditkit::cuda
