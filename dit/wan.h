// Wan2.1 text-to-video DiT (wan/modules/model.py WanModel, model_type 't2v'). One call of
// forward() is one model evaluation: latent [in_dim, F, H, W], timestep, T5 context ->
// velocity [out_dim, F, H, W]. Weights come in through ModelWeights (official names, stored
// dtype); activations are f32 on the model's device.
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

struct WanBlockWeights {
  Tensor modulation;  // [1, 6, dim]
  Tensor sa_q_w, sa_q_b, sa_k_w, sa_k_b, sa_v_w, sa_v_b, sa_o_w, sa_o_b, sa_norm_q, sa_norm_k;
  Tensor norm3_w, norm3_b;
  Tensor ca_q_w, ca_q_b, ca_k_w, ca_k_b, ca_v_w, ca_v_b, ca_o_w, ca_o_b, ca_norm_q, ca_norm_k;
  Tensor ffn0_w, ffn0_b, ffn2_w, ffn2_b;
};

class WanModel {
 public:
  // Checks every expected tensor against `config` (throws listing missing/mismatched names)
  // and keeps them in their stored dtype on `device`.
  WanModel(const weights::ModelWeights& weights, const weights::WanDitConfig& config,
           Device device = Device::cpu());

  // x [in_dim, F, H, W] (F, H, W multiples of the patch size), t the sampler timestep,
  // context [Lc, text_dim] with Lc <= text_len (the trimmed T5 output; zero-padded to text_len
  // inside, as the official model does). `step` and `pass` label the attention calls (their
  // Site); `control` goes unchanged to every attention call (which kinds run, which hooks act).
  Tensor forward(const Tensor& x, double t, const Tensor& context, int step = -1,
                 const attention::Control& control = {}, attention::Pass pass = attention::Pass::Cond) const;

  // Debugging: receives intermediates under the names of the golden reference
  // ("patch_embed", "time_e", "block0_q_rope", "head_out", ...). Off when empty.
  using Tap = std::function<void(const std::string& name, const Tensor& value)>;
  void set_tap(Tap tap) { tap_ = std::move(tap); }

  const weights::WanDitConfig& config() const { return config_; }
  Device device() const { return device_; }

 private:
  // One WanAttentionBlock on tokens x [L, dim]; e0 [6, dim], context the embedded text [text_len, dim].
  Tensor block(int layer, const Tensor& x, const Tensor& e0, const Tensor& context, const RopeTable& rope,
               const std::vector<int64_t>& positions,
               const attention::TokenLayout& grid, int step, attention::Pass pass,
               const attention::Control& control) const;
  void tap(const std::string& name, const Tensor& value) const {
    if (tap_) tap_(name, value);
  }

  weights::WanDitConfig config_;
  Device device_;
  Tensor patch_w_, patch_b_;
  Tensor text0_w_, text0_b_, text2_w_, text2_b_;
  Tensor time0_w_, time0_b_, time2_w_, time2_b_, time_proj_w_, time_proj_b_;
  std::vector<WanBlockWeights> blocks_;
  Tensor head_modulation_, head_w_, head_b_;
  Tap tap_;
};

// The sinusoidal timestep embedding [1, dim] of wan/modules/model.py sinusoidal_embedding_1d:
// [cos(t w_k), sin(t w_k)], w_k = 10000^(-k / (dim/2)), computed in float64, returned as f32.
Tensor sinusoidal_embedding(double t, int64_t dim);

}  // namespace ditkit::dit
