// linear and batched matmul on OpenBLAS sgemm; non-f32 weights are converted a panel at a time.
#include "core/cpu/kernels.h"

namespace ditkit::cpu {
namespace {

// Row-major BLAS description of the last two dims of t (f32): whether BLAS must transpose it
// (on top of `trans`) and its leading dimension. False when neither dim has unit stride.
bool blas_layout(const Tensor& t, bool trans, bool* blas_trans, int64_t* ld) {
  const int64_t r = t.dim(-2), c = t.dim(-1), sr = t.strides()[t.ndim() - 2], sc = t.strides().back();
  if ((sc == 1 || c == 1) && (r == 1 || sr >= c)) {
    *blas_trans = trans;
    *ld = r == 1 ? std::max<int64_t>(c, 1) : sr;
    return true;
  }
  if ((sr == 1 || r == 1) && (c == 1 || sc >= r)) {
    *blas_trans = !trans;
    *ld = c == 1 ? std::max<int64_t>(r, 1) : sc;
    return true;
  }
  return false;
}

// An f32 output buffer: out itself when f32, else scratch that finish() converts into out.
struct F32Out {
  Tensor out, f32;
  explicit F32Out(Tensor o) : out(std::move(o)) {
    f32 = out.dtype() == DType::F32 ? out : Tensor::empty(out.shape(), DType::F32);
  }
  float* data() const { return f32.data<float>(); }
  void finish() {
    if (f32.raw() != out.raw()) copy_(out, f32);
  }
};

}  // namespace

Tensor linear(const Tensor& x, const Tensor& w, const Tensor& bias) {
  const int64_t n = w.dim(0), k = w.dim(1), m = k ? x.numel() / k : 0;
  Shape shape = x.shape();
  shape.back() = n;
  F32Out out(Tensor::empty(shape, x.dtype()));
  if (out.out.numel() == 0) return out.out;
  float* c = out.data();
  // The bias (or zero) is laid into C first and the GEMM accumulates onto it.
  const std::vector<float> b = bias.defined() ? vector_f32(bias) : std::vector<float>(size_t(n), 0.0f);
  parallel_for(0, m, std::max<int64_t>(1, 16384 / n), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) std::copy(b.begin(), b.end(), c + r * n);
  });
  if (k > 0) {
    const Tensor xf = contiguous_f32(x);
    int64_t ld;
    std::vector<float> scratch;
    const int64_t panel = is_blas_matrix(w) ? n : kPanelRows;
    for (int64_t n0 = 0; n0 < n; n0 += panel) {
      const int64_t nb = std::min(panel, n - n0);
      const float* wp = weight_rows_f32(w, n0, nb, scratch, &ld);
      sgemm(false, true, m, nb, k, 1.0f, xf.data<float>(), k, wp, ld, 1.0f, c + n0, n);
    }
  }
  out.finish();
  return out.out;
}

Tensor matmul(const Tensor& a, const Tensor& b, bool transpose_a, bool transpose_b) {
  bool ta, tb;
  int64_t lda, ldb;
  const Tensor af = a.dtype() == DType::F32 && blas_layout(a, transpose_a, &ta, &lda) ? a : contiguous_f32(a);
  const Tensor bf = b.dtype() == DType::F32 && blas_layout(b, transpose_b, &tb, &ldb) ? b : contiguous_f32(b);
  blas_layout(af, transpose_a, &ta, &lda);
  blas_layout(bf, transpose_b, &tb, &ldb);
  const int64_t m = transpose_a ? a.dim(-1) : a.dim(-2), k = transpose_a ? a.dim(-2) : a.dim(-1);
  const int64_t n = transpose_b ? b.dim(-2) : b.dim(-1);
  const Shape batch = ops::broadcast_shapes(Shape(a.shape().begin(), a.shape().end() - 2),
                                            Shape(b.shape().begin(), b.shape().end() - 2));
  auto with = [&](int64_t r, int64_t c) {
    Shape s = batch;
    s.push_back(r);
    s.push_back(c);
    return s;
  };
  const Tensor ae = af.expand(with(a.dim(-2), a.dim(-1))), be = bf.expand(with(b.dim(-2), b.dim(-1)));
  F32Out out(Tensor::empty(with(m, n), a.dtype()));
  if (out.out.numel() == 0) return out.out;
  auto batch_strides = [&](const Tensor& t) { return Shape(t.strides().begin(), t.strides().end() - 2); };
  Cursor cur(batch, {batch_strides(ae), batch_strides(be)});
  const int64_t count = shape_numel(batch);
  for (int64_t i = 0; i < count; ++i, cur.next()) {
    float* c = out.data() + i * m * n;
    if (k == 0) {
      std::fill(c, c + m * n, 0.0f);
      continue;
    }
    sgemm(ta, tb, m, n, k, 1.0f, ae.data<float>() + cur.offset(0), lda, be.data<float>() + cur.offset(1), ldb, 0.0f,
          c, n);
  }
  out.finish();
  return out.out;
}

}  // namespace ditkit::cpu
