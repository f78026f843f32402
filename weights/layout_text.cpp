// Text encoders: Wan's umT5 (wan/modules/t5.py T5Encoder names; transformers UMT5EncoderModel
// names in diffusers and ComfyUI files), T5 v1.1 XXL and CLIP-L (transformers names).
#include "weights/layout_detail.h"

namespace ditkit::weights::detail {

namespace {

// transformers UMT5EncoderModel -> Wan T5Encoder.
std::vector<Rule> umt5_hf_rules() {
  return {
      {"shared.weight", "token_embedding.weight"},
      {"encoder.embed_tokens.weight", "token_embedding.weight"},  // tied copy
      {"encoder.block.{}.layer.0.layer_norm.weight", "blocks.{}.norm1.weight"},
      {"encoder.block.{}.layer.0.SelfAttention.relative_attention_bias.weight",
       "blocks.{}.pos_embedding.embedding.weight"},
      {"encoder.block.{}.layer.0.SelfAttention.*", "blocks.{}.attn.*"},
      {"encoder.block.{}.layer.1.layer_norm.weight", "blocks.{}.norm2.weight"},
      {"encoder.block.{}.layer.1.DenseReluDense.wi_0.weight", "blocks.{}.ffn.gate.0.weight"},
      {"encoder.block.{}.layer.1.DenseReluDense.wi_1.weight", "blocks.{}.ffn.fc1.weight"},
      {"encoder.block.{}.layer.1.DenseReluDense.wo.weight", "blocks.{}.ffn.fc2.weight"},
      {"encoder.final_layer_norm.weight", "norm.weight"},
      {"decoder.*", nullptr},
      {"lm_head.weight", nullptr},
  };
}

// T5 v1.1: transformers names are the official ones; the tied embedding copy and a decoder
// (full T5ForConditionalGeneration files) are not part of the encoder.
std::vector<Rule> t5_hf_rules() {
  return {
      {"shared.weight", "shared.weight"},
      {"encoder.embed_tokens.weight", "shared.weight"},
      {"decoder.*", nullptr},
      {"lm_head.weight", nullptr},
  };
}

// CLIPTextModel names are official; buffers, the projection and a vision tower are not used.
std::vector<Rule> clip_hf_rules() {
  return {
      {"text_model.embeddings.position_ids", nullptr},
      {"text_projection.weight", nullptr},
      {"visual_projection.weight", nullptr},
      {"logit_scale", nullptr},
      {"vision_model.*", nullptr},
  };
}

}  // namespace

const std::vector<LayoutSpec>& text_specs() {
  static const std::vector<LayoutSpec> specs = {
      {Family::umt5,
       Layout::official,
       {"token_embedding.weight", "blocks.0.attn.q.weight", "blocks.0.pos_embedding.embedding.weight"},
       {},
       {}},
      {Family::umt5,
       Layout::hf,
       {"encoder.block.0.layer.0.SelfAttention.q.weight",
        "encoder.block.1.layer.0.SelfAttention.relative_attention_bias.weight"},
       {},
       umt5_hf_rules()},
      {Family::t5_xxl,
       Layout::hf,
       {"encoder.block.0.layer.0.SelfAttention.q.weight",
        "encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"},
       {"encoder.block.1.layer.0.SelfAttention.relative_attention_bias.weight"},
       t5_hf_rules()},
      {Family::clip_l,
       Layout::hf,
       {"text_model.embeddings.token_embedding.weight", "text_model.encoder.layers.0.self_attn.q_proj.weight"},
       {},
       clip_hf_rules()},
  };
  return specs;
}

std::vector<ExpectedTensor> expected_t5(Family f, const T5Config& c) {
  std::vector<ExpectedTensor> out;
  const Shape bias{c.num_buckets, c.num_heads};
  if (f == Family::umt5) {
    out.push_back({"token_embedding.weight", {c.vocab, c.dim}});
    if (c.shared_pos) out.push_back({"pos_embedding.embedding.weight", bias});
    for (int64_t i = 0; i < c.num_layers; ++i) {
      const std::string b = cat("blocks.", i, ".");
      out.push_back({b + "norm1.weight", {c.dim}});
      for (const char* m : {"q", "k", "v"}) out.push_back({b + "attn." + m + ".weight", {c.dim_attn, c.dim}});
      out.push_back({b + "attn.o.weight", {c.dim, c.dim_attn}});
      out.push_back({b + "norm2.weight", {c.dim}});
      out.push_back({b + "ffn.gate.0.weight", {c.dim_ffn, c.dim}});
      out.push_back({b + "ffn.fc1.weight", {c.dim_ffn, c.dim}});
      out.push_back({b + "ffn.fc2.weight", {c.dim, c.dim_ffn}});
      if (!c.shared_pos) out.push_back({b + "pos_embedding.embedding.weight", bias});
    }
    out.push_back({"norm.weight", {c.dim}});
    return out;
  }
  out.push_back({"shared.weight", {c.vocab, c.dim}});
  for (int64_t i = 0; i < c.num_layers; ++i) {
    const std::string b = cat("encoder.block.", i, ".layer.");
    out.push_back({b + "0.layer_norm.weight", {c.dim}});
    for (const char* m : {"q", "k", "v"}) out.push_back({b + "0.SelfAttention." + m + ".weight", {c.dim_attn, c.dim}});
    out.push_back({b + "0.SelfAttention.o.weight", {c.dim, c.dim_attn}});
    if (i == 0 || !c.shared_pos) out.push_back({b + "0.SelfAttention.relative_attention_bias.weight", bias});
    out.push_back({b + "1.layer_norm.weight", {c.dim}});
    out.push_back({b + "1.DenseReluDense.wi_0.weight", {c.dim_ffn, c.dim}});
    out.push_back({b + "1.DenseReluDense.wi_1.weight", {c.dim_ffn, c.dim}});
    out.push_back({b + "1.DenseReluDense.wo.weight", {c.dim, c.dim_ffn}});
  }
  out.push_back({"encoder.final_layer_norm.weight", {c.dim}});
  return out;
}

std::vector<ExpectedTensor> expected_clip(const ClipTextConfig& c) {
  std::vector<ExpectedTensor> out;
  const int64_t w = c.hidden_size;
  out.push_back({"text_model.embeddings.token_embedding.weight", {c.vocab_size, w}});
  out.push_back({"text_model.embeddings.position_embedding.weight", {c.max_position_embeddings, w}});
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    const std::string b = cat("text_model.encoder.layers.", i, ".");
    for (const char* m : {"q_proj", "k_proj", "v_proj", "out_proj"}) add_linear(out, b + "self_attn." + m, {w, w});
    add_linear(out, b + "layer_norm1", {w});
    add_linear(out, b + "mlp.fc1", {c.intermediate_size, w});
    add_linear(out, b + "mlp.fc2", {w, c.intermediate_size});
    add_linear(out, b + "layer_norm2", {w});
  }
  add_linear(out, "text_model.final_layer_norm", {w});
  return out;
}

T5Config t5_from_json(Family f, const nlohmann::json& j, const std::string& what) {
  T5Config c = known_configs(f)[0].as<T5Config>();
  read_json(j, {"vocab", "vocab_size"}, c.vocab, what);
  read_json(j, {"dim", "d_model"}, c.dim, what);
  read_json(j, {"dim_ffn", "d_ff"}, c.dim_ffn, what);
  read_json(j, {"num_heads"}, c.num_heads, what);
  read_json(j, {"num_layers"}, c.num_layers, what);
  read_json(j, {"num_buckets", "relative_attention_num_buckets"}, c.num_buckets, what);
  read_json(j, {"max_distance", "relative_attention_max_distance"}, c.max_distance, what);
  read_json(j, {"shared_pos"}, c.shared_pos, what);
  read_json(j, {"eps", "layer_norm_epsilon"}, c.eps, what);
  int64_t d_kv = 0;
  if (!read_json(j, {"dim_attn"}, c.dim_attn, what))
    c.dim_attn = read_json(j, {"d_kv"}, d_kv, what) ? d_kv * c.num_heads : c.dim;
  check_count(what, "num_layers", c.num_layers);
  DK_CHECK(c.num_heads > 0 && c.dim_attn % c.num_heads == 0, what, ": dim_attn ", c.dim_attn,
           " is not a multiple of num_heads ", c.num_heads);
  return c;
}

ClipTextConfig clip_from_json(const nlohmann::json& j, const std::string& what) {
  ClipTextConfig c;
  read_json(j, {"vocab_size"}, c.vocab_size, what);
  read_json(j, {"hidden_size"}, c.hidden_size, what);
  read_json(j, {"intermediate_size"}, c.intermediate_size, what);
  read_json(j, {"num_hidden_layers"}, c.num_hidden_layers, what);
  read_json(j, {"num_attention_heads"}, c.num_attention_heads, what);
  read_json(j, {"max_position_embeddings"}, c.max_position_embeddings, what);
  read_json(j, {"hidden_act"}, c.hidden_act, what);
  read_json(j, {"layer_norm_eps"}, c.layer_norm_eps, what);
  check_count(what, "num_hidden_layers", c.num_hidden_layers);
  DK_CHECK(c.num_attention_heads > 0 && c.hidden_size % c.num_attention_heads == 0, what, ": hidden_size ",
           c.hidden_size, " is not a multiple of num_attention_heads ", c.num_attention_heads);
  return c;
}

T5Config t5_from_shapes(Family f, const Shapes& s) {
  T5Config c = known_configs(f)[0].as<T5Config>();
  const bool wan = f == Family::umt5;
  const std::string emb = wan ? "token_embedding.weight" : "shared.weight";
  const std::string q = wan ? "blocks.0.attn.q.weight" : "encoder.block.0.layer.0.SelfAttention.q.weight";
  const std::string ffn = wan ? "blocks.0.ffn.fc1.weight" : "encoder.block.0.layer.1.DenseReluDense.wi_1.weight";
  const std::string shared_bias =
      wan ? "pos_embedding.embedding.weight" : "encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight";
  const std::string layer_bias = wan ? "blocks.0.pos_embedding.embedding.weight"
                                     : "encoder.block.1.layer.0.SelfAttention.relative_attention_bias.weight";
  c.vocab = shape_dim(s, emb, 0);
  c.dim = shape_dim(s, emb, 1);
  c.dim_attn = shape_dim(s, q, 0);
  c.dim_ffn = shape_dim(s, ffn, 0);
  c.num_layers = count_blocks(s, wan ? "blocks." : "encoder.block.");
  c.shared_pos = wan ? has(s, shared_bias) : !has(s, layer_bias);
  const std::string& bias = wan && !c.shared_pos ? layer_bias : shared_bias;
  c.num_buckets = shape_dim(s, bias, 0);
  c.num_heads = shape_dim(s, bias, 1);
  return c;
}

ClipTextConfig clip_from_shapes(const Shapes& s) {
  ClipTextConfig c;
  c.vocab_size = shape_dim(s, "text_model.embeddings.token_embedding.weight", 0);
  c.hidden_size = shape_dim(s, "text_model.embeddings.token_embedding.weight", 1);
  c.max_position_embeddings = shape_dim(s, "text_model.embeddings.position_embedding.weight", 0);
  c.intermediate_size = shape_dim(s, "text_model.encoder.layers.0.mlp.fc1.weight", 0);
  c.num_hidden_layers = count_blocks(s, "text_model.encoder.layers.");
  c.num_attention_heads = c.hidden_size % 64 == 0 ? c.hidden_size / 64 : 1;  // CLIP text towers use head dim 64
  return c;
}

}  // namespace ditkit::weights::detail
