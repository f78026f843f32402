// Wan2.1: the DiT (wan/modules/model.py WanModel) and the video VAE (wan/modules/vae.py WanVAE_).
#include <cmath>

#include "weights/layout_detail.h"

namespace ditkit::weights::detail {

namespace {

// diffusers WanTransformer3DModel -> WanModel: the inverse of the ordered renames of
// scripts/convert_wan_to_diffusers.py (T2V). Note diffusers' norm2 is the official norm3.
std::vector<Rule> wan_dit_diffusers_rules() {
  return {
      {"condition_embedder.text_embedder.linear_1.*", "text_embedding.0.*"},
      {"condition_embedder.text_embedder.linear_2.*", "text_embedding.2.*"},
      {"condition_embedder.time_embedder.linear_1.*", "time_embedding.0.*"},
      {"condition_embedder.time_embedder.linear_2.*", "time_embedding.2.*"},
      {"condition_embedder.time_proj.*", "time_projection.1.*"},
      {"blocks.{}.scale_shift_table", "blocks.{}.modulation"},
      {"blocks.{}.attn1.to_q.*", "blocks.{}.self_attn.q.*"},
      {"blocks.{}.attn1.to_k.*", "blocks.{}.self_attn.k.*"},
      {"blocks.{}.attn1.to_v.*", "blocks.{}.self_attn.v.*"},
      {"blocks.{}.attn1.to_out.0.*", "blocks.{}.self_attn.o.*"},
      {"blocks.{}.attn1.*", "blocks.{}.self_attn.*"},
      {"blocks.{}.attn2.to_q.*", "blocks.{}.cross_attn.q.*"},
      {"blocks.{}.attn2.to_k.*", "blocks.{}.cross_attn.k.*"},
      {"blocks.{}.attn2.to_v.*", "blocks.{}.cross_attn.v.*"},
      {"blocks.{}.attn2.to_out.0.*", "blocks.{}.cross_attn.o.*"},
      {"blocks.{}.attn2.*", "blocks.{}.cross_attn.*"},
      {"blocks.{}.norm2.*", "blocks.{}.norm3.*"},
      {"blocks.{}.ffn.net.0.proj.*", "blocks.{}.ffn.0.*"},
      {"blocks.{}.ffn.net.2.*", "blocks.{}.ffn.2.*"},
      {"scale_shift_table", "head.modulation"},
      {"proj_out.*", "head.head.*"},
  };
}

// diffusers AutoencoderKLWan -> WanVAE_ (the inverse of convert_vae in convert_wan_to_diffusers.py).
// Residual blocks name their parts; the decoder's flat upsamples list (per stage: num_res_blocks+1
// residual blocks, then a resample) is grouped into up_blocks.{stage}.resnets / upsamplers.
std::vector<int64_t> mid_index(const std::vector<int64_t>& i, const BlockCount&) { return {2 * i[0]}; }

int64_t up_stage_size(const BlockCount& count) { return count("decoder.up_blocks.0.resnets.") + 1; }

std::vector<int64_t> up_resnet_index(const std::vector<int64_t>& i, const BlockCount& count) {
  return {i[0] * up_stage_size(count) + i[1]};
}

std::vector<int64_t> up_sampler_index(const std::vector<int64_t>& i, const BlockCount& count) {
  return {i[0] * up_stage_size(count) + up_stage_size(count) - 1};
}

std::vector<Rule> wan_vae_diffusers_rules() {
  return {
      {"encoder.conv_in.*", "encoder.conv1.*"},
      {"decoder.conv_in.*", "decoder.conv1.*"},
      {"quant_conv.*", "conv1.*"},
      {"post_quant_conv.*", "conv2.*"},
      {"encoder.down_blocks.{}.norm1.gamma", "encoder.downsamples.{}.residual.0.gamma"},
      {"encoder.down_blocks.{}.conv1.*", "encoder.downsamples.{}.residual.2.*"},
      {"encoder.down_blocks.{}.norm2.gamma", "encoder.downsamples.{}.residual.3.gamma"},
      {"encoder.down_blocks.{}.conv2.*", "encoder.downsamples.{}.residual.6.*"},
      {"encoder.down_blocks.{}.conv_shortcut.*", "encoder.downsamples.{}.shortcut.*"},
      {"encoder.down_blocks.{}.*", "encoder.downsamples.{}.*"},
      {.src = "{w}.mid_block.resnets.{}.norm1.gamma", .dst = "{w}.middle.{}.residual.0.gamma", .index = mid_index},
      {.src = "{w}.mid_block.resnets.{}.conv1.*", .dst = "{w}.middle.{}.residual.2.*", .index = mid_index},
      {.src = "{w}.mid_block.resnets.{}.norm2.gamma", .dst = "{w}.middle.{}.residual.3.gamma", .index = mid_index},
      {.src = "{w}.mid_block.resnets.{}.conv2.*", .dst = "{w}.middle.{}.residual.6.*", .index = mid_index},
      {"{w}.mid_block.attentions.0.*", "{w}.middle.1.*"},
      {"{w}.norm_out.gamma", "{w}.head.0.gamma"},
      {"{w}.conv_out.*", "{w}.head.2.*"},
      {.src = "decoder.up_blocks.{}.resnets.{}.norm1.gamma",
       .dst = "decoder.upsamples.{}.residual.0.gamma",
       .index = up_resnet_index},
      {.src = "decoder.up_blocks.{}.resnets.{}.conv1.*",
       .dst = "decoder.upsamples.{}.residual.2.*",
       .index = up_resnet_index},
      {.src = "decoder.up_blocks.{}.resnets.{}.norm2.gamma",
       .dst = "decoder.upsamples.{}.residual.3.gamma",
       .index = up_resnet_index},
      {.src = "decoder.up_blocks.{}.resnets.{}.conv2.*",
       .dst = "decoder.upsamples.{}.residual.6.*",
       .index = up_resnet_index},
      {.src = "decoder.up_blocks.{}.resnets.{}.conv_shortcut.*",
       .dst = "decoder.upsamples.{}.shortcut.*",
       .index = up_resnet_index},
      {.src = "decoder.up_blocks.{}.upsamplers.0.*", .dst = "decoder.upsamples.{}.*", .index = up_sampler_index},
  };
}

int64_t product(const std::array<int64_t, 3>& p) { return p[0] * p[1] * p[2]; }

// Residual block of the VAE (RMS_norm, SiLU, CausalConv3d, RMS_norm, SiLU, Dropout, CausalConv3d).
void add_vae_residual(std::vector<ExpectedTensor>& out, const std::string& p, int64_t in, int64_t o) {
  out.push_back({p + ".residual.0.gamma", {in, 1, 1, 1}});
  add_linear(out, p + ".residual.2", {o, in, 3, 3, 3});
  out.push_back({p + ".residual.3.gamma", {o, 1, 1, 1}});
  add_linear(out, p + ".residual.6", {o, o, 3, 3, 3});
  if (in != o) add_linear(out, p + ".shortcut", {o, in, 1, 1, 1});
}

void add_vae_attention(std::vector<ExpectedTensor>& out, const std::string& p, int64_t c) {
  out.push_back({p + ".norm.gamma", {c, 1, 1}});
  add_linear(out, p + ".to_qkv", {3 * c, c, 1, 1});
  add_linear(out, p + ".proj", {c, c, 1, 1});
}

bool in_scales(const std::vector<double>& scales, double s) {
  for (double v : scales)
    if (std::fabs(v - s) < 1e-9) return true;
  return false;
}

}  // namespace

const std::vector<LayoutSpec>& wan_specs() {
  static const std::vector<LayoutSpec> specs = {
      {Family::wan_dit,
       Layout::official,
       {"patch_embedding.weight", "blocks.0.self_attn.q.weight", "head.head.weight"},
       {},
       {}},
      {Family::wan_dit,
       Layout::diffusers,
       {"patch_embedding.weight", "condition_embedder.time_proj.weight", "blocks.0.attn1.to_q.weight"},
       {},
       wan_dit_diffusers_rules()},
      {Family::wan_vae,
       Layout::official,
       {"encoder.conv1.weight", "encoder.downsamples.0.residual.0.gamma", "decoder.conv1.weight", "conv2.weight"},
       {},
       {}},
      {Family::wan_vae,
       Layout::diffusers,
       {"encoder.conv_in.weight", "encoder.down_blocks.0.norm1.gamma", "decoder.up_blocks.0.resnets.0.norm1.gamma",
        "post_quant_conv.weight"},
       {},
       wan_vae_diffusers_rules()},
  };
  return specs;
}

std::vector<ExpectedTensor> expected_wan_dit(const WanDitConfig& c) {
  std::vector<ExpectedTensor> out;
  const int64_t d = c.dim;
  out.push_back({"patch_embedding.weight", {d, c.in_dim, c.patch_size[0], c.patch_size[1], c.patch_size[2]}});
  out.push_back({"patch_embedding.bias", {d}});
  add_linear(out, "text_embedding.0", {d, c.text_dim});
  add_linear(out, "text_embedding.2", {d, d});
  add_linear(out, "time_embedding.0", {d, c.freq_dim});
  add_linear(out, "time_embedding.2", {d, d});
  add_linear(out, "time_projection.1", {6 * d, d});
  for (int64_t i = 0; i < c.num_layers; ++i) {
    const std::string b = cat("blocks.", i, ".");
    out.push_back({b + "modulation", {1, 6, d}});
    for (const char* attn : {"self_attn", "cross_attn"}) {
      for (const char* m : {"q", "k", "v", "o"}) add_linear(out, b + attn + "." + m, {d, d});
      if (c.qk_norm) {
        out.push_back({b + attn + ".norm_q.weight", {d}});
        out.push_back({b + attn + ".norm_k.weight", {d}});
      }
    }
    if (c.cross_attn_norm) {
      out.push_back({b + "norm3.weight", {d}});
      out.push_back({b + "norm3.bias", {d}});
    }
    add_linear(out, b + "ffn.0", {c.ffn_dim, d});
    add_linear(out, b + "ffn.2", {d, c.ffn_dim});
  }
  out.push_back({"head.modulation", {1, 2, d}});
  add_linear(out, "head.head", {product(c.patch_size) * c.out_dim, d});
  return out;
}

std::vector<ExpectedTensor> expected_wan_vae(const WanVaeConfig& c) {
  std::vector<ExpectedTensor> out;
  const size_t levels = c.dim_mult.size();
  DK_CHECK(levels >= 1 && c.temperal_downsample.size() + 1 == levels, "wan_vae config: dim_mult has ", levels,
           " entries, temperal_downsample ", c.temperal_downsample.size(), " (expected one fewer)");
  // Encoder3d: dims = dim * [1] + dim_mult.
  std::vector<int64_t> dims{c.dim};
  for (int64_t m : c.dim_mult) dims.push_back(c.dim * m);
  add_linear(out, "encoder.conv1", {dims[0], 3, 3, 3, 3});
  int idx = 0;
  double scale = 1.0;
  for (size_t i = 0; i < levels; ++i) {
    int64_t in = dims[i], o = dims[i + 1];
    for (int64_t r = 0; r < c.num_res_blocks; ++r) {
      add_vae_residual(out, cat("encoder.downsamples.", idx++), in, o);
      if (in_scales(c.attn_scales, scale)) add_vae_attention(out, cat("encoder.downsamples.", idx++), o);
      in = o;
    }
    if (i + 1 != levels) {
      const std::string p = cat("encoder.downsamples.", idx++);
      add_linear(out, p + ".resample.1", {o, o, 3, 3});
      if (c.temperal_downsample[i]) add_linear(out, p + ".time_conv", {o, o, 3, 1, 1});
      scale /= 2;
    }
  }
  const int64_t top = dims.back();
  for (const char* coder : {"encoder", "decoder"}) {
    add_vae_residual(out, cat(coder, ".middle.0"), top, top);
    add_vae_attention(out, cat(coder, ".middle.1"), top);
    add_vae_residual(out, cat(coder, ".middle.2"), top, top);
  }
  out.push_back({"encoder.head.0.gamma", {top, 1, 1, 1}});
  add_linear(out, "encoder.head.2", {2 * c.z_dim, top, 3, 3, 3});
  add_linear(out, "conv1", {2 * c.z_dim, 2 * c.z_dim, 1, 1, 1});
  add_linear(out, "conv2", {c.z_dim, c.z_dim, 1, 1, 1});
  // Decoder3d: dims = dim * [dim_mult[-1]] + reversed(dim_mult); temporal upsampling mirrors
  // the downsampling; every stage after the first starts at half width (the Resample conv halves it).
  std::vector<int64_t> up{c.dim * c.dim_mult.back()};
  for (size_t i = levels; i-- > 0;) up.push_back(c.dim * c.dim_mult[i]);
  add_linear(out, "decoder.conv1", {up[0], c.z_dim, 3, 3, 3});
  idx = 0;
  scale = 1.0 / std::pow(2.0, double(levels) - 2);
  int64_t o = up[0];
  for (size_t i = 0; i < levels; ++i) {
    int64_t in = i == 0 ? up[0] : up[i] / 2;
    o = up[i + 1];
    for (int64_t r = 0; r < c.num_res_blocks + 1; ++r) {
      add_vae_residual(out, cat("decoder.upsamples.", idx++), in, o);
      if (in_scales(c.attn_scales, scale)) add_vae_attention(out, cat("decoder.upsamples.", idx++), o);
      in = o;
    }
    if (i + 1 != levels) {
      const std::string p = cat("decoder.upsamples.", idx++);
      add_linear(out, p + ".resample.1", {o / 2, o, 3, 3});
      if (c.temperal_downsample[levels - 2 - i]) add_linear(out, p + ".time_conv", {2 * o, o, 3, 1, 1});
      scale *= 2;
    }
  }
  out.push_back({"decoder.head.0.gamma", {o, 1, 1, 1}});
  add_linear(out, "decoder.head.2", {3, o, 3, 3, 3});
  return out;
}

WanDitConfig wan_dit_from_json(const nlohmann::json& j, const std::string& what) {
  WanDitConfig c;
  read_json(j, {"model_type"}, c.model_type, what);
  std::vector<int64_t> patch;
  if (read_json(j, {"patch_size"}, patch, what)) {
    DK_CHECK(patch.size() == 3, what, ": patch_size must have 3 entries, got ", patch.size());
    c.patch_size = {patch[0], patch[1], patch[2]};
  }
  read_json(j, {"text_len"}, c.text_len, what);
  read_json(j, {"in_dim", "in_channels"}, c.in_dim, what);
  read_json(j, {"ffn_dim"}, c.ffn_dim, what);
  read_json(j, {"freq_dim"}, c.freq_dim, what);
  read_json(j, {"text_dim"}, c.text_dim, what);
  read_json(j, {"out_dim", "out_channels"}, c.out_dim, what);
  read_json(j, {"num_heads", "num_attention_heads"}, c.num_heads, what);
  read_json(j, {"num_layers"}, c.num_layers, what);
  if (!read_json(j, {"dim"}, c.dim, what)) {
    int64_t head_dim = 0;
    if (read_json(j, {"attention_head_dim"}, head_dim, what)) c.dim = head_dim * c.num_heads;
  }
  std::vector<int64_t> window;
  if (read_json(j, {"window_size"}, window, what)) {
    DK_CHECK(window.size() == 2, what, ": window_size must have 2 entries, got ", window.size());
    c.window_size = {window[0], window[1]};
  }
  read_json(j, {"cross_attn_norm"}, c.cross_attn_norm, what);
  if (auto it = j.find("qk_norm"); it != j.end() && !it->is_null())
    c.qk_norm = it->is_string() ? !it->get<std::string>().empty() : it->is_boolean() && it->get<bool>();
  read_json(j, {"eps"}, c.eps, what);
  check_count(what, "num_layers", c.num_layers);
  DK_CHECK(c.dim > 0 && c.num_heads > 0 && c.dim % c.num_heads == 0, what, ": dim ", c.dim,
           " is not a positive multiple of num_heads ", c.num_heads);
  return c;
}

WanVaeConfig wan_vae_from_json(const nlohmann::json& j, const std::string& what) {
  WanVaeConfig c = known_configs(Family::wan_vae)[0].as<WanVaeConfig>();
  read_json(j, {"dim", "base_dim"}, c.dim, what);
  read_json(j, {"z_dim"}, c.z_dim, what);
  read_json(j, {"dim_mult"}, c.dim_mult, what);
  read_json(j, {"num_res_blocks"}, c.num_res_blocks, what);
  read_json(j, {"attn_scales"}, c.attn_scales, what);
  read_json(j, {"temperal_downsample"}, c.temperal_downsample, what);
  read_json(j, {"latent_mean", "latents_mean"}, c.latent_mean, what);
  read_json(j, {"latent_std", "latents_std"}, c.latent_std, what);
  check_count(what, "num_res_blocks", c.num_res_blocks);
  check_count(what, "dim_mult entries", int64_t(c.dim_mult.size()));
  DK_CHECK(c.latent_mean.size() == size_t(c.z_dim) && c.latent_std.size() == size_t(c.z_dim), what,
           ": latent_mean and latent_std need z_dim = ", c.z_dim, " values, got ", c.latent_mean.size(), " and ",
           c.latent_std.size());
  return c;
}

WanDitConfig wan_dit_from_shapes(const Shapes& s) {
  WanDitConfig c;
  c.dim = shape_dim(s, "patch_embedding.weight", 0);
  c.in_dim = shape_dim(s, "patch_embedding.weight", 1);
  for (size_t i = 0; i < 3; ++i) c.patch_size[i] = shape_dim(s, "patch_embedding.weight", 2 + i);
  c.ffn_dim = shape_dim(s, "blocks.0.ffn.0.weight", 0);
  c.freq_dim = shape_dim(s, "time_embedding.0.weight", 1);
  c.text_dim = shape_dim(s, "text_embedding.0.weight", 1);
  c.out_dim = shape_dim(s, "head.head.weight", 0) / product(c.patch_size);
  c.num_layers = count_blocks(s, "blocks.");
  c.qk_norm = has(s, "blocks.0.self_attn.norm_q.weight");
  c.cross_attn_norm = has(s, "blocks.0.norm3.weight");
  c.num_heads = c.dim % 128 == 0 ? c.dim / 128 : 1;  // all released Wan2.1 models use head dim 128
  for (const auto& k : known_configs(Family::wan_dit))
    if (k.as<WanDitConfig>().dim == c.dim) c.num_heads = k.as<WanDitConfig>().num_heads;
  return c;
}

WanVaeConfig wan_vae_from_shapes(const Shapes& s) {
  WanVaeConfig c = known_configs(Family::wan_vae)[0].as<WanVaeConfig>();
  c.dim = shape_dim(s, "encoder.conv1.weight", 0);
  c.z_dim = shape_dim(s, "conv2.weight", 0);
  if (size_t(c.z_dim) != c.latent_mean.size()) c.latent_mean = c.latent_std = {};
  return c;
}

}  // namespace ditkit::weights::detail
