// FLUX.1 MM-DiT forward (src/flux/model.py, src/flux/modules/layers.py, src/flux/math.py).
#include "dit/flux.h"

#include <algorithm>
#include <cmath>

#include "attention/hooks.h"
#include "core/ops.h"

namespace ditkit::dit {

using attention::Role;
using attention::Site;
using attention::TokenLayout;

namespace {

constexpr float kEps = 1e-6f;  // LayerNorm (no affine) and QK RMSNorm

// Rows of a modulation vector split into `n` chunks of the hidden size (shift, scale, gate, ...).
struct Chunks {
  Tensor m;  // [n, H]
  Tensor operator[](int64_t k) const { return m.select(0, k); }
};

Chunks modulation(const Tensor& silu_vec, const Tensor& w, const Tensor& b, int64_t n, int64_t hidden) {
  return {ops::linear(silu_vec, w, b).reshape({n, hidden})};
}

// MLPEmbedder: out_layer(SiLU(in_layer(x))).
Tensor mlp_embedder(const Tensor& x, const Tensor& w0, const Tensor& b0, const Tensor& w1, const Tensor& b1) {
  return ops::linear(ops::silu(ops::linear(x, w0, b0)), w1, b1);
}

std::vector<double> to_doubles(const Tensor& t) {
  const std::vector<float> f = t.to_vector();
  return std::vector<double>(f.begin(), f.end());
}

// The grid (rows, cols) when ids [L, 3] are image_ids(rows, cols), else (1, L).
std::pair<int64_t, int64_t> grid_of(const std::vector<double>& ids, int64_t tokens) {
  double max_col = 0;
  for (int64_t n = 0; n < tokens; ++n) max_col = std::max(max_col, ids[n * 3 + 2]);
  const int64_t cols = int64_t(max_col) + 1;
  if (cols <= 0 || tokens % cols != 0) return {1, tokens};
  for (int64_t n = 0; n < tokens; ++n)
    if (ids[n * 3] != 0 || ids[n * 3 + 1] != double(n / cols) || ids[n * 3 + 2] != double(n % cols))
      return {1, tokens};
  return {tokens / cols, cols};
}

}  // namespace

Tensor flux_timestep_embedding(double t, int64_t dim) {
  DK_CHECK(dim > 0 && dim % 2 == 0, "flux timestep embedding: dim ", dim, " must be positive and even");
  const int64_t half = dim / 2;
  // Every step in float32 as the official code does it: its error (~ulp(1000 t)) is part of the golden.
  const float value = 1000.0f * float(t);
  const float log_period = float(-std::log(10000.0));
  std::vector<float> emb(dim);
  for (int64_t k = 0; k < half; ++k) {
    const float freq = std::exp(log_period * float(k) / float(half));
    const float arg = value * freq;
    emb[k] = float(std::cos(double(arg)));
    emb[half + k] = float(std::sin(double(arg)));
  }
  return Tensor::from_vector(emb, {1, dim});
}

RopeTable flux_rope(const Tensor& ids, const std::vector<int64_t>& axes_dim, double theta, Device device) {
  DK_CHECK(ids.ndim() == 2 && ids.dim(1) == int64_t(axes_dim.size()), "flux rope: ids must be [tokens, ",
           axes_dim.size(), "], got ", ids.str());
  return rope_table(to_doubles(ids), axes_dim, theta, device);
}

Tensor pack_latents(const Tensor& latent) {
  DK_CHECK(latent.ndim() == 3 && latent.dim(1) % 2 == 0 && latent.dim(2) % 2 == 0,
           "flux pack: latent must be [C, 2h, 2w] with even height and width, got ", latent.str());
  const int64_t c = latent.dim(0), h = latent.dim(1) / 2, w = latent.dim(2) / 2;
  // "c (h ph) (w pw) -> (h w) (c ph pw)"
  return ops::permute(latent.reshape({c, h, 2, w, 2}), {1, 3, 0, 2, 4}).reshape({h * w, c * 4});
}

Tensor unpack_latents(const Tensor& tokens, int64_t latent_height, int64_t latent_width) {
  DK_CHECK(latent_height % 2 == 0 && latent_width % 2 == 0 && latent_height > 0 && latent_width > 0,
           "flux unpack: latent size ", latent_height, "x", latent_width, " must be even and positive");
  const int64_t h = latent_height / 2, w = latent_width / 2;
  DK_CHECK(tokens.ndim() == 2 && tokens.dim(0) == h * w && tokens.dim(1) % 4 == 0, "flux unpack: tokens must be [",
           h * w, ", 4C] for a ", latent_height, "x", latent_width, " latent, got ", tokens.str());
  const int64_t c = tokens.dim(1) / 4;
  return ops::permute(tokens.reshape({h, w, c, 2, 2}), {2, 0, 3, 1, 4}).reshape({c, latent_height, latent_width});
}

Tensor image_ids(int64_t h, int64_t w) {
  DK_CHECK(h > 0 && w > 0, "flux image ids: grid ", h, "x", w, " must be positive");
  std::vector<float> ids;
  ids.reserve(h * w * 3);
  for (int64_t r = 0; r < h; ++r)
    for (int64_t c = 0; c < w; ++c) ids.insert(ids.end(), {0.0f, float(r), float(c)});
  return Tensor::from_vector(ids, {h * w, 3});
}

FluxModel::FluxModel(const weights::ModelWeights& weights, const weights::FluxDitConfig& config, Device device)
    : config_(config), device_(device) {
  DK_CHECK(config.num_heads > 0 && config.hidden_size % config.num_heads == 0, "flux dit: hidden_size ",
           config.hidden_size, " is not divisible by num_heads ", config.num_heads);
  int64_t axes_sum = 0;
  for (int64_t d : config.axes_dim) axes_sum += d;
  DK_CHECK(config.axes_dim.size() == 3 && axes_sum == head_dim(), "flux dit: axes_dim must be 3 widths summing to ",
           "the head dim ", head_dim());
  weights::ModelConfig mc{weights::Family::flux_dit, config};
  weights::validate(mc, weights.shapes(), "flux dit weights");
  auto get = [&](const std::string& name) { return weights.get(name).to(device); };
  auto get_linear = [&](const std::string& p, Tensor& w, Tensor& b, bool bias = true) {
    w = get(p + ".weight");
    if (bias) b = get(p + ".bias");
  };
  get_linear("img_in", img_in_w_, img_in_b_);
  get_linear("txt_in", txt_in_w_, txt_in_b_);
  get_linear("time_in.in_layer", time_in0_w_, time_in0_b_);
  get_linear("time_in.out_layer", time_in1_w_, time_in1_b_);
  if (config.guidance_embed) {
    get_linear("guidance_in.in_layer", guidance_in0_w_, guidance_in0_b_);
    get_linear("guidance_in.out_layer", guidance_in1_w_, guidance_in1_b_);
  }
  get_linear("vector_in.in_layer", vector_in0_w_, vector_in0_b_);
  get_linear("vector_in.out_layer", vector_in1_w_, vector_in1_b_);
  for (int64_t i = 0; i < config.depth; ++i) {
    FluxDoubleBlockWeights b;
    for (const char* stream : {"img", "txt"}) {
      const std::string p = cat("double_blocks.", i, ".", stream);
      FluxStreamWeights& s = std::string(stream) == "img" ? b.img : b.txt;
      get_linear(p + "_mod.lin", s.mod_w, s.mod_b);
      get_linear(p + "_attn.qkv", s.qkv_w, s.qkv_b, config.qkv_bias);
      s.norm_q = get(p + "_attn.norm.query_norm.scale");
      s.norm_k = get(p + "_attn.norm.key_norm.scale");
      get_linear(p + "_attn.proj", s.proj_w, s.proj_b);
      get_linear(p + "_mlp.0", s.mlp0_w, s.mlp0_b);
      get_linear(p + "_mlp.2", s.mlp2_w, s.mlp2_b);
    }
    double_blocks_.push_back(std::move(b));
  }
  for (int64_t j = 0; j < config.depth_single_blocks; ++j) {
    const std::string p = cat("single_blocks.", j, ".");
    FluxSingleBlockWeights b;
    get_linear(p + "modulation.lin", b.mod_w, b.mod_b);
    get_linear(p + "linear1", b.linear1_w, b.linear1_b);
    get_linear(p + "linear2", b.linear2_w, b.linear2_b);
    b.norm_q = get(p + "norm.query_norm.scale");
    b.norm_k = get(p + "norm.key_norm.scale");
    single_blocks_.push_back(std::move(b));
  }
  get_linear("final_layer.adaLN_modulation.1", final_mod_w_, final_mod_b_);
  get_linear("final_layer.linear", final_w_, final_b_);
}

struct FluxModel::Context {
  Tensor silu_vec;           // SiLU(vec) [1, H], the input of every modulation
  Tensor rope_cos, rope_sin;  // [T + L, 1, D/2]
  std::vector<int64_t> positions;  // the ids as integers, for position hooks (only with hooks)
  TokenLayout layout;
  int step;
  attention::Pass pass;
  const attention::Control* control;
};

Tensor FluxModel::attention(int layer, const std::string& name, Tensor q, Tensor k, Tensor v,
                            const Context& ctx) const {
  const int64_t n = q.dim(0);
  if (tap_) {
    tap(name + ".q", ops::permute(q, {1, 0, 2}));
    tap(name + ".k", ops::permute(k, {1, 0, 2}));
    tap(name + ".v", ops::permute(v, {1, 0, 2}));
  }
  const Site site{Role::JointAttention, layer, ctx.step, ctx.pass};
  attention::Positions positions;
  if (ctx.control->hooks) {
    positions = {&ctx.positions, 3, [this](const Tensor& x, const std::vector<int64_t>& ids) {
                   const RopeTable t = rope_table(ids, config_.axes_dim, config_.theta, device_);
                   return ops::rope(x, t.cos.unsqueeze(1), t.sin.unsqueeze(1));
                 }};
    Tensor q4 = q.unsqueeze(0), k4 = k.unsqueeze(0), v4 = v.unsqueeze(0);
    attention::run_normed_hooks(*ctx.control, site, ctx.layout, &positions, q4, k4, v4);
    q = q4.select(0, 0);
    k = k4.select(0, 0);
    v = v4.select(0, 0);
  }
  // A hook may move the RoPE positions of this call; the layer then gets its own table.
  Tensor cos = ctx.rope_cos, sin = ctx.rope_sin;
  std::vector<int64_t> moved;
  if (attention::moved_positions(*ctx.control, site, ctx.layout, ctx.positions, moved)) {
    const RopeTable t = rope_table(moved, config_.axes_dim, config_.theta, device_);
    cos = t.cos.unsqueeze(1);
    sin = t.sin.unsqueeze(1);
  }
  q = ops::rope(q, cos, sin);
  k = ops::rope(k, cos, sin);
  if (tap_) {
    tap(name + ".q_rope", ops::permute(q, {1, 0, 2}));
    tap(name + ".k_rope", ops::permute(k, {1, 0, 2}));
  }
  const Tensor out = attention::attend(q.unsqueeze(0), k.unsqueeze(0), v.unsqueeze(0), ctx.layout, site, *ctx.control,
                                       0.0f, ctx.control->hooks ? &positions : nullptr)
                         .reshape({n, config_.hidden_size});
  tap(name + ".out", out);
  return out;
}

void FluxModel::double_block(int i, Tensor& img, Tensor& txt, const Context& ctx) const {
  const FluxDoubleBlockWeights& b = double_blocks_[i];
  const int64_t H = config_.hidden_size, heads = config_.num_heads, D = head_dim();
  const int64_t T = txt.dim(0), L = img.dim(0);
  const std::string name = cat("double", i);

  // Per stream: modulation (shift1, scale1, gate1, shift2, scale2, gate2), then q/k/v of the
  // modulated norm with QK RMSNorm per head.
  struct Stream {
    const char* name;
    const FluxStreamWeights* w;
    Tensor* x;
    Chunks mod;
    Tensor q, k, v;
  };
  Stream streams[2] = {{"txt", &b.txt, &txt, {}, {}, {}, {}}, {"img", &b.img, &img, {}, {}, {}, {}}};  // txt first
  for (Stream& s : streams) {
    s.mod = modulation(ctx.silu_vec, s.w->mod_w, s.w->mod_b, 6, H);
    tap(cat(name, ".", s.name, "_mod_lin_out"), s.mod.m.reshape({6 * H}));
    const Tensor x_mod = ops::modulate(ops::layer_norm(*s.x, {}, {}, kEps), s.mod[1], s.mod[0]);
    const Tensor qkv = ops::linear(x_mod, s.w->qkv_w, s.w->qkv_b).reshape({s.x->dim(0), 3, heads, D});
    s.q = ops::rms_norm(qkv.select(1, 0), s.w->norm_q, kEps);
    s.k = ops::rms_norm(qkv.select(1, 1), s.w->norm_k, kEps);
    s.v = qkv.select(1, 2);
  }
  // Joint attention over [txt; img].
  const Tensor attn = attention(i, name + ".attn", ops::concat({streams[0].q, streams[1].q}, 0),
                                ops::concat({streams[0].k, streams[1].k}, 0),
                                ops::concat({streams[0].v, streams[1].v}, 0), ctx);
  const Tensor parts[2] = {attn.narrow(0, 0, T), attn.narrow(0, T, L)};
  for (int si = 0; si < 2; ++si) {
    const Stream& s = streams[si];
    const FluxStreamWeights& w = *s.w;
    Tensor x = ops::add(*s.x, ops::mul(ops::linear(parts[si], w.proj_w, w.proj_b), s.mod[2]));
    const Tensor x_mod = ops::modulate(ops::layer_norm(x, {}, {}, kEps), s.mod[4], s.mod[3]);
    const Tensor mlp = ops::linear(ops::gelu(ops::linear(x_mod, w.mlp0_w, w.mlp0_b), true), w.mlp2_w, w.mlp2_b);
    *s.x = ops::add(x, ops::mul(mlp, s.mod[5]));
  }
  tap(name + "_out.img", img);
  tap(name + "_out.txt", txt);
}

Tensor FluxModel::single_block(int j, const Tensor& x, const Context& ctx) const {
  const FluxSingleBlockWeights& b = single_blocks_[j];
  const int64_t H = config_.hidden_size, heads = config_.num_heads, D = head_dim(), M = mlp_hidden();
  const int64_t n = x.dim(0);
  const std::string name = cat("single", j);

  const Chunks mod = modulation(ctx.silu_vec, b.mod_w, b.mod_b, 3, H);  // shift, scale, gate
  tap(name + ".mod_lin_out", mod.m.reshape({3 * H}));
  const Tensor x_mod = ops::modulate(ops::layer_norm(x, {}, {}, kEps), mod[1], mod[0]);
  const Tensor lin1 = ops::linear(x_mod, b.linear1_w, b.linear1_b);
  tap(name + ".linear1_out", lin1);
  // linear1 = [qkv (3H) | mlp (M)]; linear2 takes [attention (H) | GELU(mlp) (M)].
  const std::vector<Tensor> parts = ops::split(lin1, {3 * H, M}, 1);
  const Tensor qkv = parts[0].reshape({n, 3, heads, D});
  const Tensor attn = attention(int(config_.depth) + j, name + ".attn", ops::rms_norm(qkv.select(1, 0), b.norm_q, kEps),
                                ops::rms_norm(qkv.select(1, 1), b.norm_k, kEps), qkv.select(1, 2), ctx);
  const Tensor out =
      ops::linear(ops::concat({attn, ops::gelu(parts[1], true)}, 1), b.linear2_w, b.linear2_b);
  const Tensor y = ops::add(x, ops::mul(out, mod[2]));
  tap(name + "_out", y);
  return y;
}

Tensor FluxModel::forward(const Tensor& img_in, const Tensor& img_ids, const Tensor& txt_in, const Tensor& txt_ids,
                          double timestep, const Tensor& y_in, double guidance, int step,
                          const attention::Control& control, attention::Pass pass) const {
  const auto& c = config_;
  DK_CHECK(img_in.ndim() == 2 && img_in.dim(1) == c.in_channels && img_in.dim(0) > 0,
           "flux dit: img must be [L, ", c.in_channels, "], got ", img_in.str());
  DK_CHECK(txt_in.ndim() == 2 && txt_in.dim(1) == c.context_in_dim, "flux dit: txt must be [T, ", c.context_in_dim,
           "], got ", txt_in.str());
  const int64_t L = img_in.dim(0), T = txt_in.dim(0);
  DK_CHECK(img_ids.ndim() == 2 && img_ids.dim(0) == L && img_ids.dim(1) == 3, "flux dit: img_ids must be [", L,
           ", 3], got ", img_ids.str());
  DK_CHECK(txt_ids.ndim() == 2 && txt_ids.dim(0) == T && txt_ids.dim(1) == 3, "flux dit: txt_ids must be [", T,
           ", 3], got ", txt_ids.str());
  DK_CHECK(y_in.numel() == c.vec_in_dim && (y_in.ndim() == 1 || (y_in.ndim() == 2 && y_in.dim(0) == 1)),
           "flux dit: y must be [", c.vec_in_dim, "] or [1, ", c.vec_in_dim, "], got ", y_in.str());
  auto f32 = [&](const Tensor& t) { return ops::cast(t.to(device_), DType::F32); };

  // Conditioning vector: time (+ guidance) + pooled text.
  const Tensor t_emb = flux_timestep_embedding(timestep).to(device_);
  tap("timestep_embedding", t_emb);
  const Tensor time_out = mlp_embedder(t_emb, time_in0_w_, time_in0_b_, time_in1_w_, time_in1_b_);
  tap("time_in_out", time_out);
  Tensor vec = time_out;
  if (c.guidance_embed) {
    const Tensor g_emb = flux_timestep_embedding(guidance).to(device_);
    tap("guidance_embedding", g_emb);
    const Tensor g_out = mlp_embedder(g_emb, guidance_in0_w_, guidance_in0_b_, guidance_in1_w_, guidance_in1_b_);
    tap("guidance_in_out", g_out);
    vec = ops::add(vec, g_out);
  }
  const Tensor y_out =
      mlp_embedder(f32(y_in).reshape({1, c.vec_in_dim}), vector_in0_w_, vector_in0_b_, vector_in1_w_, vector_in1_b_);
  tap("vector_in_out", y_out);
  vec = ops::add(vec, y_out);
  tap("vec", vec);

  Tensor img = ops::linear(f32(img_in), img_in_w_, img_in_b_);
  Tensor txt = ops::linear(f32(txt_in), txt_in_w_, txt_in_b_);
  tap("img_in_out", img);
  tap("txt_in_out", txt);

  // RoPE over the ids of the joint sequence [txt; img].
  const std::vector<double> img_pos = to_doubles(img_ids), txt_pos = to_doubles(txt_ids);
  std::vector<double> ids = txt_pos;
  ids.insert(ids.end(), img_pos.begin(), img_pos.end());
  const RopeTable rope = rope_table(ids, c.axes_dim, c.theta, device_);

  Context ctx;
  ctx.silu_vec = ops::silu(vec);
  ctx.rope_cos = rope.cos.unsqueeze(1);
  ctx.rope_sin = rope.sin.unsqueeze(1);
  if (control.hooks) {
    DK_CHECK(std::all_of(ids.begin(), ids.end(), [](double p) { return p == std::floor(p); }),
             "flux dit: attention hooks need integer position ids (img_ids, txt_ids)");
    ctx.positions.assign(ids.begin(), ids.end());
  }
  const auto [rows, cols] = grid_of(img_pos, L);
  ctx.layout.frames = 1;
  ctx.layout.height = rows;
  ctx.layout.width = cols;
  ctx.layout.text_tokens = T;
  ctx.layout.text_position = T > 0 ? attention::TextPosition::Prefix : attention::TextPosition::None;
  ctx.step = step;
  ctx.pass = pass;
  ctx.control = &control;

  for (int i = 0; i < int(c.depth); ++i) double_block(i, img, txt, ctx);
  Tensor x = ops::concat({txt, img}, 0);
  for (int j = 0; j < int(c.depth_single_blocks); ++j) x = single_block(j, x, ctx);

  // Final layer on the image tokens: adaLN (shift, scale), then the linear.
  const Tensor x_img = x.narrow(0, T, L);
  tap("final_layer_in", x_img);
  const Chunks mod = modulation(ctx.silu_vec, final_mod_w_, final_mod_b_, 2, c.hidden_size);
  tap("final_layer.adaLN_out", mod.m.reshape({2 * c.hidden_size}));
  return ops::linear(ops::modulate(ops::layer_norm(x_img, {}, {}, kEps), mod[1], mod[0]), final_w_, final_b_);
}

}  // namespace ditkit::dit
