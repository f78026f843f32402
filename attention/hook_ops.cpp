// AdaIN and the partial-attention merge, built from core/ops.h (f32 math on any device).
#include "attention/hook_ops.h"

#include <vector>

#include "core/error.h"
#include "core/ops.h"

namespace ditkit::attention {

int64_t grid_begin(const TokenLayout& layout) {
  return layout.text_position == TextPosition::Prefix ? layout.text_tokens : 0;
}

Tensor grid_part(const Tensor& x, const TokenLayout& layout) {
  return x.narrow(1, grid_begin(layout), layout.grid_tokens());
}

Tensor with_grid(const Tensor& x, const Tensor& grid, const TokenLayout& layout) {
  const int64_t begin = grid_begin(layout), end = begin + layout.grid_tokens();
  std::vector<Tensor> parts;
  if (begin > 0) parts.push_back(x.narrow(1, 0, begin));
  parts.push_back(grid);
  if (end < x.dim(1)) parts.push_back(x.narrow(1, end, x.dim(1) - end));
  return parts.size() == 1 ? grid : ops::concat(parts, 1);
}
namespace {

Tensor f32(const Tensor& x) { return x.dtype() == DType::F32 ? x : ops::cast(x, DType::F32); }

// lse [B, H, Lq] -> [B, Lq, H, 1], to weigh outputs [B, Lq, H, D].
Tensor per_query(const Tensor& lse) { return ops::permute(lse, {0, 2, 1}).unsqueeze(3); }

}  // namespace

TokenStats token_stats(const Tensor& x) {
  DK_CHECK(x.ndim() == 4 && x.dim(1) >= 2, "AdaIN: expected [B, L, H, D] with at least 2 tokens, got ", x.str());
  const Tensor x32 = f32(x);
  const Tensor mean = ops::mean(x32, {1}, true);
  const Tensor var = ops::affine(ops::sum(ops::unary(ops::Unary::Square, ops::sub(x32, mean)), {1}, true),
                                 1.0f / float(x.dim(1) - 1), 0.0f);  // unbiased, as torch.var
  return {mean, ops::unary(ops::Unary::Sqrt, ops::affine(var, 1.0f, 1e-5f))};
}

Tensor adain(const Tensor& x, const TokenStats& ref) {
  const TokenStats own = token_stats(x);
  DK_CHECK(ref.mean.ndim() == 4 && ref.mean.dim(1) == 1 && ref.mean.dim(2) == x.dim(2) && ref.mean.dim(3) == x.dim(3) &&
               (ref.mean.dim(0) == 1 || ref.mean.dim(0) == x.dim(0)),
           "AdaIN: reference statistics ", ref.mean.str(), " do not fit x ", x.str());
  const Tensor normalised = ops::div(ops::sub(f32(x), own.mean), own.std);
  const Tensor out = ops::add(ops::mul(normalised, ref.std), ref.mean);
  return x.dtype() == DType::F32 ? out : ops::cast(out, x.dtype());
}

Tensor merge_attention(const Tensor& o1, const Tensor& lse1, const Tensor& o2, const Tensor& lse2, float bias2,
                       Tensor* lse) {
  DK_CHECK(o1.ndim() == 4 && o2.shape() == o1.shape(), "merge_attention: o1 and o2 must be [B, Lq, H, D] alike, got ",
           o1.str(), " and ", o2.str());
  const Shape lse_shape{o1.dim(0), o1.dim(2), o1.dim(1)};
  DK_CHECK(lse1.shape() == lse_shape && lse2.shape() == lse_shape, "merge_attention: lse1 and lse2 must be ",
           shape_str(lse_shape), " for outputs ", o1.str(), ", got ", lse1.str(), " and ", lse2.str());
  const Tensor l1 = f32(lse1), l2 = ops::affine(f32(lse2), 1.0f, bias2);
  // Weights e^L / (e^L1 + e^L2) as sigmoids of the difference: no overflow for any lse.
  const Tensor d = ops::sub(l2, l1);
  const Tensor w1 = per_query(ops::unary(ops::Unary::Sigmoid, ops::unary(ops::Unary::Neg, d)));
  const Tensor w2 = per_query(ops::unary(ops::Unary::Sigmoid, d));
  const Tensor out = ops::add(ops::mul(w1, o1), ops::mul(w2, o2));
  if (lse) {
    const Tensor m = ops::binary(ops::Binary::Max, l1, l2);
    const Tensor sum = ops::add(ops::unary(ops::Unary::Exp, ops::sub(l1, m)), ops::unary(ops::Unary::Exp, ops::sub(l2, m)));
    *lse = ops::add(m, ops::unary(ops::Unary::Log, sum));
  }
  return o1.dtype() == DType::F32 ? out : ops::cast(out, o1.dtype());
}

}  // namespace ditkit::attention
