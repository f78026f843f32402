// The one attention call every model makes. The layout says what the tokens are (video grid
// frames x height x width in patch units, plus text tokens joined to it); the site says where
// the call is (layer, step, role) so that plans and hooks can address it. Models never know
// which kind of attention runs.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace ditkit::attention {

// FLUX puts text first, HunyuanVideo last; AdditionalKV: extra keys after the grid's keys that
// every grid query sees (NATTEN's additional_keys), with no text queries.
enum class TextPosition { None, Prefix, Suffix, AdditionalKV };

struct TokenLayout {
  int64_t frames = 1, height = 1, width = 1;  // the video/image grid, row-major (t, h, w)
  int64_t text_tokens = 0;                    // text tokens joined to the grid (joint attention)
  TextPosition text_position = TextPosition::None;
  int64_t valid_keys = -1;  // keys at or beyond this index are padding and never attended (-1: all valid)
  int64_t grid_tokens() const { return frames * height * width; }
};

enum class Role { SelfAttention, CrossAttention, JointAttention };

// Which model evaluation a call belongs to: CFG's two passes, PAG's perturbed pass, the full
// branch of FreeSwim's dual path.
enum class Pass { Cond, Uncond, Perturbed, FullBranch };

struct Site {
  Role role = Role::SelfAttention;
  int layer = -1;  // block index within the model (FLUX: global 0..56)
  int step = -1;   // sampler step (0-based)
  Pass pass = Pass::Cond;
};

class Plan;
class Hook;

// What the caller of a model evaluation asks of its attention calls: which kinds run where
// and which hooks act. Null = dense everywhere, no hooks.
struct Control {
  const Plan* plan = nullptr;
  const std::vector<std::shared_ptr<const Hook>>* hooks = nullptr;
};

// q [B, Lq, H, D], k and v [B, Lk, H, D] (strided views allowed); returns [B, Lq, H, D] in
// q's dtype. scale <= 0 means the kind's own (1/sqrt(D) for all but FreeSwim).
Tensor attend(const Tensor& q, const Tensor& k, const Tensor& v, const TokenLayout& layout, const Site& site,
              const Control& control = {}, float scale = 0.0f);

// Dense attention kernel (flash-style: online softmax over key tiles, never materialises
// Lq x Lk): keys at index >= valid_keys (when valid_keys >= 0) are masked out.
Tensor dense_attention(const Tensor& q, const Tensor& k, const Tensor& v, float scale, int64_t valid_keys = -1);

}  // namespace ditkit::attention
