// The T5 text encoder: Wan2.1's umT5 (wan/modules/t5.py T5Encoder, shared_pos false: every
// block has its own relative position bias table) and, with shared_pos true, the T5 v1.1
// encoder FLUX uses (transformers T5EncoderModel: block 0's table serves every block).
//
// Per block (pre-norm): x += Attn(RMS(x)); x += FFN(RMS(x)); then a final RMS norm.
// Attention has no biases and no 1/sqrt(d) scaling (T5 folds it into the q weights); the
// relative position bias is added to the scores and padding keys (mask 0) are excluded.
// FFN: fc2(fc1(x) * gelu_tanh(gate(x))). Weights stay in their stored dtype; math is f32.
#pragma once
#include <vector>

#include "core/tensor.h"
#include "weights/layout.h"

namespace ditkit::text {

// T5's bidirectional relative position buckets of rel = key_pos - query_pos: half of the
// buckets per direction, exact below half of those, logarithmic up to max_distance.
// I64 [lq, lk] on the CPU.
Tensor relative_position_buckets(int64_t lq, int64_t lk, int64_t num_buckets, int64_t max_distance);

class UMT5Encoder {
 public:
  // Takes the tensors of a umt5 (Wan names) or t5_xxl (transformers names) checkpoint, moved to
  // `device`. Throws naming missing or mis-shaped tensors.
  UMT5Encoder(const weights::ModelWeights& weights, const weights::T5Config& config, Device device = Device::cpu());

  // ids and mask: integer [N, L] (mask 0 marks padding). Returns f32 [N, L, dim] on the
  // encoder's device; padding rows are computed too. `hidden`, when given, receives the
  // embedding output followed by the output of every block (before the final norm).
  Tensor forward(const Tensor& ids, const Tensor& mask, std::vector<Tensor>* hidden = nullptr) const;

  // What the Wan pipeline feeds the DiT (T5EncoderModel.__call__): forward on the padded
  // batch, then each prompt's first seq_len = sum(mask > 0) rows, [seq_len, dim] each (views
  // of the batch output).
  std::vector<Tensor> encode(const Tensor& ids, const Tensor& mask) const;

  // Relative position bias used by `block`: f32 [1, heads, lq, lk].
  Tensor position_bias(int64_t block, int64_t lq, int64_t lk) const;

  const weights::T5Config& config() const { return config_; }
  Device device() const { return device_; }

 private:
  struct Block {
    Tensor norm1, q, k, v, o, norm2, gate, fc1, fc2;
    Tensor pos;  // [num_buckets, heads]; undefined when the table is shared
  };
  const Tensor& pos_table(int64_t block) const;
  Tensor position_bias(int64_t block, const Tensor& buckets) const;
  Tensor attention(const Block& b, const Tensor& x, const Tensor& bias) const;
  Tensor feed_forward(const Block& b, const Tensor& x) const;

  weights::T5Config config_;
  Device device_;
  Tensor token_embedding_, shared_pos_, norm_;
  std::vector<Block> blocks_;
};

}  // namespace ditkit::text
