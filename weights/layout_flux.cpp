// FLUX.1: the MM-DiT (src/flux/model.py Flux) and the autoencoder (src/flux/modules/autoencoder.py).
#include "weights/layout_detail.h"

namespace ditkit::weights::detail {

namespace {

// diffusers FluxTransformer2DModel -> Flux (inverse of scripts/convert_flux_to_diffusers.py):
// the fused qkv (and single-block linear1 = qkv | mlp) are stored split, and norm_out.linear
// holds (scale, shift) where BFL's final adaLN holds (shift, scale).
std::vector<Rule> flux_dit_diffusers_rules() {
  return {
      {"x_embedder.*", "img_in.*"},
      {"context_embedder.*", "txt_in.*"},
      {"time_text_embed.timestep_embedder.linear_1.*", "time_in.in_layer.*"},
      {"time_text_embed.timestep_embedder.linear_2.*", "time_in.out_layer.*"},
      {"time_text_embed.text_embedder.linear_1.*", "vector_in.in_layer.*"},
      {"time_text_embed.text_embedder.linear_2.*", "vector_in.out_layer.*"},
      {"time_text_embed.guidance_embedder.linear_1.*", "guidance_in.in_layer.*"},
      {"time_text_embed.guidance_embedder.linear_2.*", "guidance_in.out_layer.*"},
      {"transformer_blocks.{}.norm1.linear.*", "double_blocks.{}.img_mod.lin.*"},
      {"transformer_blocks.{}.norm1_context.linear.*", "double_blocks.{}.txt_mod.lin.*"},
      {"transformer_blocks.{}.attn.to_q.*", "double_blocks.{}.img_attn.qkv.*", 0, 3},
      {"transformer_blocks.{}.attn.to_k.*", "double_blocks.{}.img_attn.qkv.*", 1, 3},
      {"transformer_blocks.{}.attn.to_v.*", "double_blocks.{}.img_attn.qkv.*", 2, 3},
      {"transformer_blocks.{}.attn.add_q_proj.*", "double_blocks.{}.txt_attn.qkv.*", 0, 3},
      {"transformer_blocks.{}.attn.add_k_proj.*", "double_blocks.{}.txt_attn.qkv.*", 1, 3},
      {"transformer_blocks.{}.attn.add_v_proj.*", "double_blocks.{}.txt_attn.qkv.*", 2, 3},
      {"transformer_blocks.{}.attn.norm_q.weight", "double_blocks.{}.img_attn.norm.query_norm.scale"},
      {"transformer_blocks.{}.attn.norm_k.weight", "double_blocks.{}.img_attn.norm.key_norm.scale"},
      {"transformer_blocks.{}.attn.norm_added_q.weight", "double_blocks.{}.txt_attn.norm.query_norm.scale"},
      {"transformer_blocks.{}.attn.norm_added_k.weight", "double_blocks.{}.txt_attn.norm.key_norm.scale"},
      {"transformer_blocks.{}.attn.to_out.0.*", "double_blocks.{}.img_attn.proj.*"},
      {"transformer_blocks.{}.attn.to_add_out.*", "double_blocks.{}.txt_attn.proj.*"},
      {"transformer_blocks.{}.ff.net.0.proj.*", "double_blocks.{}.img_mlp.0.*"},
      {"transformer_blocks.{}.ff.net.2.*", "double_blocks.{}.img_mlp.2.*"},
      {"transformer_blocks.{}.ff_context.net.0.proj.*", "double_blocks.{}.txt_mlp.0.*"},
      {"transformer_blocks.{}.ff_context.net.2.*", "double_blocks.{}.txt_mlp.2.*"},
      {"single_transformer_blocks.{}.norm.linear.*", "single_blocks.{}.modulation.lin.*"},
      {"single_transformer_blocks.{}.attn.to_q.*", "single_blocks.{}.linear1.*", 0, 4},
      {"single_transformer_blocks.{}.attn.to_k.*", "single_blocks.{}.linear1.*", 1, 4},
      {"single_transformer_blocks.{}.attn.to_v.*", "single_blocks.{}.linear1.*", 2, 4},
      {"single_transformer_blocks.{}.proj_mlp.*", "single_blocks.{}.linear1.*", 3, 4},
      {"single_transformer_blocks.{}.attn.norm_q.weight", "single_blocks.{}.norm.query_norm.scale"},
      {"single_transformer_blocks.{}.attn.norm_k.weight", "single_blocks.{}.norm.key_norm.scale"},
      {"single_transformer_blocks.{}.proj_out.*", "single_blocks.{}.linear2.*"},
      {"proj_out.*", "final_layer.linear.*"},
      {"norm_out.linear.*", "final_layer.adaLN_modulation.1.*", 0, 1, true},
  };
}

// diffusers AutoencoderKL -> BFL AutoEncoder (the inverse of diffusers' convert_ldm_vae_checkpoint):
// diffusers' decoder up_blocks start at the lowest resolution where BFL's decoder.up index is the
// resolution level, and the mid-block attention projections are linear layers instead of 1x1 convs.
std::vector<int64_t> reversed_level(const std::vector<int64_t>& i, const BlockCount& count) {
  std::vector<int64_t> out = i;
  out[0] = count("decoder.up_blocks.") - 1 - i[0];
  return out;
}

std::vector<Rule> flux_ae_diffusers_rules() {
  return {
      {"encoder.down_blocks.{}.resnets.{}.conv_shortcut.*", "encoder.down.{}.block.{}.nin_shortcut.*"},
      {"encoder.down_blocks.{}.resnets.{}.*", "encoder.down.{}.block.{}.*"},
      {"encoder.down_blocks.{}.downsamplers.0.conv.*", "encoder.down.{}.downsample.conv.*"},
      {.src = "decoder.up_blocks.{}.resnets.{}.conv_shortcut.*",
       .dst = "decoder.up.{}.block.{}.nin_shortcut.*",
       .index = reversed_level},
      {.src = "decoder.up_blocks.{}.resnets.{}.*", .dst = "decoder.up.{}.block.{}.*", .index = reversed_level},
      {.src = "decoder.up_blocks.{}.upsamplers.0.conv.*",
       .dst = "decoder.up.{}.upsample.conv.*",
       .index = reversed_level},
      {"{w}.mid_block.resnets.0.*", "{w}.mid.block_1.*"},
      {"{w}.mid_block.resnets.1.*", "{w}.mid.block_2.*"},
      {"{w}.mid_block.attentions.0.group_norm.*", "{w}.mid.attn_1.norm.*"},
      {.src = "{w}.mid_block.attentions.0.to_q.weight", .dst = "{w}.mid.attn_1.q.weight", .conv1x1 = true},
      {.src = "{w}.mid_block.attentions.0.to_k.weight", .dst = "{w}.mid.attn_1.k.weight", .conv1x1 = true},
      {.src = "{w}.mid_block.attentions.0.to_v.weight", .dst = "{w}.mid.attn_1.v.weight", .conv1x1 = true},
      {.src = "{w}.mid_block.attentions.0.to_out.0.weight", .dst = "{w}.mid.attn_1.proj_out.weight", .conv1x1 = true},
      {"{w}.mid_block.attentions.0.to_q.bias", "{w}.mid.attn_1.q.bias"},
      {"{w}.mid_block.attentions.0.to_k.bias", "{w}.mid.attn_1.k.bias"},
      {"{w}.mid_block.attentions.0.to_v.bias", "{w}.mid.attn_1.v.bias"},
      {"{w}.mid_block.attentions.0.to_out.0.bias", "{w}.mid.attn_1.proj_out.bias"},
      {"{w}.conv_norm_out.*", "{w}.norm_out.*"},
  };
}

void add_resnet(std::vector<ExpectedTensor>& out, const std::string& p, int64_t in, int64_t o) {
  add_linear(out, p + ".norm1", {in});
  add_linear(out, p + ".conv1", {o, in, 3, 3});
  add_linear(out, p + ".norm2", {o});
  add_linear(out, p + ".conv2", {o, o, 3, 3});
  if (in != o) add_linear(out, p + ".nin_shortcut", {o, in, 1, 1});
}

void add_mid(std::vector<ExpectedTensor>& out, const std::string& p, int64_t c) {
  add_resnet(out, p + ".block_1", c, c);
  add_linear(out, p + ".attn_1.norm", {c});
  for (const char* m : {"q", "k", "v", "proj_out"}) add_linear(out, p + ".attn_1." + m, {c, c, 1, 1});
  add_resnet(out, p + ".block_2", c, c);
}

// Splits head_dim over the (t, h, w) rope axes the way the released models do (16/56/56 of 128).
std::vector<int64_t> default_axes(int64_t head_dim) {
  int64_t hw = (head_dim * 7 / 16) / 2 * 2;
  return {head_dim - 2 * hw, hw, hw};
}

}  // namespace

const std::vector<LayoutSpec>& flux_specs() {
  static const std::vector<LayoutSpec> specs = {
      {Family::flux_dit, Layout::official, {"img_in.weight", "double_blocks.0.img_attn.qkv.weight"}, {}, {}},
      {Family::flux_dit,
       Layout::diffusers,
       {"x_embedder.weight", "transformer_blocks.0.attn.to_q.weight", "single_transformer_blocks.0.proj_mlp.weight"},
       {},
       flux_dit_diffusers_rules()},
      {Family::flux_ae,
       Layout::official,
       {"encoder.conv_in.weight", "encoder.down.0.block.0.conv1.weight", "decoder.up.0.block.0.conv1.weight"},
       {},
       {}},
      // quant_conv marks the Stable Diffusion autoencoders (same classes, FLUX has none).
      {Family::flux_ae,
       Layout::diffusers,
       {"encoder.conv_in.weight", "encoder.down_blocks.0.resnets.0.conv1.weight",
        "decoder.up_blocks.0.resnets.0.conv1.weight"},
       {"quant_conv.weight"},
       flux_ae_diffusers_rules()},
  };
  return specs;
}

std::vector<ExpectedTensor> expected_flux_dit(const FluxDitConfig& c) {
  std::vector<ExpectedTensor> out;
  const int64_t h = c.hidden_size, m = int64_t(double(h) * c.mlp_ratio), d = h / c.num_heads;
  add_linear(out, "img_in", {h, c.in_channels});
  add_linear(out, "time_in.in_layer", {h, 256});
  add_linear(out, "time_in.out_layer", {h, h});
  add_linear(out, "vector_in.in_layer", {h, c.vec_in_dim});
  add_linear(out, "vector_in.out_layer", {h, h});
  if (c.guidance_embed) {
    add_linear(out, "guidance_in.in_layer", {h, 256});
    add_linear(out, "guidance_in.out_layer", {h, h});
  }
  add_linear(out, "txt_in", {h, c.context_in_dim});
  for (int64_t i = 0; i < c.depth; ++i) {
    for (const char* stream : {"img", "txt"}) {
      const std::string b = cat("double_blocks.", i, ".", stream);
      add_linear(out, b + "_mod.lin", {6 * h, h});
      add_linear(out, b + "_attn.qkv", {3 * h, h}, c.qkv_bias);
      out.push_back({b + "_attn.norm.query_norm.scale", {d}});
      out.push_back({b + "_attn.norm.key_norm.scale", {d}});
      add_linear(out, b + "_attn.proj", {h, h});
      add_linear(out, b + "_mlp.0", {m, h});
      add_linear(out, b + "_mlp.2", {h, m});
    }
  }
  for (int64_t i = 0; i < c.depth_single_blocks; ++i) {
    const std::string b = cat("single_blocks.", i, ".");
    add_linear(out, b + "linear1", {3 * h + m, h});
    add_linear(out, b + "linear2", {h, h + m});
    out.push_back({b + "norm.query_norm.scale", {d}});
    out.push_back({b + "norm.key_norm.scale", {d}});
    add_linear(out, b + "modulation.lin", {3 * h, h});
  }
  add_linear(out, "final_layer.linear", {c.out_channels, h});
  add_linear(out, "final_layer.adaLN_modulation.1", {2 * h, h});
  return out;
}

std::vector<ExpectedTensor> expected_flux_ae(const FluxAeConfig& c) {
  std::vector<ExpectedTensor> out;
  const size_t levels = c.ch_mult.size();
  DK_CHECK(levels >= 1, "flux_ae config: ch_mult is empty");
  add_linear(out, "encoder.conv_in", {c.ch, c.in_channels, 3, 3});
  int64_t in = c.ch;
  for (size_t i = 0; i < levels; ++i) {
    const int64_t o = c.ch * c.ch_mult[i];
    for (int64_t j = 0; j < c.num_res_blocks; ++j) {
      add_resnet(out, cat("encoder.down.", i, ".block.", j), in, o);
      in = o;
    }
    if (i + 1 != levels) add_linear(out, cat("encoder.down.", i, ".downsample.conv"), {in, in, 3, 3});
  }
  add_mid(out, "encoder.mid", in);
  add_linear(out, "encoder.norm_out", {in});
  add_linear(out, "encoder.conv_out", {2 * c.z_channels, in, 3, 3});
  in = c.ch * c.ch_mult.back();
  add_linear(out, "decoder.conv_in", {in, c.z_channels, 3, 3});
  add_mid(out, "decoder.mid", in);
  for (size_t i = levels; i-- > 0;) {
    const int64_t o = c.ch * c.ch_mult[i];
    for (int64_t j = 0; j < c.num_res_blocks + 1; ++j) {
      add_resnet(out, cat("decoder.up.", i, ".block.", j), in, o);
      in = o;
    }
    if (i != 0) add_linear(out, cat("decoder.up.", i, ".upsample.conv"), {in, in, 3, 3});
  }
  add_linear(out, "decoder.norm_out", {in});
  add_linear(out, "decoder.conv_out", {c.out_ch, in, 3, 3});
  return out;
}

FluxDitConfig flux_dit_from_json(const nlohmann::json& j, const std::string& what) {
  FluxDitConfig c;
  read_json(j, {"in_channels"}, c.in_channels, what);
  c.out_channels = c.in_channels;  // diffusers writes null for "same as in"
  read_json(j, {"out_channels"}, c.out_channels, what);
  read_json(j, {"vec_in_dim", "pooled_projection_dim"}, c.vec_in_dim, what);
  read_json(j, {"context_in_dim", "joint_attention_dim"}, c.context_in_dim, what);
  read_json(j, {"mlp_ratio"}, c.mlp_ratio, what);
  read_json(j, {"num_heads", "num_attention_heads"}, c.num_heads, what);
  if (!read_json(j, {"hidden_size"}, c.hidden_size, what)) {
    int64_t head_dim = 0;
    if (read_json(j, {"attention_head_dim"}, head_dim, what)) c.hidden_size = head_dim * c.num_heads;
  }
  read_json(j, {"depth", "num_layers"}, c.depth, what);
  read_json(j, {"depth_single_blocks", "num_single_layers"}, c.depth_single_blocks, what);
  read_json(j, {"axes_dim", "axes_dims_rope"}, c.axes_dim, what);
  read_json(j, {"theta"}, c.theta, what);
  read_json(j, {"qkv_bias"}, c.qkv_bias, what);
  read_json(j, {"guidance_embed", "guidance_embeds"}, c.guidance_embed, what);
  check_count(what, "depth", c.depth);
  check_count(what, "depth_single_blocks", c.depth_single_blocks);
  DK_CHECK(c.num_heads > 0 && c.hidden_size % c.num_heads == 0, what, ": hidden_size ", c.hidden_size,
           " is not a multiple of num_heads ", c.num_heads);
  int64_t axes = 0;
  for (int64_t a : c.axes_dim) axes += a;
  DK_CHECK(axes == c.hidden_size / c.num_heads, what, ": axes_dim must add up to the head dim ",
           c.hidden_size / c.num_heads, ", got ", axes);
  return c;
}

FluxAeConfig flux_ae_from_json(const nlohmann::json& j, const std::string& what) {
  FluxAeConfig c;
  read_json(j, {"resolution", "sample_size"}, c.resolution, what);
  read_json(j, {"in_channels"}, c.in_channels, what);
  read_json(j, {"out_ch", "out_channels"}, c.out_ch, what);
  read_json(j, {"z_channels", "latent_channels"}, c.z_channels, what);
  read_json(j, {"num_res_blocks", "layers_per_block"}, c.num_res_blocks, what);
  read_json(j, {"scale_factor", "scaling_factor"}, c.scale_factor, what);
  read_json(j, {"shift_factor"}, c.shift_factor, what);
  std::vector<int64_t> block_out;
  if (read_json(j, {"block_out_channels"}, block_out, what)) {
    DK_CHECK(!block_out.empty() && block_out[0] > 0, what, ": block_out_channels is empty");
    c.ch = block_out[0];
    c.ch_mult.clear();
    for (int64_t b : block_out) c.ch_mult.push_back(b / c.ch);
  }
  read_json(j, {"ch"}, c.ch, what);
  read_json(j, {"ch_mult"}, c.ch_mult, what);
  check_count(what, "num_res_blocks", c.num_res_blocks);
  check_count(what, "ch_mult entries", int64_t(c.ch_mult.size()));
  return c;
}

FluxDitConfig flux_dit_from_shapes(const Shapes& s) {
  FluxDitConfig c;
  c.hidden_size = shape_dim(s, "img_in.weight", 0);
  c.in_channels = shape_dim(s, "img_in.weight", 1);
  c.out_channels = shape_dim(s, "final_layer.linear.weight", 0);
  c.vec_in_dim = shape_dim(s, "vector_in.in_layer.weight", 1);
  c.context_in_dim = shape_dim(s, "txt_in.weight", 1);
  c.mlp_ratio = double(shape_dim(s, "double_blocks.0.img_mlp.0.weight", 0)) / double(c.hidden_size);
  const int64_t head_dim = shape_dim(s, "double_blocks.0.img_attn.norm.query_norm.scale", 0);
  DK_CHECK(head_dim > 0 && c.hidden_size % head_dim == 0, "cannot infer the config: hidden size ", c.hidden_size,
           " is not a multiple of the head dim ", head_dim);
  c.num_heads = c.hidden_size / head_dim;
  c.depth = count_blocks(s, "double_blocks.");
  c.depth_single_blocks = count_blocks(s, "single_blocks.");
  c.axes_dim = default_axes(head_dim);
  c.qkv_bias = has(s, "double_blocks.0.img_attn.qkv.bias");
  c.guidance_embed = has(s, "guidance_in.in_layer.weight");
  return c;
}

FluxAeConfig flux_ae_from_shapes(const Shapes& s) {
  FluxAeConfig c;
  c.ch = shape_dim(s, "encoder.conv_in.weight", 0);
  c.in_channels = shape_dim(s, "encoder.conv_in.weight", 1);
  c.z_channels = shape_dim(s, "decoder.conv_in.weight", 1);
  c.out_ch = shape_dim(s, "decoder.conv_out.weight", 0);
  c.num_res_blocks = count_blocks(s, "encoder.down.0.block.");
  c.ch_mult.clear();
  for (int64_t i = 0, n = count_blocks(s, "encoder.down."); i < n; ++i)
    c.ch_mult.push_back(shape_dim(s, cat("encoder.down.", i, ".block.0.conv1.weight"), 0) / c.ch);
  return c;
}

}  // namespace ditkit::weights::detail
