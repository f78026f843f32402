// Dense attention on CUDA: a tiled flash-attention kernel with f32 math on the CUDA cores.
// One block of 256 threads owns 32 queries of one (batch, head); key/value tiles of 32 rows
// are staged in shared memory (converted to f32 from any input dtype and stride), and an
// online softmax keeps only each row's running max and sum. Thread t works on query row
// t / 8 and head_dim columns t % 8 + 8m, so the 8 threads of a row are neighbouring lanes
// and reduce with width-8 shuffles.
#include <cfloat>
#include <cmath>

#include "attention/dense_cuda.h"
#include "core/cuda/common.cuh"

namespace ditkit::attention {
namespace {

using cuda::load;
using cuda::store;

constexpr int kTile = 32;                     // queries per block and keys per step
constexpr int kRowThreads = 8;                // threads sharing one query row
constexpr int kThreads = kTile * kRowThreads;  // 256
constexpr int kMaxCols = int(kCudaMaxHeadDim) / kRowThreads;
constexpr int kScoresPerThread = kTile / kRowThreads;

// Stages rows [first, first + kTile) of an operand for (b, h) as f32 rows of `pitch` floats;
// rows at or past `rows` are zero.
__device__ void stage_rows(float* dst, int pitch, const DenseOperand& x, int64_t b, int64_t h, int64_t first,
                           int64_t rows, int D) {
  for (int idx = threadIdx.x; idx < kTile * D; idx += kThreads) {
    int r = idx / D, d = idx % D;
    int64_t l = first + r;
    dst[r * pitch + d] = l < rows ? load(x.data, b * x.sb + l * x.sl + h * x.sh + d * x.sd, x.dtype) : 0.0f;
  }
}

__device__ __forceinline__ float row_reduce_max(float v) {
  for (int w = kRowThreads / 2; w > 0; w /= 2) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, w, kRowThreads));
  return v;
}

__device__ __forceinline__ float row_reduce_sum(float v) {
  for (int w = kRowThreads / 2; w > 0; w /= 2) v += __shfl_xor_sync(0xffffffffu, v, w, kRowThreads);
  return v;
}

__global__ void __launch_bounds__(kThreads) dense_attention_kernel(DenseArgs a) {
  extern __shared__ float smem[];
  const int D = int(a.D), pitch = D + 1;  // +1: rows read by neighbouring lanes fall in different banks
  float* qs = smem;                       // [kTile][pitch], pre-scaled by scale_log2
  float* ks = qs + kTile * pitch;         // [kTile][pitch]
  float* vs = ks + kTile * pitch;         // [kTile][pitch]
  float* ps = vs + kTile * pitch;         // [kTile][kTile + 1] probabilities of the tile

  const int64_t bh = blockIdx.y, b = bh / a.H, h = bh % a.H, q0 = int64_t(blockIdx.x) * kTile;
  const int row = threadIdx.x / kRowThreads, lane = threadIdx.x % kRowThreads;

  stage_rows(qs, pitch, a.q, b, h, q0, a.Lq, D);
  __syncthreads();
  for (int idx = threadIdx.x; idx < kTile * D; idx += kThreads) qs[(idx / D) * pitch + idx % D] *= a.scale_log2;

  float o[kMaxCols];
#pragma unroll
  for (int m = 0; m < kMaxCols; ++m) o[m] = 0.0f;
  float row_max = -FLT_MAX, row_sum = 0.0f;  // finite start: the first alpha is exp2(-huge) = 0

  for (int64_t k0 = 0; k0 < a.keys; k0 += kTile) {
    __syncthreads();  // the previous tile's ks/vs/ps are no longer read
    stage_rows(ks, pitch, a.k, b, h, k0, a.keys, D);
    stage_rows(vs, pitch, a.v, b, h, k0, a.keys, D);
    __syncthreads();

    // Scores of this row against keys lane + 8 r (base 2, scale already in q).
    float s[kScoresPerThread];
    float tile_max = -FLT_MAX;
#pragma unroll
    for (int r = 0; r < kScoresPerThread; ++r) {
      const int j = lane + kRowThreads * r;
      float dot = 0.0f;
      for (int d = 0; d < D; ++d) dot += qs[row * pitch + d] * ks[j * pitch + d];
      s[r] = k0 + j < a.keys ? dot : -INFINITY;
      tile_max = fmaxf(tile_max, s[r]);
    }
    const float new_max = fmaxf(row_max, row_reduce_max(tile_max));
    const float alpha = exp2f(row_max - new_max);
    float sum = 0.0f;
#pragma unroll
    for (int r = 0; r < kScoresPerThread; ++r) {
      const float p = exp2f(s[r] - new_max);  // 0 for masked keys
      ps[row * (kTile + 1) + lane + kRowThreads * r] = p;
      sum += p;
    }
    row_sum = row_sum * alpha + row_reduce_sum(sum);
    row_max = new_max;
    __syncwarp();  // a row's probabilities come from its own 8 lanes

#pragma unroll
    for (int m = 0; m < kMaxCols; ++m) {
      const int d = lane + kRowThreads * m;
      if (d < D) {
        float acc = o[m] * alpha;
        for (int j = 0; j < kTile; ++j) acc += ps[row * (kTile + 1) + j] * vs[j * pitch + d];
        o[m] = acc;
      }
    }
  }

  const int64_t q = q0 + row;
  if (q >= a.Lq) return;
  const float inv = 1.0f / row_sum;
  const int64_t base = ((b * a.Lq + q) * a.H + h) * a.D;
#pragma unroll
  for (int m = 0; m < kMaxCols; ++m) {
    const int d = lane + kRowThreads * m;
    if (d < D) store(a.out, base + d, a.out_dtype, o[m] * inv);
  }
}

}  // namespace

int64_t dense_attention_smem_bytes(int64_t D) {
  return int64_t(sizeof(float)) * (3 * kTile * (D + 1) + kTile * (kTile + 1));
}

void launch_dense_attention(const DenseArgs& a, cudaStream_t s) {
  const int64_t smem = dense_attention_smem_bytes(a.D);
  DK_CUDA(cudaFuncSetAttribute(dense_attention_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
  dim3 grid(unsigned((a.Lq + kTile - 1) / kTile), unsigned(a.B * a.H));
  dense_attention_kernel<<<grid, kThreads, size_t(smem), s>>>(a);
  cuda::check_launch("dense_attention_kernel");
}

}  // namespace ditkit::attention
