// Host side of normalisation, softmax and reductions.
#include <algorithm>

#include "core/cuda/host.h"

namespace ditkit::cuda {
namespace {

// Rows of the last dim of x: an indexer over the leading dims giving each row's start.
Indexer<1> row_starts(const Tensor& x) {
  Shape lead(x.shape().begin(), x.shape().end() - 1);
  Shape st(x.strides().begin(), x.strides().end() - 1);
  return make_indexer<1>(lead, {st});
}

Tensor row_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, float eps, bool rms) {
  Tensor out = Tensor::empty(x.shape(), x.dtype(), x.device());
  if (x.numel() == 0) return out;
  Tensor w, b;
  RowNormArgs a;
  a.x = x.raw();
  a.xt = x.dtype();
  a.x_step = x.strides().back();
  a.D = x.dim(-1);
  a.rows = x.numel() / a.D;
  a.weight = dense_or_null(weight, w);
  a.wt = weight.defined() ? weight.dtype() : DType::F32;
  a.bias = dense_or_null(bias, b);
  a.bt = bias.defined() ? bias.dtype() : DType::F32;
  a.out = out.raw();
  a.eps = eps;
  a.rms = rms;
  launch_row_norm(row_starts(x), a, stream(x));
  return out;
}

}  // namespace

Tensor layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, float eps) {
  return row_norm(x, weight, bias, eps, false);
}

Tensor rms_norm(const Tensor& x, const Tensor& weight, float eps) { return row_norm(x, weight, Tensor(), eps, true); }

Tensor group_norm(const Tensor& x, int64_t groups, const Tensor& weight, const Tensor& bias, float eps) {
  Tensor out = Tensor::empty(x.shape(), x.dtype(), x.device());
  if (x.numel() == 0) return out;
  Tensor xc = x.contiguous(), w, b;
  int64_t N = x.dim(0), C = x.dim(1), S = x.numel() / (N * C);
  DK_CHECK(N * groups <= 65535, "CUDA group_norm: at most 65535 (batch x groups), got ", x.str(), " with ", groups,
           " groups");
  int64_t chunks = group_norm_chunks(C / groups * S);
  Tensor scratch = Tensor::empty({N * groups * (chunks + 2)}, DType::F32, x.device());
  launch_group_norm(xc.raw(), x.dtype(), N, C, S, groups, dense_or_null(weight, w),
                    weight.defined() ? weight.dtype() : DType::F32, dense_or_null(bias, b),
                    bias.defined() ? bias.dtype() : DType::F32, eps, out.raw(), scratch.data<float>(), stream(x));
  return out;
}

Tensor softmax(const Tensor& x, int64_t dim) {
  Tensor out = Tensor::empty(x.shape(), x.dtype(), x.device());
  if (x.numel() == 0) return out;
  if (x.ndim() == 0) {
    fill_(out, 1.0f);
    return out;
  }
  // Rows: every index but `dim`; walked in x and in the dense output.
  Shape rows = x.shape(), xs = x.strides(), os = out.strides();
  int64_t D = rows[size_t(dim)], x_step = xs[size_t(dim)], out_step = os[size_t(dim)];
  rows.erase(rows.begin() + dim);
  xs.erase(xs.begin() + dim);
  os.erase(os.begin() + dim);
  launch_softmax(make_indexer<2>(rows, {xs, os}), shape_numel(rows), x.raw(), x.dtype(), x_step, out.raw(), out_step,
                 D, stream(x));
  return out;
}

Tensor reduce(ops::Reduce op, const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) {
  // dims are sorted, unique and in range (core/ops.cpp).
  Shape kept, kept_strides, red, red_strides, out_shape;
  for (int64_t d = 0; d < x.ndim(); ++d) {
    bool reduced = std::binary_search(dims.begin(), dims.end(), d);
    (reduced ? red : kept).push_back(x.dim(d));
    (reduced ? red_strides : kept_strides).push_back(x.strides()[size_t(d)]);
    if (!reduced || keepdim) out_shape.push_back(reduced ? 1 : x.dim(d));
  }
  Tensor out = Tensor::empty(out_shape, x.dtype(), x.device());
  int64_t nout = out.numel(), R = shape_numel(red);
  if (nout == 0) return out;
  ReduceOp rop = op == ops::Reduce::Sum ? ReduceOp::Sum
                 : op == ops::Reduce::Mean ? ReduceOp::Mean
                 : op == ops::Reduce::Max ? ReduceOp::Max
                                          : ReduceOp::Min;
  DK_CHECK(R > 0 || rop == ReduceOp::Sum || rop == ReduceOp::Mean, "CUDA reduce: max/min over an empty dim of ",
           x.str());
  launch_reduce(rop, make_indexer<1>(kept, {kept_strides}), nout, make_indexer<1>(red, {red_strides}), R, x.raw(),
                x.dtype(), out.raw(), out.dtype(), stream(x));
  return out;
}

}  // namespace ditkit::cuda
