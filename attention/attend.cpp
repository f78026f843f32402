// attend(): checks the call, runs the hooks that apply around it and the kind the plan gives
// for the site: dense (dense kinds, dense warm-up sites, cross-attention) or the block-sparse
// engine on the kind's cached schedule.
#include <cmath>

#include "attention/attention.h"
#include "attention/block_sparse.h"
#include "attention/dense.h"
#include "attention/hooks.h"
#include "attention/plan.h"

namespace ditkit::attention {

void check_operands(const char* who, const Tensor& q, const Tensor& k, const Tensor& v) {
  DK_CHECK(q.ndim() == 4 && k.ndim() == 4 && v.ndim() == 4, who, ": q, k and v must be [B, L, H, D], got q ", q.str(),
           ", k ", k.str(), ", v ", v.str());
  DK_CHECK(k.dim(0) == q.dim(0) && k.dim(2) == q.dim(2) && k.dim(3) == q.dim(3) && v.shape() == k.shape(), who,
           ": k and v must be [B, Lk, H, D] matching q ", q.str(), ", got k ", k.str(), ", v ", v.str());
  DK_CHECK(q.device() == k.device() && q.device() == v.device(), who, ": q, k and v must be on one device, got ",
           q.device().str(), ", ", k.device().str(), ", ", v.device().str());
  for (const Tensor* t : {&q, &k, &v})
    DK_CHECK(t->dtype() == DType::F32 || t->dtype() == DType::F16 || t->dtype() == DType::BF16, who,
             ": q, k and v must be F32, F16 or BF16, got ", t->str());
  DK_CHECK(q.dim(3) > 0, who, ": head_dim must be positive, got q ", q.str());
}

namespace {

const char* role_name(Role role) {
  switch (role) {
    case Role::SelfAttention: return "self-attention";
    case Role::CrossAttention: return "cross-attention";
    case Role::JointAttention: return "joint attention";
  }
  return "attention";
}

void check_inputs(const Tensor& q, const Tensor& k, const Tensor& v, int64_t valid_keys) {
  check_operands("attention", q, k, v);
  DK_CHECK(k.dim(1) > 0, "attention: no keys (k ", k.str(), ")");
  DK_CHECK(valid_keys == -1 || (valid_keys >= 1 && valid_keys <= k.dim(1)), "attention: valid_keys must be -1 or in [1, ",
           k.dim(1), "], got ", valid_keys);
}

// Every pair visible: the all-FULL schedule, for the CUDA calls that need lse (the block-sparse
// kernel writes it, the dense one does not).
class AllVisible : public MaskRule {
 public:
  bool visible(int64_t, int64_t) const override { return true; }
  BlockClass classify(int64_t, int64_t, int64_t, int64_t) const override { return BlockClass::Full; }
};

}  // namespace

Tensor dense_attention(const Tensor& q, const Tensor& k, const Tensor& v, float scale, int64_t valid_keys,
                       Tensor* lse) {
  check_inputs(q, k, v, valid_keys);
  if (scale <= 0.0f) scale = 1.0f / std::sqrt(float(q.dim(3)));
  int64_t keys = valid_keys < 0 ? k.dim(1) : valid_keys;
  if (q.numel() == 0) {
    if (lse) *lse = Tensor::empty({q.dim(0), q.dim(2), q.dim(1)}, DType::F32, q.device());
    return Tensor::empty(q.shape(), q.dtype(), q.device());
  }
  if (q.device().is_cpu()) return dense_attention_cpu(q, k, v, scale, keys, lse);
#ifdef DITKIT_WITH_CUDA
  if (lse) {
    const BlockShape shape = kernel_block_shape(q.device());
    const BlockSchedule all = build_schedule(AllVisible(), q.dim(1), keys, shape.q_block, shape.k_block);
    return block_sparse_attention(q, k.narrow(1, 0, keys), v.narrow(1, 0, keys), all, scale, lse);
  }
  return dense_attention_cuda(q, k, v, scale, keys);
#else
  fail("attention: ", q.device().str(), " tensors need a build with CUDA");
#endif
}

Tensor attend(const Tensor& q, const Tensor& k, const Tensor& v, const TokenLayout& layout, const Site& at,
              const Control& control, float scale, const Positions* positions) {
  check_inputs(q, k, v, layout.valid_keys);
  // Self and joint attention attend the same tokens, plus NATTEN's additional keys.
  if (at.role != Role::CrossAttention && layout.text_position != TextPosition::AdditionalKV)
    DK_CHECK(q.dim(1) == k.dim(1), "attention (", role_name(at.role), ", layer ", at.layer,
             "): queries and keys must be the same tokens, got q ", q.str(), ", k ", k.str());

  AttentionCall call{at, layout, q, k, v, scale, positions, false, {}};
  call.site.row = control.row;
  const Site& site = call.site;
  std::vector<const Hook*> hooks;
  if (control.hooks)
    for (const auto& h : *control.hooks)
      if (h && h->applies(site)) hooks.push_back(h.get());
  for (const Hook* h : hooks) h->before(call);
  if (!hooks.empty()) check_inputs(call.q, call.k, call.v, call.layout.valid_keys);
  Tensor* lse = call.want_lse ? &call.lse : nullptr;
  // Keys a hook appended are visible to every query: only the dense kernel runs such a call.
  const bool appended = call.k.dim(1) != k.dim(1);

  Tensor out;
  if (!control.plan) {
    out = dense_attention(call.q, call.k, call.v, call.scale, appended ? -1 : call.layout.valid_keys, lse);
  } else {
    const Kind& kind = control.plan->kind_at(site);
    const float s = call.scale > 0.0f ? call.scale : kind.scale(call.q.dim(3));
    if (appended || kind.is_dense() || kind.dense_at(site)) {
      out = dense_attention(call.q, call.k, call.v, s, appended ? -1 : call.layout.valid_keys, lse);
    } else {
      const auto schedule = cached_schedule(kind, call.layout, call.q.dim(1), call.k.dim(1),
                                            kernel_block_shape(call.q.device()));
      // A pattern that hides nothing on this layout (a window as large as the grid) runs the dense kernel.
      out = schedule->density() == 1.0 ? dense_attention(call.q, call.k, call.v, s, -1, lse)
                                       : block_sparse_attention(call.q, call.k, call.v, *schedule, s, lse);
    }
  }
  for (const Hook* h : hooks) h->after(call, out);
  return out;
}

}  // namespace ditkit::attention
