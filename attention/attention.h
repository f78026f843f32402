// The one attention call every model makes. The layout says what the tokens are (video grid
// frames x height x width in patch units, plus text tokens joined to it); the site says where
// the call is (layer, step, role) so that plans and hooks can address it. Models never know
// which kind of attention runs.
#pragma once
#include <cstdint>
#include <functional>
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
  int row = 0;  // which sample of a lockstep batch (style / edit rows) the evaluation is for
};

class Plan;
class Hook;

// What the caller of a model evaluation asks of its attention calls: which kinds run where
// and which hooks act. Null = dense everywhere, no hooks.
struct Control {
  const Plan* plan = nullptr;
  const std::vector<std::shared_ptr<const Hook>>* hooks = nullptr;
  int row = 0;  // copied into every Site of the evaluation (Site::row)
};

// The RoPE positions of a self/joint attention call, for hooks that move tokens or append
// keys at other positions (ShiftPE): ids [tokens x axes] row-major in the call's canonical
// token order (FLUX: text then image ids; Wan: frame, row, column), and the model's rotation
// of x [B, n, H, D] by ids [n x axes].
struct Positions {
  const std::vector<int64_t>* ids = nullptr;
  int axes = 0;
  std::function<Tensor(const Tensor& x, const std::vector<int64_t>& ids)> rope;
};

// q [B, Lq, H, D], k and v [B, Lk, H, D] (strided views allowed); returns [B, Lq, H, D] in
// q's dtype. scale <= 0 means the kind's own (1/sqrt(D) for all but FreeSwim).
// `positions` (self/joint attention of RoPE models) is passed on to the hooks.
Tensor attend(const Tensor& q, const Tensor& k, const Tensor& v, const TokenLayout& layout, const Site& site,
              const Control& control = {}, float scale = 0.0f, const Positions* positions = nullptr);

// Dense attention kernel (flash-style: online softmax over key tiles, never materialises
// Lq x Lk): keys at index >= valid_keys (when valid_keys >= 0) are masked out. lse (optional)
// receives [B, H, Lq] f32 natural-log logsumexp of the scaled visible scores.
Tensor dense_attention(const Tensor& q, const Tensor& k, const Tensor& v, float scale, int64_t valid_keys = -1,
                       Tensor* lse = nullptr);

}  // namespace ditkit::attention
