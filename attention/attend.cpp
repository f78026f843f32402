// attend(): checks the call, picks the kind of attention for the site and runs it. Every site
// runs dense for now; a plan (sparse kinds per layer/step) plugs in at kind_for().
#include <cmath>

#include "attention/attention.h"
#include "attention/dense.h"

namespace ditkit::attention {
namespace {

enum class Kind { Dense };

Kind kind_for(const TokenLayout&, const Site&) { return Kind::Dense; }

const char* role_name(Role role) {
  switch (role) {
    case Role::SelfAttention: return "self-attention";
    case Role::CrossAttention: return "cross-attention";
    case Role::JointAttention: return "joint attention";
  }
  return "attention";
}

void check_inputs(const Tensor& q, const Tensor& k, const Tensor& v, int64_t valid_keys) {
  DK_CHECK(q.ndim() == 4 && k.ndim() == 4 && v.ndim() == 4, "attention: q, k and v must be [B, L, H, D], got q ",
           q.str(), ", k ", k.str(), ", v ", v.str());
  DK_CHECK(k.dim(0) == q.dim(0) && k.dim(2) == q.dim(2) && k.dim(3) == q.dim(3) && v.shape() == k.shape(),
           "attention: k and v must be [B, Lk, H, D] matching q ", q.str(), ", got k ", k.str(), ", v ", v.str());
  DK_CHECK(q.device() == k.device() && q.device() == v.device(), "attention: q, k and v must be on one device, got ",
           q.device().str(), ", ", k.device().str(), ", ", v.device().str());
  for (const Tensor* t : {&q, &k, &v})
    DK_CHECK(t->dtype() == DType::F32 || t->dtype() == DType::F16 || t->dtype() == DType::BF16,
             "attention: q, k and v must be F32, F16 or BF16, got ", t->str());
  DK_CHECK(q.dim(3) > 0, "attention: head_dim must be positive, got q ", q.str());
  DK_CHECK(k.dim(1) > 0, "attention: no keys (k ", k.str(), ")");
  DK_CHECK(valid_keys == -1 || (valid_keys >= 1 && valid_keys <= k.dim(1)), "attention: valid_keys must be -1 or in [1, ",
           k.dim(1), "], got ", valid_keys);
}

}  // namespace

Tensor dense_attention(const Tensor& q, const Tensor& k, const Tensor& v, float scale, int64_t valid_keys) {
  check_inputs(q, k, v, valid_keys);
  if (scale <= 0.0f) scale = 1.0f / std::sqrt(float(q.dim(3)));
  int64_t keys = valid_keys < 0 ? k.dim(1) : valid_keys;
  if (q.numel() == 0) return Tensor::empty(q.shape(), q.dtype(), q.device());
  if (q.device().is_cpu()) return dense_attention_cpu(q, k, v, scale, keys);
#ifdef DITKIT_WITH_CUDA
  return dense_attention_cuda(q, k, v, scale, keys);
#else
  fail("attention: ", q.device().str(), " tensors need a build with CUDA");
#endif
}

Tensor attend(const Tensor& q, const Tensor& k, const Tensor& v, const TokenLayout& layout, const Site& site,
              float scale) {
  check_inputs(q, k, v, layout.valid_keys);
  if (site.role != Role::CrossAttention)
    DK_CHECK(q.dim(1) == k.dim(1), "attention (", role_name(site.role), ", layer ", site.layer,
             "): queries and keys must be the same tokens, got q ", q.str(), ", k ", k.str());
  switch (kind_for(layout, site)) {
    case Kind::Dense: return dense_attention(q, k, v, scale, layout.valid_keys);
  }
  fail("attention: unknown kind");
}

}  // namespace ditkit::attention
