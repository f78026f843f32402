// Block-sparse flash attention on CUDA: one kernel for every sparse kind. A CTA owns 64 rows of
// one query block for one (batch, head) and walks that block's CSR row of the schedule, each key
// block in steps of 64 keys (one mask word per row and step). Rows and keys are gathered through
// the schedule's kernel order (padding slots load as zeros and are masked), the online softmax
// runs in base 2 with f32 state, and output rows go to their canonical positions.
//
// Two kernels share that walk:
//  - F16/BF16 inputs: tensor cores (mma.sync m16n8k16, f32 accumulate), 4 warps of 16 rows, K and
//    V tiles copied with cp.async so that V lands while Q K^T runs and the next K while P V runs
//    (the FlashAttention-2 schedule).
//  - F32 (or mixed) inputs: f32 math on the CUDA cores (tf32 would miss 1e-5), 8 lanes per row.
// Fragment layouts below follow the PTX ISA sections "Matrix Fragments for mma.m16n8k16 with
// floating point type" and "Warp-level matrix load instruction: ldmatrix"; in a warp,
// g = lane / 4 ("groupID") and t = lane % 4 ("threadID_in_group").
#include <cfloat>
#include <cmath>
#include <cstdint>

#include "attention/block_sparse_cuda.h"
#include "core/cuda/common.cuh"

namespace ditkit::attention {
namespace {

using cuda::load;
using cuda::store;

constexpr int kRows = int(kCudaSparseRows);
constexpr int kKeys = int(kCudaSparseKeys);
static_assert(kKeys == 64, "a step of keys is one 64-bit mask word");
static_assert(kRows % 16 == 0, "the tensor-core path gives each warp 16 rows");

__device__ __forceinline__ int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

// Canonical token at a kernel position (-1: padding slot).
__device__ __forceinline__ int64_t token_at(const int64_t* order, int64_t pos) { return order ? order[pos] : pos; }

// ---- the walk over a query block's schedule ----------------------------------------------------

struct Step {
  int64_t key0 = 0;   // kernel position of the step's first key
  int keys = 0;       // keys in the step (< 64 at the end of a key block or of the sequence)
  int word = 0;       // the step's word within a mask row
  int64_t mask = -1;  // first mask word of the entry; -1 = FULL
};

// Every 64-key step of every key block on a query block's CSR row, in order. All threads of a
// CTA walk in lockstep, so every branch on a step is uniform.
class StepWalker {
 public:
  __device__ StepWalker(const DeviceScheduleView& s, int64_t qb)
      : cols_(s.cols),
        mask_offset_(s.mask_offset),
        k_block_(s.k_block),
        k_len_(s.k_len),
        entry_(s.row_ptr[qb]),
        end_(s.row_ptr[qb + 1]) {}
  __device__ bool done() const { return entry_ >= end_; }
  __device__ Step step() const {
    Step st;
    st.key0 = key_block_start() + int64_t(chunk_) * kKeys;
    st.keys = int(min64(kKeys, key_block_end() - st.key0));
    st.word = chunk_;
    st.mask = mask_offset_[entry_];
    return st;
  }
  __device__ void next() {
    ++chunk_;
    if (key_block_start() + int64_t(chunk_) * kKeys >= key_block_end()) {
      ++entry_;
      chunk_ = 0;
    }
  }

 private:
  __device__ int64_t key_block_start() const { return int64_t(cols_[entry_]) * k_block_; }
  __device__ int64_t key_block_end() const { return min64(key_block_start() + k_block_, k_len_); }

  const int32_t* cols_;
  const int64_t* mask_offset_;
  int64_t k_block_, k_len_, entry_, end_;
  int chunk_ = 0;
};

// Bit i set when key i of the step is a real token (inside the step, not a padding slot). Every
// lane of the calling warp must call it.
__device__ __forceinline__ uint64_t real_keys(const int64_t* k_order, const Step& st) {
  static_assert(kKeys == 64, "two ballots of 32 lanes cover a step");
  const int lane = threadIdx.x % 32;
  auto real = [&](int i) { return i < st.keys && token_at(k_order, st.key0 + i) >= 0; };
  const uint32_t lo = __ballot_sync(0xffffffffu, real(lane)), hi = __ballot_sync(0xffffffffu, real(lane + 32));
  return uint64_t(lo) | uint64_t(hi) << 32;
}

// Visible keys of the step for query row `row` of the query block: the real keys, and for a
// PARTIAL entry only those its mask row sets.
__device__ __forceinline__ uint64_t visible_keys(const DeviceScheduleView& s, const Step& st, uint64_t real,
                                                 int64_t row) {
  if (st.mask < 0) return real;
  return row < s.q_block ? real & s.bits[st.mask + row * s.mask_words + st.word] : 0;
}

// Online-softmax update of one row for a step's base-2 scores (masked ones -inf): returns the
// factor that rescales the row's accumulators and sets `base` to subtract from the scores. A row
// that has seen no visible key keeps max -inf, and base 0 keeps its probabilities exp2(-inf) = 0.
__device__ __forceinline__ float softmax_rescale(float& row_max, float step_max, float& base) {
  const float new_max = fmaxf(row_max, step_max);
  base = new_max == -INFINITY ? 0.0f : new_max;
  const float alpha = exp2f(row_max - base);
  row_max = new_max;
  return alpha;
}

// The natural-log lse of a row whose base-2 max is `row_max` and sum `row_sum` (-inf: nothing seen).
__device__ __forceinline__ float natural_lse(float row_max, float row_sum) {
  return row_sum > 0.0f ? (row_max + log2f(row_sum)) * 0.69314718055994531f : -INFINITY;
}

// Where a CTA works: query block qb, rows [row0, row0 + rows) of it, at kernel positions from pos0.
struct CtaRows {
  int64_t qb, row0, pos0;
  int rows;
};

__device__ __forceinline__ CtaRows cta_rows(const DeviceScheduleView& s) {
  const int64_t slices = (s.q_block + kRows - 1) / kRows;
  CtaRows c;
  c.qb = blockIdx.x / slices;
  c.row0 = (blockIdx.x % slices) * kRows;
  c.pos0 = c.qb * s.q_block + c.row0;
  c.rows = int(min64(kRows, min64(s.q_block - c.row0, s.q_len - c.pos0)));
  return c;
}

// ---- tensor-core path (F16 / BF16) ------------------------------------------------------------

constexpr int kMmaWarps = kRows / 16;
constexpr int kMmaThreads = kMmaWarps * 32;

template <typename T>
struct Half;

template <>
struct Half<__half> {
  __device__ static uint32_t pack(float lo, float hi) {
    __half2 v = __floats2half2_rn(lo, hi);  // .x (lo) in the low 16 bits: the lower column
    return *reinterpret_cast<uint32_t*>(&v);
  }
  __device__ static void store2(__half* p, float lo, float hi) {
    *reinterpret_cast<__half2*>(p) = __floats2half2_rn(lo, hi);
  }
  // D += A B: A 16x16 row-major, B 16x8 column-major, D 16x8 f32.
  __device__ static void mma(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
};

template <>
struct Half<__nv_bfloat16> {
  __device__ static uint32_t pack(float lo, float hi) {
    __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<uint32_t*>(&v);
  }
  __device__ static void store2(__nv_bfloat16* p, float lo, float hi) {
    *reinterpret_cast<__nv_bfloat162*>(p) = __floats2bfloat162_rn(lo, hi);
  }
  __device__ static void mma(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
};

__device__ __forceinline__ uint32_t smem_addr(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// 16 bytes global -> shared without passing through registers; copy = false writes 16 zero bytes
// (src-size 0: nothing is read).
__device__ __forceinline__ void cp_async_16(void* dst, const void* src, bool copy) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_addr(dst)), "l"(src),
               "r"(copy ? 16 : 0)
               : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
// Waits until at most N of this thread's committed groups are still in flight.
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

// Four 8x8 b16 matrices; lanes 8i..8i+7 give the row addresses of matrix i, and register i of
// lane l receives row l / 4, columns 2 (l % 4) and +1 of matrix i (.trans: row and column swap,
// i.e. rows 2 (l % 4) and +1 of column l / 4).
__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const void* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr(p))
               : "memory");
}
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], const void* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr(p))
               : "memory");
}

// Shared-memory row pitch for head_dim DP: +8 elements (16 bytes) so that the 8 rows one
// ldmatrix matrix reads start in different 16-byte bank groups.
template <int DP>
constexpr int mma_pitch() {
  return DP + 8;
}

// Queues cp.async copies of rows [pos0, pos0 + rows) (kernel positions, through `order`) of one
// operand for (b, h) into a [kRows][pitch] tile; rows past `rows`, padding slots and columns
// past D are zero-filled.
template <typename T, int DP>
__device__ __forceinline__ void load_tile(T* tile, const DenseOperand& x, int64_t b, int64_t h, int D,
                                          const int64_t* order, int64_t pos0, int rows) {
  constexpr int kPieces = DP / 8;  // 16-byte pieces per row
  const T* base = static_cast<const T*>(x.data);
  for (int idx = threadIdx.x; idx < kRows * kPieces; idx += kMmaThreads) {
    const int r = idx / kPieces, c = idx % kPieces;
    const int64_t tok = r < rows ? token_at(order, pos0 + r) : -1;
    const bool real = tok >= 0 && c * 8 < D;
    const T* src = real ? base + b * x.sb + tok * x.sl + h * x.sh + c * 8 : base;
    cp_async_16(tile + r * mma_pitch<DP>() + c * 8, src, real);
  }
}

// DP: head_dim rounded up to the instantiated size (columns past D are zeros in Q, K and V).
template <typename T, int DP>
__global__ void __launch_bounds__(kMmaThreads) block_sparse_mma_kernel(const __grid_constant__ BlockSparseArgs a) {
  static_assert(DP % 16 == 0 && DP <= 256, "head_dim tiles are k16 steps of Q K^T and n16 pairs of P V");
  constexpr int kPitch = mma_pitch<DP>();
  constexpr int kDSteps = DP / 16;     // k16 steps of S = Q K^T
  constexpr int kKeyTiles = kKeys / 8;  // n8 tiles of S (one warp: 16 rows x 64 keys)
  constexpr int kOutTiles = DP / 8;     // n8 tiles of O (one warp: 16 rows x DP)
  static_assert(kKeyTiles % 2 == 0 && kOutTiles % 2 == 0, "tiles are loaded in pairs by ldmatrix.x4");

  extern __shared__ __align__(16) unsigned char smem[];
  T* qs = reinterpret_cast<T*>(smem);  // [kRows][kPitch]
  T* ks = qs + kRows * kPitch;         // [kKeys][kPitch]
  T* vs = ks + kKeys * kPitch;         // [kKeys][kPitch]

  const DeviceScheduleView& s = a.s;
  const CtaRows cta = cta_rows(s);
  const int64_t h = blockIdx.y, b = blockIdx.z;
  const int D = int(a.D);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  // ldmatrix.x4 row-address pattern: lane l addresses row (l % 8) of matrix l / 8.
  const int lrow = lane % 8, lmat = lane / 8;

  StepWalker walk(s, cta.qb);
  load_tile<T, DP>(qs, a.q, b, h, D, s.q_order, cta.pos0, cta.rows);
  if (!walk.done()) {
    const Step first = walk.step();
    load_tile<T, DP>(ks, a.k, b, h, D, s.k_order, first.key0, first.keys);
  }
  cp_async_commit();  // group: Q and the first K

  // Accumulators in the mma C/D layout: o[j][0..1] = row g, columns 8j + 2t, +1; o[j][2..3] =
  // row g + 8, same columns (rows of this warp's 16). Index 0 of m/l is row g, 1 is row g + 8.
  float o[kOutTiles][4];
#pragma unroll
  for (int j = 0; j < kOutTiles; ++j) o[j][0] = o[j][1] = o[j][2] = o[j][3] = 0.0f;
  float row_max[2] = {-INFINITY, -INFINITY}, row_sum[2] = {0.0f, 0.0f};  // row_sum: this lane's columns only

  while (!walk.done()) {
    const Step st = walk.step();
    load_tile<T, DP>(vs, a.v, b, h, D, s.k_order, st.key0, st.keys);
    cp_async_commit();
    cp_async_wait<1>();  // everything but this V: Q and this step's K
    __syncthreads();

    // S = Q K^T for this warp's 16 rows x 64 keys, same C layout as o (columns = keys).
    float sc[kKeyTiles][4];
#pragma unroll
    for (int j = 0; j < kKeyTiles; ++j) sc[j][0] = sc[j][1] = sc[j][2] = sc[j][3] = 0.0f;
#pragma unroll
    for (int ds = 0; ds < kDSteps; ++ds) {
      // A fragment (rows x head_dim): matrices (rows 0-7, d 0-7), (rows 8-15, d 0-7),
      // (rows 0-7, d 8-15), (rows 8-15, d 8-15) are A's four registers, i.e. elements a0-a1
      // (row g, d 2t, +1), a2-a3 (row g + 8), a4-a5 (row g, d 8 + 2t, +1), a6-a7 (row g + 8).
      uint32_t qa[4];
      ldmatrix_x4(qa, qs + (warp * 16 + lrow + 8 * (lmat % 2)) * kPitch + ds * 16 + 8 * (lmat / 2));
#pragma unroll
      for (int jj = 0; jj < kKeyTiles / 2; ++jj) {
        // B = K^T (head_dim x keys, "col": each key's head_dim run contiguous = K's smem rows).
        // Matrices (keys 0-7, d 0-7), (keys 0-7, d 8-15), (keys 8-15, d 0-7), (keys 8-15, d 8-15)
        // give b0, b1 of key tile 2jj and b0, b1 of key tile 2jj + 1: lane gets keys g, d 2t, +1.
        uint32_t kb[4];
        ldmatrix_x4(kb, ks + (16 * jj + lrow + 8 * (lmat / 2)) * kPitch + ds * 16 + 8 * (lmat % 2));
        Half<T>::mma(sc[2 * jj], qa, kb[0], kb[1]);
        Half<T>::mma(sc[2 * jj + 1], qa, kb[2], kb[3]);
      }
    }

    // Mask, then base-2 scores. sc[j][e] is row g + 8 (e / 2), key 8j + 2t + e % 2. FULL steps
    // whose keys are all real skip the mask.
    const uint64_t real = real_keys(s.k_order, st);
    if (st.mask >= 0 || real != ~uint64_t(0)) {
      const int64_t row = cta.row0 + warp * 16 + g;  // row g of the warp, in the query block
      const uint64_t vis[2] = {visible_keys(s, st, real, row), visible_keys(s, st, real, row + 8)};
#pragma unroll
      for (int j = 0; j < kKeyTiles; ++j)
#pragma unroll
        for (int e = 0; e < 4; ++e)
          if (!((vis[e / 2] >> (8 * j + 2 * t + e % 2)) & 1)) sc[j][e] = -INFINITY;
    }
    float step_max[2] = {-INFINITY, -INFINITY};
#pragma unroll
    for (int j = 0; j < kKeyTiles; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        sc[j][e] *= a.scale_log2;  // -inf stays -inf (the scale is positive)
        step_max[e / 2] = fmaxf(step_max[e / 2], sc[j][e]);
      }
    // The 4 lanes of a quad (same g) hold one row's 64 keys.
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      step_max[r] = fmaxf(step_max[r], __shfl_xor_sync(0xffffffffu, step_max[r], 1));
      step_max[r] = fmaxf(step_max[r], __shfl_xor_sync(0xffffffffu, step_max[r], 2));
      float base;
      const float alpha = softmax_rescale(row_max[r], step_max[r], base);
      float sum = 0.0f;
#pragma unroll
      for (int j = 0; j < kKeyTiles; ++j) {
        sc[j][2 * r] = exp2f(sc[j][2 * r] - base);
        sc[j][2 * r + 1] = exp2f(sc[j][2 * r + 1] - base);
        sum += sc[j][2 * r] + sc[j][2 * r + 1];
      }
      row_sum[r] = row_sum[r] * alpha + sum;
#pragma unroll
      for (int j = 0; j < kOutTiles; ++j) {
        o[j][2 * r] *= alpha;
        o[j][2 * r + 1] *= alpha;
      }
    }

    __syncthreads();  // every warp is done with ks: the next K may land there
    walk.next();
    if (!walk.done()) {
      const Step next = walk.step();
      load_tile<T, DP>(ks, a.k, b, h, D, s.k_order, next.key0, next.keys);
    }
    cp_async_commit();   // possibly empty: keeps one group per wait below
    cp_async_wait<1>();  // everything but the next K: this step's V
    __syncthreads();

    // O += P V over 4 k16 steps of keys. P's A fragment is the score accumulator itself: for keys
    // 16kk..16kk+15, a0 = (row g, keys 2t, +1) = sc[2kk][0..1], a1 = row g + 8 = sc[2kk][2..3],
    // a2 = (row g, keys 8 + 2t, +1) = sc[2kk+1][0..1], a3 = sc[2kk+1][2..3].
#pragma unroll
    for (int kk = 0; kk < kKeys / 16; ++kk) {
      const uint32_t pa[4] = {Half<T>::pack(sc[2 * kk][0], sc[2 * kk][1]), Half<T>::pack(sc[2 * kk][2], sc[2 * kk][3]),
                              Half<T>::pack(sc[2 * kk + 1][0], sc[2 * kk + 1][1]),
                              Half<T>::pack(sc[2 * kk + 1][2], sc[2 * kk + 1][3])};
#pragma unroll
      for (int dp = 0; dp < kOutTiles / 2; ++dp) {
        // B = V (keys x head_dim) is stored row-major, so .trans: matrices (keys 0-7, d 0-7),
        // (keys 8-15, d 0-7), (keys 0-7, d 8-15), (keys 8-15, d 8-15) give b0, b1 of head_dim
        // tile 2dp and b0, b1 of tile 2dp + 1: lane gets keys 2t, +1 (+8) of column g.
        uint32_t vb[4];
        ldmatrix_x4_trans(vb, vs + (16 * kk + lrow + 8 * (lmat % 2)) * kPitch + dp * 16 + 8 * (lmat / 2));
        Half<T>::mma(o[2 * dp], pa, vb[0], vb[1]);
        Half<T>::mma(o[2 * dp + 1], pa, vb[2], vb[3]);
      }
    }
    __syncthreads();  // every warp is done with vs: the next V may land there
  }
  cp_async_wait<0>();  // nothing may stay in flight past the end (an empty row still loaded Q)

  T* out = static_cast<T*>(a.out);
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    float sum = row_sum[r];
    sum += __shfl_xor_sync(0xffffffffu, sum, 1);
    sum += __shfl_xor_sync(0xffffffffu, sum, 2);
    const int row = warp * 16 + g + 8 * r;  // row of the CTA
    if (row >= cta.rows) continue;
    const int64_t tok = token_at(s.q_order, cta.pos0 + row);
    if (tok < 0) continue;
    const float inv = sum > 0.0f ? 1.0f / sum : 0.0f;
    T* dst = out + ((b * a.q_tokens + tok) * a.H + h) * a.D;
#pragma unroll
    for (int j = 0; j < kOutTiles; ++j) {
      const int d = 8 * j + 2 * t;  // D is a multiple of 8: d < D implies d + 1 < D
      if (d < D) Half<T>::store2(dst + d, o[j][2 * r] * inv, o[j][2 * r + 1] * inv);
    }
    if (a.lse && t == 0) a.lse[(b * a.H + h) * a.q_tokens + tok] = natural_lse(row_max[r], sum);
  }
}

// ---- f32 path (CUDA cores) --------------------------------------------------------------------

constexpr int kF32RowThreads = 8;                   // neighbouring lanes sharing one query row
constexpr int kF32Threads = kRows * kF32RowThreads;  // 512
constexpr int kF32Cols = int(kCudaMaxHeadDim) / kF32RowThreads;
constexpr int kF32Scores = kKeys / kF32RowThreads;
static_assert(kF32Threads % 32 == 0 && 32 % kF32RowThreads == 0, "a row's lanes sit in one warp");

// Stages rows [pos0, pos0 + rows) (kernel positions, through `order`) of an operand for (b, h) as
// f32 rows of `pitch` floats; rows past `rows` and padding slots are zero.
__device__ void stage_f32(float* dst, int pitch, const DenseOperand& x, int64_t b, int64_t h, int D,
                          const int64_t* order, int64_t pos0, int rows) {
  for (int idx = threadIdx.x; idx < kRows * D; idx += kF32Threads) {
    const int r = idx / D, d = idx % D;
    const int64_t tok = r < rows ? token_at(order, pos0 + r) : -1;
    dst[r * pitch + d] = tok >= 0 ? load(x.data, b * x.sb + tok * x.sl + h * x.sh + d * x.sd, x.dtype) : 0.0f;
  }
}

__global__ void __launch_bounds__(kF32Threads) block_sparse_f32_kernel(const __grid_constant__ BlockSparseArgs a) {
  static_assert(kRows == kKeys, "one staging helper serves query and key tiles");
  extern __shared__ float fsmem[];
  const int D = int(a.D), pitch = D + 1;  // +1: rows read by neighbouring lanes fall in different banks
  float* qs = fsmem;                      // [kRows][pitch]
  float* kvs = qs + kRows * pitch;        // [kKeys][pitch]: K, then V of the step
  float* ps = kvs + kKeys * pitch;        // [kRows][kKeys + 1] probabilities of the step

  const DeviceScheduleView& s = a.s;
  const CtaRows cta = cta_rows(s);
  const int64_t h = blockIdx.y, b = blockIdx.z;
  const int row = threadIdx.x / kF32RowThreads, sub = threadIdx.x % kF32RowThreads;
  auto row_max_of = [](float v) {
    for (int w = kF32RowThreads / 2; w > 0; w /= 2) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, w, kF32RowThreads));
    return v;
  };

  stage_f32(qs, pitch, a.q, b, h, D, s.q_order, cta.pos0, cta.rows);
  float o[kF32Cols];
#pragma unroll
  for (int m = 0; m < kF32Cols; ++m) o[m] = 0.0f;
  float row_max = -INFINITY, row_sum = 0.0f;  // row_sum: this lane's keys only

  for (StepWalker walk(s, cta.qb); !walk.done(); walk.next()) {
    const Step st = walk.step();
    __syncthreads();  // the previous step's V and ps are no longer read
    stage_f32(kvs, pitch, a.k, b, h, D, s.k_order, st.key0, st.keys);
    __syncthreads();

    // Scores of this row against keys sub + 8r (base 2); masked keys -inf.
    const uint64_t vis = visible_keys(s, st, real_keys(s.k_order, st), cta.row0 + row);
    float sc[kF32Scores];
    float step_max = -INFINITY;
#pragma unroll
    for (int r = 0; r < kF32Scores; ++r) {
      const int j = sub + kF32RowThreads * r;
      float dot = 0.0f;
      for (int d = 0; d < D; ++d) dot += qs[row * pitch + d] * kvs[j * pitch + d];
      sc[r] = (vis >> j) & 1 ? dot * a.scale_log2 : -INFINITY;
      step_max = fmaxf(step_max, sc[r]);
    }
    float base;
    const float alpha = softmax_rescale(row_max, row_max_of(step_max), base);
    float sum = 0.0f;
#pragma unroll
    for (int r = 0; r < kF32Scores; ++r) {
      const float p = exp2f(sc[r] - base);
      ps[row * (kKeys + 1) + sub + kF32RowThreads * r] = p;
      sum += p;
    }
    row_sum = row_sum * alpha + sum;

    __syncthreads();  // every row is done with K
    stage_f32(kvs, pitch, a.v, b, h, D, s.k_order, st.key0, st.keys);
    __syncthreads();
#pragma unroll
    for (int m = 0; m < kF32Cols; ++m) {
      const int d = sub + kF32RowThreads * m;
      if (d < D) {
        float acc = o[m] * alpha;
        for (int j = 0; j < kKeys; ++j) acc += ps[row * (kKeys + 1) + j] * kvs[j * pitch + d];
        o[m] = acc;
      }
    }
  }

  for (int w = kF32RowThreads / 2; w > 0; w /= 2) row_sum += __shfl_xor_sync(0xffffffffu, row_sum, w, kF32RowThreads);
  if (row >= cta.rows) return;
  const int64_t tok = token_at(s.q_order, cta.pos0 + row);
  if (tok < 0) return;
  const float inv = row_sum > 0.0f ? 1.0f / row_sum : 0.0f;
  const int64_t base_idx = ((b * a.q_tokens + tok) * a.H + h) * a.D;
#pragma unroll
  for (int m = 0; m < kF32Cols; ++m) {
    const int d = sub + kF32RowThreads * m;
    if (d < D) store(a.out, base_idx + d, a.out_dtype, o[m] * inv);
  }
  if (a.lse && sub == 0) a.lse[(b * a.H + h) * a.q_tokens + tok] = natural_lse(row_max, row_sum);
}

// ---- launch -----------------------------------------------------------------------------------

// Head_dim the tensor-core kernel is instantiated for (D rounded up).
int mma_head_dim(int64_t D) { return D <= 64 ? 64 : D <= 128 ? 128 : 256; }

template <typename T, int DP>
void launch_mma(const BlockSparseArgs& a, dim3 grid, int smem, cudaStream_t s) {
  DK_CUDA(cudaFuncSetAttribute(block_sparse_mma_kernel<T, DP>, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
  block_sparse_mma_kernel<T, DP><<<grid, kMmaThreads, size_t(smem), s>>>(a);
  cuda::check_launch("block_sparse_mma_kernel");
}

template <typename T>
void launch_mma(const BlockSparseArgs& a, dim3 grid, int smem, cudaStream_t s) {
  switch (mma_head_dim(a.D)) {
    case 64: return launch_mma<T, 64>(a, grid, smem, s);
    case 128: return launch_mma<T, 128>(a, grid, smem, s);
    default: return launch_mma<T, 256>(a, grid, smem, s);
  }
}

}  // namespace

bool block_sparse_uses_mma(const BlockSparseArgs& a) {
  return (a.q.dtype == DType::F16 || a.q.dtype == DType::BF16) && a.k.dtype == a.q.dtype &&
         a.v.dtype == a.q.dtype;
}

int64_t block_sparse_smem_bytes(const BlockSparseArgs& a) {
  if (block_sparse_uses_mma(a)) return int64_t(sizeof(__half)) * (kRows + 2 * kKeys) * (mma_head_dim(a.D) + 8);
  return int64_t(sizeof(float)) * ((kRows + kKeys) * (a.D + 1) + kRows * (kKeys + 1));
}

void launch_block_sparse_attention(const BlockSparseArgs& a, cudaStream_t s) {
  const int64_t slices = (a.s.q_block + kRows - 1) / kRows;
  const dim3 grid(unsigned(a.s.q_blocks * slices), unsigned(a.H), unsigned(a.B));
  const int smem = int(block_sparse_smem_bytes(a));
  if (!block_sparse_uses_mma(a)) {
    DK_CUDA(cudaFuncSetAttribute(block_sparse_f32_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
    block_sparse_f32_kernel<<<grid, kF32Threads, size_t(smem), s>>>(a);
    cuda::check_launch("block_sparse_f32_kernel");
  } else if (a.q.dtype == DType::F16) {
    launch_mma<__half>(a, grid, smem, s);
  } else {
    launch_mma<__nv_bfloat16>(a, grid, smem, s);
  }
}

}  // namespace ditkit::attention
