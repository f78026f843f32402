#include "dit/wan.h"

#include <cmath>

#include "attention/hooks.h"
#include "core/ops.h"

namespace ditkit::dit {

using attention::Role;
using attention::Site;
using attention::TokenLayout;

Tensor sinusoidal_embedding(double t, int64_t dim) {
  DK_CHECK(dim > 0 && dim % 2 == 0, "sinusoidal embedding: dim ", dim, " must be positive and even");
  const int64_t half = dim / 2;
  std::vector<float> emb(dim);
  for (int64_t k = 0; k < half; ++k) {
    const double angle = t * std::pow(10000.0, -double(k) / double(half));
    emb[k] = float(std::cos(angle));
    emb[half + k] = float(std::sin(angle));
  }
  return Tensor::from_vector(emb, {1, dim});
}

WanModel::WanModel(const weights::ModelWeights& weights, const weights::WanDitConfig& config, Device device)
    : config_(config), device_(device) {
  DK_CHECK(config.model_type == "t2v", "wan dit: model_type '", config.model_type, "' is not supported (only t2v)");
  DK_CHECK(config.window_size[0] == -1 && config.window_size[1] == -1,
           "wan dit: local attention window_size (", config.window_size[0], ", ", config.window_size[1],
           ") is not supported (only (-1, -1))");
  weights::ModelConfig mc{weights::Family::wan_dit, config};
  weights::validate(mc, weights.shapes(), "wan dit weights");
  auto get = [&](const std::string& name) { return weights.get(name).to(device); };
  patch_w_ = get("patch_embedding.weight");
  patch_b_ = get("patch_embedding.bias");
  text0_w_ = get("text_embedding.0.weight");
  text0_b_ = get("text_embedding.0.bias");
  text2_w_ = get("text_embedding.2.weight");
  text2_b_ = get("text_embedding.2.bias");
  time0_w_ = get("time_embedding.0.weight");
  time0_b_ = get("time_embedding.0.bias");
  time2_w_ = get("time_embedding.2.weight");
  time2_b_ = get("time_embedding.2.bias");
  time_proj_w_ = get("time_projection.1.weight");
  time_proj_b_ = get("time_projection.1.bias");
  for (int64_t i = 0; i < config.num_layers; ++i) {
    const std::string p = cat("blocks.", i, ".");
    WanBlockWeights b;
    b.modulation = get(p + "modulation");
    b.sa_q_w = get(p + "self_attn.q.weight");
    b.sa_q_b = get(p + "self_attn.q.bias");
    b.sa_k_w = get(p + "self_attn.k.weight");
    b.sa_k_b = get(p + "self_attn.k.bias");
    b.sa_v_w = get(p + "self_attn.v.weight");
    b.sa_v_b = get(p + "self_attn.v.bias");
    b.sa_o_w = get(p + "self_attn.o.weight");
    b.sa_o_b = get(p + "self_attn.o.bias");
    b.ca_q_w = get(p + "cross_attn.q.weight");
    b.ca_q_b = get(p + "cross_attn.q.bias");
    b.ca_k_w = get(p + "cross_attn.k.weight");
    b.ca_k_b = get(p + "cross_attn.k.bias");
    b.ca_v_w = get(p + "cross_attn.v.weight");
    b.ca_v_b = get(p + "cross_attn.v.bias");
    b.ca_o_w = get(p + "cross_attn.o.weight");
    b.ca_o_b = get(p + "cross_attn.o.bias");
    if (config.qk_norm) {
      b.sa_norm_q = get(p + "self_attn.norm_q.weight");
      b.sa_norm_k = get(p + "self_attn.norm_k.weight");
      b.ca_norm_q = get(p + "cross_attn.norm_q.weight");
      b.ca_norm_k = get(p + "cross_attn.norm_k.weight");
    }
    if (config.cross_attn_norm) {
      b.norm3_w = get(p + "norm3.weight");
      b.norm3_b = get(p + "norm3.bias");
    }
    b.ffn0_w = get(p + "ffn.0.weight");
    b.ffn0_b = get(p + "ffn.0.bias");
    b.ffn2_w = get(p + "ffn.2.weight");
    b.ffn2_b = get(p + "ffn.2.bias");
    blocks_.push_back(std::move(b));
  }
  head_modulation_ = get("head.modulation");
  head_w_ = get("head.head.weight");
  head_b_ = get("head.head.bias");
}

Tensor WanModel::block(int layer, const Tensor& x, const Tensor& e0, const Tensor& context, const RopeTable& rope,
                       const std::vector<int64_t>& positions, const TokenLayout& grid, int step, attention::Pass pass,
                       const attention::Control& control) const {
  const WanBlockWeights& b = blocks_[layer];
  const int64_t L = x.dim(0), n = config_.num_heads, d = config_.dim / n;
  const float eps = float(config_.eps);
  auto name = [&](const char* what) { return cat("block", layer, "_", what); };
  // WanRMSNorm over the full dim (all heads together), or nothing without qk_norm.
  auto qk_norm = [&](const Tensor& t, const Tensor& w) { return config_.qk_norm ? ops::rms_norm(t, w, eps) : t; };

  // Modulation rows: shift_sa, scale_sa, gate_sa, shift_ffn, scale_ffn, gate_ffn (e0 first so the sum stays f32).
  const Tensor m = ops::add(e0, b.modulation).select(0, 0);
  auto row = [&](int64_t k) { return m.select(0, k); };

  // Self-attention with 3-axis RoPE over the video grid.
  const Tensor y = ops::modulate(ops::layer_norm(x, {}, {}, eps), row(1), row(0));
  tap(name("selfattn_in"), y);
  Tensor q = qk_norm(ops::linear(y, b.sa_q_w, b.sa_q_b), b.sa_norm_q).reshape({L, n, d});
  Tensor k = qk_norm(ops::linear(y, b.sa_k_w, b.sa_k_b), b.sa_norm_k).reshape({L, n, d});
  Tensor v = ops::linear(y, b.sa_v_w, b.sa_v_b).reshape({1, L, n, d});
  tap(name("q_normed"), q);
  tap(name("k_normed"), k);
  const Site self_site{Role::SelfAttention, layer, step, pass};
  attention::Positions at;
  if (control.hooks) {
    at = {&positions, 3, [this, d](const Tensor& t, const std::vector<int64_t>& ids) {
            const RopeTable r = rope_table(ids, wan_rope_axes(d), 10000.0, device_);
            return ops::rope(t, r.cos.unsqueeze(1), r.sin.unsqueeze(1));
          }};
    Tensor q4 = q.unsqueeze(0), k4 = k.unsqueeze(0);
    attention::run_normed_hooks(control, self_site, grid, &at, q4, k4, v);
    q = q4.select(0, 0);
    k = k4.select(0, 0);
  }
  // A hook may move the RoPE positions of this call; the layer then gets its own table.
  std::vector<int64_t> moved;
  const RopeTable table = attention::moved_positions(control, self_site, grid, positions, moved)
                              ? rope_table(moved, wan_rope_axes(d), 10000.0, device_)
                              : rope;
  const Tensor rope_cos = table.cos.unsqueeze(1), rope_sin = table.sin.unsqueeze(1);  // [L, 1, d/2]
  q = ops::rope(q, rope_cos, rope_sin);
  k = ops::rope(k, rope_cos, rope_sin);
  tap(name("q_rope"), q);
  tap(name("k_rope"), k);
  Tensor attn = attention::attend(q.unsqueeze(0), k.unsqueeze(0), v, grid, self_site, control, 0.0f,
                                  control.hooks ? &at : nullptr);
  attn = ops::linear(attn.reshape({L, config_.dim}), b.sa_o_w, b.sa_o_b);
  tap(name("selfattn_out"), attn);
  Tensor h = ops::add(x, ops::mul(attn, row(2)));

  // Cross-attention to every text_len context row: no RoPE, no modulation, no gate, no mask.
  const Tensor yc = config_.cross_attn_norm ? ops::layer_norm(h, b.norm3_w, b.norm3_b, eps) : h;
  tap(name("crossattn_in"), yc);
  const int64_t Lc = context.dim(0);
  const Tensor cq = qk_norm(ops::linear(yc, b.ca_q_w, b.ca_q_b), b.ca_norm_q).reshape({1, L, n, d});
  const Tensor ck = qk_norm(ops::linear(context, b.ca_k_w, b.ca_k_b), b.ca_norm_k).reshape({1, Lc, n, d});
  const Tensor cv = ops::linear(context, b.ca_v_w, b.ca_v_b).reshape({1, Lc, n, d});
  TokenLayout text_layout = grid;
  text_layout.valid_keys = -1;
  Tensor cross =
      attention::attend(cq, ck, cv, text_layout, Site{Role::CrossAttention, layer, step, pass}, control);
  cross = ops::linear(cross.reshape({L, config_.dim}), b.ca_o_w, b.ca_o_b);
  tap(name("crossattn_out"), cross);
  h = ops::add(h, cross);

  // Feed-forward with GELU (tanh approximation).
  const Tensor yf = ops::modulate(ops::layer_norm(h, {}, {}, eps), row(4), row(3));
  tap(name("ffn_in"), yf);
  const Tensor ffn = ops::linear(ops::gelu(ops::linear(yf, b.ffn0_w, b.ffn0_b), true), b.ffn2_w, b.ffn2_b);
  tap(name("ffn_out"), ffn);
  h = ops::add(h, ops::mul(ffn, row(5)));
  tap(name("out"), h);
  return h;
}

Tensor WanModel::forward(const Tensor& x_in, double t, const Tensor& context_in, int step,
                         const attention::Control& control, attention::Pass pass) const {
  const auto& c = config_;
  const auto [pt, ph, pw] = c.patch_size;
  DK_CHECK(x_in.ndim() == 4 && x_in.dim(0) == c.in_dim, "wan dit: latent must be [", c.in_dim, ", F, H, W], got ",
           x_in.str());
  DK_CHECK(x_in.dim(1) % pt == 0 && x_in.dim(2) % ph == 0 && x_in.dim(3) % pw == 0, "wan dit: latent ", x_in.str(),
           " is not divisible by the patch size (", pt, ", ", ph, ", ", pw, ")");
  DK_CHECK(context_in.ndim() == 2 && context_in.dim(1) == c.text_dim && context_in.dim(0) <= c.text_len,
           "wan dit: context must be [<= ", c.text_len, ", ", c.text_dim, "], got ", context_in.str());
  const Tensor x = ops::cast(x_in.to(device_), DType::F32);
  const Tensor context = ops::cast(context_in.to(device_), DType::F32);
  const int64_t f = x.dim(1) / pt, h = x.dim(2) / ph, w = x.dim(3) / pw, L = f * h * w;

  // Patchify (Conv3d, kernel = stride = patch) into tokens [L, dim] in (f, h, w) order.
  const Tensor patches = ops::conv3d(x.unsqueeze(0), patch_w_, patch_b_, {pt, ph, pw}).select(0, 0);
  tap("patch_embed", patches);
  Tensor tokens = ops::permute(patches.reshape({c.dim, L}), {1, 0});

  // Time embedding e [1, dim] and the six block modulations e0 [6, dim].
  const Tensor sinusoid = sinusoidal_embedding(t, c.freq_dim).to(device_);
  tap("t_sinusoid", sinusoid);
  const Tensor e = ops::linear(ops::silu(ops::linear(sinusoid, time0_w_, time0_b_)), time2_w_, time2_b_);
  const Tensor e0 = ops::linear(ops::silu(e), time_proj_w_, time_proj_b_).reshape({6, c.dim});
  tap("time_e", e);
  tap("time_e0", e0.unsqueeze(0));

  // Text: zero rows up to text_len (in T5 output space), then the MLP.
  const Tensor padded = ops::pad(context, {0, 0, 0, c.text_len - context.dim(0)});
  const Tensor text = ops::linear(ops::gelu(ops::linear(padded, text0_w_, text0_b_), true), text2_w_, text2_b_);
  tap("text_emb", text);

  const std::vector<int64_t> positions = grid_positions(f, h, w);
  const RopeTable rope = rope_table(positions, wan_rope_axes(c.dim / c.num_heads), 10000.0, device_);
  TokenLayout grid;
  grid.frames = f;
  grid.height = h;
  grid.width = w;
  grid.valid_keys = L;
  for (int layer = 0; layer < int(c.num_layers); ++layer)
    tokens = block(layer, tokens, e0, text, rope, positions, grid, step, pass, control);

  // Head: 2-way modulation from e (not e0), then unpatchify (pt, ph, pw, c with c fastest).
  const Tensor hm = ops::add(e.unsqueeze(0), head_modulation_).select(0, 0);  // [2, dim]: shift, scale
  const Tensor out = ops::linear(ops::modulate(ops::layer_norm(tokens, {}, {}, float(c.eps)), hm.select(0, 1),
                                               hm.select(0, 0)),
                                 head_w_, head_b_);
  tap("head_out", out);
  const Tensor grid_out = ops::permute(out.reshape({f, h, w, pt, ph, pw, c.out_dim}), {6, 0, 3, 1, 4, 2, 5});
  return grid_out.reshape({c.out_dim, f * pt, h * ph, w * pw});
}

}  // namespace ditkit::dit
