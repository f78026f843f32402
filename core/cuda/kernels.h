// Interface between the host side of the CUDA backend (.cpp, C++20, works on Tensors) and
// the kernel files (.cu, C++17, work on pointers, dtypes and strided indexers).
#pragma once
#include <cstdint>
#include <vector>

#include "core/cuda/runtime.h"
#include "core/dtype.h"

#ifdef __CUDACC__
#define DK_DEVICE __device__ __forceinline__
#else
#define DK_DEVICE inline
#endif

namespace ditkit::cuda {

// ---- strided indexing -----------------------------------------------------------------
constexpr int kMaxDims = 8;

// Element offsets of N operands walking one shape in row-major order. Built on the host with
// adjacent dims merged where every operand allows it, so contiguous data becomes 1-D.
template <int N>
struct Indexer {
  int ndim = 0;
  int64_t size[kMaxDims] = {};
  int64_t stride[N][kMaxDims] = {};

  DK_DEVICE void offsets(int64_t linear, int64_t (&off)[N]) const {
    for (int k = 0; k < N; ++k) off[k] = 0;
    for (int d = ndim - 1; d > 0; --d) {
      int64_t idx;
      if (((linear | size[d]) >> 32) == 0) {  // 32-bit division is several times cheaper
        uint32_t l = uint32_t(linear), s = uint32_t(size[d]);
        idx = l % s;
        linear = l / s;
      } else {
        idx = linear % size[d];
        linear /= size[d];
      }
      for (int k = 0; k < N; ++k) off[k] += idx * stride[k][d];
    }
    if (ndim > 0) {  // the outermost index is what is left: no division
      for (int k = 0; k < N; ++k) off[k] += linear * stride[k][0];
    }
  }
};

// An indexer over `shape` for operands with the given element strides (each as long as
// shape; 0 for broadcast dims). Drops size-1 dims and merges mergeable neighbours.
template <int N>
Indexer<N> make_indexer(const std::vector<int64_t>& shape, const std::vector<std::vector<int64_t>>& strides) {
  std::vector<int64_t> sz;
  std::vector<std::vector<int64_t>> st(N);
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == 1) continue;
    bool merge = !sz.empty();
    for (int k = 0; k < N && merge; ++k) merge = st[size_t(k)].back() == strides[size_t(k)][d] * shape[d];
    if (merge) {
      sz.back() *= shape[d];
      for (int k = 0; k < N; ++k) st[size_t(k)].back() = strides[size_t(k)][d];
    } else {
      sz.push_back(shape[d]);
      for (int k = 0; k < N; ++k) st[size_t(k)].push_back(strides[size_t(k)][d]);
    }
  }
  DK_CHECK(sz.size() <= size_t(kMaxDims), "CUDA kernels support at most ", kMaxDims, " non-mergeable dims, got ",
           shape.size(), " dims");
  Indexer<N> ix;
  ix.ndim = int(sz.size());
  for (size_t d = 0; d < sz.size(); ++d) {
    ix.size[d] = sz[d];
    for (int k = 0; k < N; ++k) ix.stride[k][d] = st[size_t(k)][d];
  }
  return ix;
}

// ---- elementwise (elementwise.cu) -----------------------------------------------------
// dst[off0] = src[off1] over n elements, converting dtype (src may be Q8_0 when dense).
void launch_copy(const Indexer<2>& ix, void* dst, DType dt, const void* src, DType st, int64_t n, cudaStream_t s);
void launch_fill(const Indexer<1>& ix, void* dst, DType dt, float value, int64_t n, cudaStream_t s);

// The math of unary()/binary()/affine()/modulate(), mirrored from ops::Unary/ops::Binary
// (which live in C++20 headers) by the host side.
enum class UnaryOp : int {
  Neg, Abs, Exp, Log, Sqrt, Rsqrt, Square, Sin, Cos, Tanh, Sigmoid, Relu, Silu, GeluErf, GeluTanh, QuickGelu
};
enum class BinaryOp : int { Add, Sub, Mul, Div, Max, Min, Pow };
enum class PointwiseKind : int { Unary, Binary, Affine, Modulate };
struct PointwiseArgs {
  PointwiseKind kind = PointwiseKind::Unary;
  UnaryOp unary = UnaryOp::Neg;
  BinaryOp binary = BinaryOp::Add;
  float scale = 1.0f, shift = 0.0f;  // affine
  void* out = nullptr;               // contiguous
  DType out_t = DType::F32;
  const void* in[3] = {};
  DType in_t[3] = {};
};
// N in 1..3 strided inputs (Unary/Affine: x; Binary: a, b; Modulate: x, scale, shift).
template <int N>
void launch_pointwise(const Indexer<N>& ix, const PointwiseArgs& a, int64_t n, cudaStream_t s);

// ix walks x's even elements, cos and sin over the half shape; x's odd element is x_step
// further; out is contiguous in x's dtype.
void launch_rope(const Indexer<3>& ix, const void* x, DType xt, int64_t x_step, const void* cos, DType ct,
                 const void* sin, DType snt, void* out, int64_t pairs, cudaStream_t s);

// ---- normalisation and reductions (norm.cu) -------------------------------------------
// Rows of D elements: ix gives each row's start in x, x_step the stride along the row. out is
// contiguous [rows, D]; weight/bias dense or null. rms: x * rsqrt(mean(x^2) + eps) * w.
struct RowNormArgs {
  const void* x = nullptr;
  DType xt = DType::F32;
  int64_t x_step = 1, rows = 0, D = 0;
  const void* weight = nullptr;
  DType wt = DType::F32;
  const void* bias = nullptr;
  DType bt = DType::F32;
  void* out = nullptr;
  float eps = 0.0f;
  bool rms = false;
};
void launch_row_norm(const Indexer<1>& rows, const RowNormArgs& a, cudaStream_t s);

// x dense [N, C, S] in groups of C/G channels; out dense in x's dtype; weight/bias [C] or null.
// scratch: 2 * N * G * group_norm_chunks(...) + 2 * N * G floats.
int64_t group_norm_chunks(int64_t group_elems);
void launch_group_norm(const void* x, DType xt, int64_t N, int64_t C, int64_t S, int64_t G, const void* weight,
                       DType wt, const void* bias, DType bt, float eps, void* out, float* scratch, cudaStream_t s);

// Softmax of rows of D elements along a dim: ix gives each row's start in x (0) and out (1).
void launch_softmax(const Indexer<2>& rows, int64_t nrows, const void* x, DType xt, int64_t x_step, void* out,
                    int64_t out_step, int64_t D, cudaStream_t s);

enum class ReduceOp : int { Sum, Mean, Max, Min };
// out (dense, nout elements, dtype ot) = op over R elements: outer gives each output's start in
// x, inner the offsets of the reduced elements.
void launch_reduce(ReduceOp op, const Indexer<1>& outer, int64_t nout, const Indexer<1>& inner, int64_t R,
                   const void* x, DType xt, void* out, DType ot, cudaStream_t s);

// ---- gathers and resampling (shape.cu) ------------------------------------------------
// out[m, d] = table[ids[m], d] for dense ids (I32/I64). Ids outside [0, V) write zeros and
// leave the smallest bad position m in *bad (which the caller initialises to INT64_MAX).
void launch_embedding(const void* table, DType tt, int64_t t_row, int64_t t_col, int64_t V, int64_t D,
                      const void* ids, DType it, int64_t M, void* out, DType ot, long long* bad, cudaStream_t s);

enum class ResizeMode : int { Nearest, NearestExact, Bilinear };
// x [N, C, H, W] with element strides xs -> dense out [N, C, oh, ow] in x's dtype.
void launch_resize(ResizeMode mode, const void* x, DType xt, const int64_t (&shape)[4], const int64_t (&xs)[4],
                   int64_t oh, int64_t ow, void* out, cudaStream_t s);

// Unfolds one dense image x [C, D, H, W] (2-D convs pass D = 1) into dense
// cols [C * kd * kh * kw, count]: output positions [first, first + count) of od * oh * ow, with
// zero padding `pad` before each dim and the given stride/dilation.
struct Im2ColArgs {
  int64_t C = 0, in[3] = {}, k[3] = {}, out[3] = {}, stride[3] = {}, pad[3] = {}, dilation[3] = {};
  int64_t first = 0, count = 0;
};
void launch_im2col(const Im2ColArgs& a, const void* x, DType xt, void* cols, cudaStream_t s);

}  // namespace ditkit::cuda
