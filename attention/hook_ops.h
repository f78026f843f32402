// Device-agnostic building blocks for attention hooks (../shared/spec/hooks.md §5.4, §5.6),
// written with core/ops.h so that they run wherever the tensors live (CPU or CUDA):
// the grid (image/video) tokens of a call, AdaIN over the token axis and the exact log-sum-exp
// merge of two partial attentions.
#pragma once
#include "attention/attention.h"
#include "core/tensor.h"

namespace ditkit::attention {

// First grid token of a self/joint call's queries and keys (after FLUX's text prefix).
int64_t grid_begin(const TokenLayout& layout);
// The grid tokens of x [B, L, H, D] (a view).
Tensor grid_part(const Tensor& x, const TokenLayout& layout);
// x with its grid tokens replaced by `grid` [B, grid tokens, H, D].
Tensor with_grid(const Tensor& x, const Tensor& grid, const TokenLayout& layout);

// Per row, head and channel statistics over the token axis of x [B, L, H, D]: mean and
// std = sqrt(unbiased variance + 1e-5) (the epsilon of StyleAligned and AlignedGen), both
// [B, 1, H, D] f32.
struct TokenStats {
  Tensor mean, std;
};
TokenStats token_stats(const Tensor& x);

// AdaIN(x | ref) = (x - mean_x) / std_x * std_ref + mean_ref per row, head and channel, in x's
// dtype (math in f32). `ref` statistics broadcast over x's rows when they have one row.
Tensor adain(const Tensor& x, const TokenStats& ref);
inline Tensor adain(const Tensor& x, const Tensor& ref) { return adain(x, token_stats(ref)); }

// The attention of queries over the union of two key sets, from the attention over each:
// o1 [B, Lq, H, D] with lse1 [B, H, Lq] (f32, natural log) over the first set, o2 and lse2 over
// the second, whose logits all get + bias2 (bias2 = ln(w) weighs the second set by w; -inf
// drops it). Exact: out = (e^L1 o1 + e^(L2 + b) o2) / (e^L1 + e^(L2 + b)). Returns o1's dtype;
// `lse` (optional) receives the merged log-sum-exp [B, H, Lq] f32.
Tensor merge_attention(const Tensor& o1, const Tensor& lse1, const Tensor& o2, const Tensor& lse2, float bias2,
                       Tensor* lse = nullptr);

}  // namespace ditkit::attention
