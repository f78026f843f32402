// FLUX.1 MM-DiT (black-forest-labs/flux src/flux/model.py Flux, modules/layers.py). One call of
// forward() is one model evaluation on one image: packed latent tokens, their position ids, the
// T5 text tokens and the pooled CLIP vector -> velocity for the packed tokens. Double-stream
// blocks keep separate img/txt weights around one joint attention; single-stream blocks run
// the joined [txt; img] sequence through one fused linear. Every attention call goes through
// attention::attend() with the text as a prefix of the image grid, so attention kinds and
// hooks apply. Weights stay in their stored dtype; activations are f32 on the model's device.
#pragma once
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "attention/attention.h"
#include "core/tensor.h"
#include "dit/rope.h"
#include "weights/layout.h"

namespace ditkit::dit {

// One stream (img or txt) of a DoubleStreamBlock: its modulation, attention and MLP weights.
struct FluxStreamWeights {
  Tensor mod_w, mod_b;              // {img,txt}_mod.lin  [6H, H]
  Tensor qkv_w, qkv_b;              // {img,txt}_attn.qkv [3H, H] (bias only with qkv_bias)
  Tensor norm_q, norm_k;            // {img,txt}_attn.norm.{query,key}_norm.scale [D]
  Tensor proj_w, proj_b;            // {img,txt}_attn.proj [H, H]
  Tensor mlp0_w, mlp0_b, mlp2_w, mlp2_b;  // {img,txt}_mlp.0 [M, H], .2 [H, M]
};

struct FluxDoubleBlockWeights {
  FluxStreamWeights img, txt;
};

struct FluxSingleBlockWeights {
  Tensor mod_w, mod_b;          // modulation.lin [3H, H]
  Tensor linear1_w, linear1_b;  // [3H + M, H]
  Tensor linear2_w, linear2_b;  // [H, H + M]
  Tensor norm_q, norm_k;        // norm.{query,key}_norm.scale [D]
};

class FluxModel {
 public:
  // Checks every expected tensor against `config` (throws listing missing/mismatched names)
  // and keeps them in their stored dtype on `device`.
  FluxModel(const weights::ModelWeights& weights, const weights::FluxDitConfig& config,
            Device device = Device::cpu());

  // img [L_img, in_channels] packed latent tokens (pack_latents), img_ids [L_img, 3]
  // (image_ids), txt [L_txt, context_in_dim] (all T5 rows, padding included), txt_ids [L_txt, 3]
  // (zeros), timestep t in [0, 1] (x1000 happens inside), y [vec_in_dim] or [1, vec_in_dim]
  // (pooled CLIP), guidance the raw distilled-guidance value (ignored without guidance_embed).
  // Returns the velocity [L_img, out_channels].
  // The attention layout is the image grid read from img_ids (rows x columns, row-major, as
  // image_ids makes them) with the L_txt text tokens as a prefix; ids that do not form such a
  // grid give a 1 x L_img layout. Sites: Role::JointAttention, layer = global FLUX index
  // (double blocks 0..depth-1, then single blocks), `step` and `pass` as given; `control` goes
  // unchanged to every attention call.
  Tensor forward(const Tensor& img, const Tensor& img_ids, const Tensor& txt, const Tensor& txt_ids, double timestep,
                 const Tensor& y, double guidance, int step = -1, const attention::Control& control = {},
                 attention::Pass pass = attention::Pass::Cond) const;

  // Debugging: receives intermediates under the golden's names without the "caseK.dbg." prefix
  // and without the batch dimension ("timestep_embedding", "vec", "double0.img_mod_lin_out",
  // "double0.attn.q" [heads, T+L, D], "double0.attn.out" [T+L, H], "double1_out.img",
  // "single0.linear1_out", "single1_out", "final_layer_in", "final_layer.adaLN_out", ...).
  using Tap = std::function<void(const std::string& name, const Tensor& value)>;
  void set_tap(Tap tap) { tap_ = std::move(tap); }

  const weights::FluxDitConfig& config() const { return config_; }
  Device device() const { return device_; }
  int64_t head_dim() const { return config_.hidden_size / config_.num_heads; }
  int64_t mlp_hidden() const { return int64_t(double(config_.hidden_size) * config_.mlp_ratio); }
  int num_layers() const { return int(config_.depth + config_.depth_single_blocks); }

 private:
  struct Context;  // per-forward state shared by the blocks (vec, RoPE, layout, site labels)
  // DoubleStreamBlock on img [L, H] and txt [T, H], both updated in place.
  void double_block(int i, Tensor& img, Tensor& txt, const Context& ctx) const;
  // SingleStreamBlock on x = [txt; img] [T + L, H].
  Tensor single_block(int j, const Tensor& x, const Context& ctx) const;
  // q, k [T+L, heads, D] after QK norm: normed-stage hooks, RoPE (hook-moved positions if any),
  // attend, merge heads.
  Tensor attention(int layer, const std::string& name, Tensor q, Tensor k, Tensor v, const Context& ctx) const;
  void tap(const std::string& name, const Tensor& value) const {
    if (tap_) tap_(name, value);
  }

  weights::FluxDitConfig config_;
  Device device_;
  Tensor img_in_w_, img_in_b_, txt_in_w_, txt_in_b_;
  Tensor time_in0_w_, time_in0_b_, time_in1_w_, time_in1_b_;
  Tensor guidance_in0_w_, guidance_in0_b_, guidance_in1_w_, guidance_in1_b_;
  Tensor vector_in0_w_, vector_in0_b_, vector_in1_w_, vector_in1_b_;
  std::vector<FluxDoubleBlockWeights> double_blocks_;
  std::vector<FluxSingleBlockWeights> single_blocks_;
  Tensor final_mod_w_, final_mod_b_, final_w_, final_b_;
  Tap tap_;
};

// flux/modules/layers.py timestep_embedding(t, dim) as the official code computes it in
// float32: value = 1000 t, freq_k = exp(-ln(10000) k / (dim/2)), [cos(value freq), sin(value freq)]
// (cos half first). Returns [1, dim] f32. Used for the timestep and the guidance.
Tensor flux_timestep_embedding(double t, int64_t dim = 256);

// The RoPE table of position ids [tokens, axes] (float values allowed: fractional, negative)
// with axis a rotating axes_dim[a] head-dim elements (EmbedND / rope in flux/math.py).
RopeTable flux_rope(const Tensor& ids, const std::vector<int64_t>& axes_dim, double theta,
                    Device device = Device::cpu());

// 2x2 packing of sampling.py prepare / unpack. latent [C, 2h, 2w] -> tokens [h*w, 4C], token
// row*w + col, channel c*4 + dy*2 + dx. unpack_latents is the inverse: tokens [h*w, 4C] and the
// latent height 2h and width 2w -> [C, 2h, 2w].
Tensor pack_latents(const Tensor& latent);
Tensor unpack_latents(const Tensor& tokens, int64_t latent_height, int64_t latent_width);

// Position ids [h*w, 3] f32 of an h x w grid of packed tokens: (0, row, col), row-major.
Tensor image_ids(int64_t h, int64_t w);

}  // namespace ditkit::dit
