// Planning of GEMMs for cuBLASLt, separate from running them so that the stride logic can be
// checked on the host: a row-major product is computed as the transposed column-major one,
// out^T = op(b)^T op(a)^T, from strided matrices without copies where a unit stride allows.
#pragma once
#include <optional>
#include <vector>

#include "core/tensor.h"

namespace ditkit::cuda {

// A column-major operand as cuBLAS stores it: rows x cols with leading dim ld (elements),
// transposed when `transpose`; batch_stride between consecutive matrices of a strided batch.
struct GemmOperand {
  const void* ptr = nullptr;
  bool transpose = false;
  int64_t rows = 0, cols = 0, ld = 0, batch_stride = 0;
};

// D (dense column-major m x n per batch, d_stride apart) = op(A) [m x k] @ op(B) [k x n].
struct GemmCall {
  DType type = DType::F32;  // of A, B, D and the bias
  int64_t m = 0, n = 0, k = 0, batch = 1;
  GemmOperand a, b;
  void* d = nullptr;
  int64_t d_stride = 0;
  const void* bias = nullptr;  // length m, added to every column of D
};

// Logical row-major matrices rows x cols at element strides (sr, sc), one per index of a batch
// shape (batch_strides has one entry per batch dim; 0 broadcasts).
struct MatrixBatch {
  const void* ptr = nullptr;
  Shape batch_strides;
  int64_t rows = 0, cols = 0, sr = 0, sc = 0;
};

// Calls computing dense out[batch..., M, N] = a[batch..., M, K] @ b[batch..., K, N] in dtype t:
// the innermost batch dims that merge for both operands form one strided batch, the outer ones
// are looped over. None when a matrix has no unit stride (the caller makes it dense first).
std::optional<std::vector<GemmCall>> plan_gemm(DType t, const Shape& batch, const MatrixBatch& a, const MatrixBatch& b,
                                               void* out);

// Stride of dims [begin, end) of (shape, strides) merged into one, if they merge (size-1 dims
// ignored; 0 when all are size 1).
std::optional<int64_t> merged_stride(const Shape& shape, const Shape& strides, size_t begin, size_t end);

}  // namespace ditkit::cuda
