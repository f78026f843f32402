#include "text/umt5.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/ops.h"

namespace ditkit::text {

Tensor relative_position_buckets(int64_t lq, int64_t lk, int64_t num_buckets, int64_t max_distance) {
  const int64_t half = num_buckets / 2, max_exact = half / 2;
  DK_CHECK(max_exact > 0 && max_distance > max_exact, "T5 relative position: num_buckets ", num_buckets,
           " and max_distance ", max_distance, " leave no logarithmic range");
  // float32 like the official torch code, so bucket borders fall where they fall there.
  const float log_range = float(std::log(double(max_distance) / double(max_exact)));
  Tensor out = Tensor::empty({lq, lk}, DType::I64);
  int64_t* b = out.data<int64_t>();
  for (int64_t q = 0; q < lq; ++q) {
    for (int64_t k = 0; k < lk; ++k) {
      const int64_t rel = k - q, n = std::abs(rel);
      const int64_t large =
          max_exact + int64_t(std::log(float(n) / float(max_exact)) / log_range * float(half - max_exact));
      b[q * lk + k] = (rel > 0 ? half : 0) + (n < max_exact ? n : std::min(large, half - 1));
    }
  }
  return out;
}

UMT5Encoder::UMT5Encoder(const weights::ModelWeights& w, const weights::T5Config& c, Device device)
    : config_(c), device_(device) {
  const weights::Family family = w.family();
  DK_CHECK(family == weights::Family::umt5 || family == weights::Family::t5_xxl, "T5 encoder: checkpoint holds a ",
           weights::family_name(family), " model, expected umt5 or t5_xxl");
  DK_CHECK(c.num_heads > 0 && c.dim_attn % c.num_heads == 0, "T5 encoder: dim_attn ", c.dim_attn,
           " is not a multiple of num_heads ", c.num_heads);
  weights::validate({family, c}, w.shapes(), "T5 encoder");
  auto get = [&](const std::string& name) { return w.get(name).to(device); };

  // Wan's T5Encoder names, or transformers' T5 names (the official ones for T5 v1.1).
  const bool wan = family == weights::Family::umt5;
  token_embedding_ = get(wan ? "token_embedding.weight" : "shared.weight");
  norm_ = get(wan ? "norm.weight" : "encoder.final_layer_norm.weight");
  if (c.shared_pos)
    shared_pos_ = get(wan ? "pos_embedding.embedding.weight"
                          : "encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight");
  auto block_tensor = [&](int64_t i, const char* wan_name, const char* hf_name) {
    return get(wan ? cat("blocks.", i, ".", wan_name) : cat("encoder.block.", i, ".layer.", hf_name));
  };
  for (int64_t i = 0; i < c.num_layers; ++i) {
    Block b;
    b.norm1 = block_tensor(i, "norm1.weight", "0.layer_norm.weight");
    b.q = block_tensor(i, "attn.q.weight", "0.SelfAttention.q.weight");
    b.k = block_tensor(i, "attn.k.weight", "0.SelfAttention.k.weight");
    b.v = block_tensor(i, "attn.v.weight", "0.SelfAttention.v.weight");
    b.o = block_tensor(i, "attn.o.weight", "0.SelfAttention.o.weight");
    b.norm2 = block_tensor(i, "norm2.weight", "1.layer_norm.weight");
    b.gate = block_tensor(i, "ffn.gate.0.weight", "1.DenseReluDense.wi_0.weight");
    b.fc1 = block_tensor(i, "ffn.fc1.weight", "1.DenseReluDense.wi_1.weight");
    b.fc2 = block_tensor(i, "ffn.fc2.weight", "1.DenseReluDense.wo.weight");
    if (!c.shared_pos)
      b.pos = block_tensor(i, "pos_embedding.embedding.weight", "0.SelfAttention.relative_attention_bias.weight");
    blocks_.push_back(std::move(b));
  }
}

const Tensor& UMT5Encoder::pos_table(int64_t block) const {
  DK_CHECK(block >= 0 && block < int64_t(blocks_.size()), "T5 encoder: block ", block, " out of range [0, ",
           blocks_.size(), ")");
  return config_.shared_pos ? shared_pos_ : blocks_[size_t(block)].pos;
}

Tensor UMT5Encoder::position_bias(int64_t block, int64_t lq, int64_t lk) const {
  return position_bias(block, relative_position_buckets(lq, lk, config_.num_buckets, config_.max_distance).to(device_));
}

Tensor UMT5Encoder::position_bias(int64_t block, const Tensor& buckets) const {
  // table[bucket] is [lq, lk, heads]; scores are laid out [heads, lq, lk].
  return ops::embedding(pos_table(block), buckets).permute({2, 0, 1}).unsqueeze(0);
}

Tensor UMT5Encoder::attention(const Block& b, const Tensor& x, const Tensor& bias) const {
  const int64_t n = x.dim(0), l = x.dim(1), heads = config_.num_heads, head_dim = config_.dim_attn / heads;
  auto split_heads = [&](const Tensor& t) { return t.reshape({n, l, heads, head_dim}).permute({0, 2, 1, 3}); };
  const Tensor q = split_heads(ops::linear(x, b.q)), k = split_heads(ops::linear(x, b.k)),
               v = split_heads(ops::linear(x, b.v));
  // No 1/sqrt(head_dim): T5 is trained without it.
  const Tensor attn = ops::softmax(ops::add(ops::matmul(q, k, false, true), bias), -1);
  const Tensor out = ops::matmul(attn, v).permute({0, 2, 1, 3}).reshape({n, l, config_.dim_attn});
  return ops::linear(out, b.o);
}

Tensor UMT5Encoder::feed_forward(const Block& b, const Tensor& x) const {
  return ops::linear(ops::mul(ops::linear(x, b.fc1), ops::gelu(ops::linear(x, b.gate), true)), b.fc2);
}

Tensor UMT5Encoder::forward(const Tensor& ids, const Tensor& mask, std::vector<Tensor>* hidden) const {
  DK_CHECK(ids.ndim() == 2, "T5 encoder: ids must be [N, L], got ", ids.str());
  DK_CHECK(mask.shape() == ids.shape(), "T5 encoder: mask ", mask.str(), " does not match ids ", ids.str());
  const int64_t n = ids.dim(0), l = ids.dim(1);
  const float eps = float(config_.eps);

  // Padding keys get the float32 minimum as score (the official masked_fill), i.e. weight 0.
  std::vector<float> key_bias = mask.to_vector();
  for (float& m : key_bias) m = m == 0.0f ? std::numeric_limits<float>::lowest() : 0.0f;
  const Tensor mask_bias = Tensor::from_vector(key_bias, {n, 1, 1, l}).to(device_);
  const Tensor buckets = relative_position_buckets(l, l, config_.num_buckets, config_.max_distance).to(device_);
  Tensor shared_bias;
  if (config_.shared_pos) shared_bias = ops::add(position_bias(0, buckets), mask_bias);

  Tensor x = ops::embedding(token_embedding_, ids.to(device_));
  if (hidden) hidden->assign({x});
  for (size_t i = 0; i < blocks_.size(); ++i) {
    const Block& b = blocks_[i];
    const Tensor bias = config_.shared_pos ? shared_bias : ops::add(position_bias(int64_t(i), buckets), mask_bias);
    x = ops::add(x, attention(b, ops::rms_norm(x, b.norm1, eps), bias));
    x = ops::add(x, feed_forward(b, ops::rms_norm(x, b.norm2, eps)));
    if (hidden) hidden->push_back(x);
  }
  return ops::rms_norm(x, norm_, eps);
}

std::vector<Tensor> UMT5Encoder::encode(const Tensor& ids, const Tensor& mask) const {
  const Tensor out = forward(ids, mask);
  const std::vector<float> m = mask.to_vector();
  const int64_t l = ids.dim(1);
  std::vector<Tensor> context;
  for (int64_t i = 0; i < ids.dim(0); ++i) {
    const int64_t seq_len = std::count_if(m.begin() + i * l, m.begin() + (i + 1) * l, [](float v) { return v > 0; });
    context.push_back(out.select(0, i).narrow(0, 0, seq_len));
  }
  return context;
}

}  // namespace ditkit::text
