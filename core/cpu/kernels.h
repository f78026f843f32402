// Shared pieces of the CPU kernels: dtype <-> f32 row conversion, strided row iteration,
// the elementwise driver, and f32 GEMM panels of weights in any storage dtype.
#pragma once
#include <algorithm>
#include <array>
#include <cstdint>
#include <vector>

#include "core/backend.h"
#include "core/threadpool.h"

namespace ditkit::cpu {

// Elements per scratch row chunk: big enough for vector loops, small enough for L1/L2.
constexpr int64_t kChunk = 4096;

// Converts n elements of `t` starting at element `first` of `base` into f32 (`step` elements apart;
// 0 repeats one value). Q8_0 needs step 1 and `first`, n multiples of 32.
void load_f32(DType t, const void* base, int64_t first, int64_t step, int64_t n, float* dst);
// Writes n f32 values as `t` at element `first` of `base`, `step` elements apart.
void store_f32(const float* src, DType t, void* base, int64_t first, int64_t step, int64_t n);

// Dims merged where every operand's strides allow it; size-1 dims dropped. Always at least one dim.
struct Layout {
  Shape shape;
  std::vector<Shape> strides;  // per operand
};
Layout coalesce(const Shape& shape, const std::vector<Shape>& strides);

// Walks the indices of `shape` row-major, keeping each operand's element offset.
class Cursor {
 public:
  Cursor(const Shape& shape, const std::vector<Shape>& strides) : shape_(shape), strides_(strides) {
    idx_.assign(shape.size(), 0);
    off_.assign(strides.size(), 0);
  }
  void seek(int64_t linear) {
    std::fill(off_.begin(), off_.end(), 0);
    for (size_t d = shape_.size(); d-- > 0;) {
      idx_[d] = linear % shape_[d];
      linear /= shape_[d];
      for (size_t k = 0; k < off_.size(); ++k) off_[k] += idx_[d] * strides_[k][d];
    }
  }
  void next() {
    for (size_t d = shape_.size(); d-- > 0;) {
      for (size_t k = 0; k < off_.size(); ++k) off_[k] += strides_[k][d];
      if (++idx_[d] < shape_[d]) return;
      for (size_t k = 0; k < off_.size(); ++k) off_[k] -= strides_[k][d] * shape_[d];
      idx_[d] = 0;
    }
  }
  int64_t offset(size_t k) const { return off_[k]; }

 private:
  Shape shape_;
  std::vector<Shape> strides_;
  Shape idx_;
  std::vector<int64_t> off_;
};

// Calls fn(offsets, steps, n) for chunks of at most kChunk elements along the innermost merged
// dim of `shape`, in parallel: offsets[k] is operand k's element offset of the chunk start and
// steps[k] its stride along the chunk.
template <typename Fn>
void for_each_chunk(const Shape& shape, const std::vector<Shape>& strides, Fn fn) {
  if (shape_numel(shape) == 0) return;
  const Layout l = coalesce(shape, strides);
  const size_t ops = strides.size();
  const int64_t cols = l.shape.back();
  const Shape outer(l.shape.begin(), l.shape.end() - 1);
  std::vector<Shape> outer_strides;
  std::vector<int64_t> steps;
  for (const Shape& s : l.strides) {
    outer_strides.emplace_back(s.begin(), s.end() - 1);
    steps.push_back(s.back());
  }
  const int64_t chunk = std::min(cols, kChunk);
  const int64_t per_row = (cols + chunk - 1) / chunk;
  parallel_for(0, shape_numel(outer) * per_row, std::max<int64_t>(1, 16384 / chunk), [&](int64_t b, int64_t e) {
    Cursor cur(outer, outer_strides);
    cur.seek(b / per_row);
    std::vector<int64_t> offs(ops);
    for (int64_t it = b; it < e; ++it) {
      const int64_t c0 = (it % per_row) * chunk;
      if (it > b && c0 == 0) cur.next();
      for (size_t k = 0; k < ops; ++k) offs[k] = cur.offset(k) + c0 * steps[k];
      fn(offs.data(), steps.data(), std::min(chunk, cols - c0));
    }
  });
}

// out[i] = fn(ins[0][i], ...) elementwise over out's shape. `ins` must already have out's shape
// (broadcast by stride 0); `fn(const float* const* in, float* out, int64_t n)` works on f32 chunks.
template <size_t N, typename Fn>
void elementwise(const Tensor& out, const std::array<Tensor, N>& ins, Fn fn) {
  std::vector<Shape> strides{out.strides()};
  for (const Tensor& t : ins) {
    DK_CHECK(t.dtype() != DType::Q8_0, "elementwise ops do not read Q8_0 tensors (", t.str(), ")");
    strides.push_back(t.strides());
  }
  DK_CHECK(out.dtype() != DType::Q8_0, "cannot write Q8_0 tensor ", out.str());
  for_each_chunk(out.shape(), strides, [&](const int64_t* offs, const int64_t* steps, int64_t n) {
    thread_local std::vector<float> buf;
    buf.resize(size_t(kChunk) * (N + 1));
    std::array<float*, N> in;
    for (size_t k = 0; k < N; ++k) {
      in[k] = buf.data() + (k + 1) * kChunk;
      load_f32(ins[k].dtype(), ins[k].raw(), offs[k + 1], steps[k + 1], n, in[k]);
    }
    fn(in.data(), buf.data(), n);
    store_f32(buf.data(), out.dtype(), out.raw(), offs[0], steps[0], n);
  });
}

// f32 view of `x`: x itself when already contiguous f32, else a converted contiguous copy.
Tensor contiguous_f32(const Tensor& x);

// Whether the 2-D weight w [R, K] can be handed to BLAS as it is (f32 rows with unit inner stride).
bool is_blas_matrix(const Tensor& w);
// Rows [r0, r0 + n) of the 2-D weight w [R, K] as an f32 matrix with leading dimension *ld:
// a pointer into w when it is f32 with unit inner stride, else converted into `scratch`.
const float* weight_rows_f32(const Tensor& w, int64_t r0, int64_t n, std::vector<float>& scratch, int64_t* ld);
// Rows converted per panel of weights (bounds scratch to kPanelRows x K floats).
constexpr int64_t kPanelRows = 256;

// Row-major C[M, N] = alpha * op(A) op(B) + beta * C (OpenBLAS, which threads itself).
void sgemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
           const float* b, int64_t ldb, float beta, float* c, int64_t ldc);

// y = exp(x) on n floats with AVX2 (Cephes' range reduction and polynomial, about 1 ulp); the
// compiler does not vectorise std::exp without -ffast-math. x and y may alias. Results below
// ~1e-38 flush to 0; exp(-inf) = 0, exp(inf) = inf, exp(nan) = nan.
void exp_f32(const float* x, float* y, int64_t n);
// Largest of n > 0 floats.
float max_f32(const float* v, int64_t n);

// Sums in double over 8 independent lanes (vectorisable, and exact enough for long rows):
// sum(v), and sum((v - mean)^2).
double sum_f64(const float* v, int64_t n);
double sum_sq_dev_f64(const float* v, int64_t n, double mean);

// Weight/bias of a normalisation as f32 (empty when undefined).
std::vector<float> vector_f32(const Tensor& t);

}  // namespace ditkit::cpu
