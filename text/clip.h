// CLIP text side as FLUX uses it: the byte-level BPE tokenizer (openai/CLIP simple_tokenizer,
// with the Hugging Face CLIPTokenizer padding FLUX's HFEmbedder asks for) and the text tower
// (transformers CLIPTextModel: last_hidden_state and the pooled EOT state, no projection).
//
// Tokenizer: clean (ftfy, HTML-unescape twice, whitespace collapse, strip), lower-case,
// pre-tokenise with CLIP's pattern (letters runs, single digits, contractions, other runs),
// map bytes to CLIP's unicode symbols, mark the word end with "</w>", merge lowest rank first.
// Ids = [<|startoftext|>] + bpe[:L-2] + [<|endoftext|>], right-padded to L with the pad token
// (<|endoftext|> unless the tokenizer folder names another).
//
// Encoder (pre-LN): x = tok_emb[ids] + pos_emb; per layer x += out_proj(causal MHA(LN1(x)));
// x += fc2(act(fc1(LN2(x)))); hidden = LN_final(x); pooled = hidden at argmax(ids) (the first
// <|endoftext|>: it has the largest id). Weights stay in their stored dtype; math is f32.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/tensor.h"
#include "weights/layout.h"

namespace ditkit::text {

class ClipTokenizer {
 public:
  static constexpr int64_t kContextLength = 77;

  // The standard CLIP vocabulary (openai/CLIP bpe_simple_vocab_16e6.txt.gz) carried in the
  // binary, for single-file users without tokenizer files. Built once.
  static const ClipTokenizer& builtin();
  // openai's merges file (bpe_simple_vocab_16e6.txt, plain or .gz): 256 byte symbols, the same
  // with "</w>", the first 48894 merges, then the two special tokens (49408 ids).
  static ClipTokenizer from_bpe_file(const std::string& path);
  // A diffusers / transformers tokenizer folder (vocab.json + merges.txt; the pad token from
  // special_tokens_map.json or tokenizer_config.json when present), a folder holding
  // bpe_simple_vocab_16e6.txt.gz, or a merges file (from_bpe_file). Errors name the path and
  // what was expected.
  static ClipTokenizer load(const std::string& path);

  // The prompt after cleaning and lower-casing (UTF-8). openai's steps; transformers' slow
  // CLIPTokenizer skips the HTML unescaping (only prompts with entities differ).
  static std::string cleaned(std::string_view prompt);
  // BPE ids of the cleaned prompt (no special tokens, no truncation).
  std::vector<int64_t> encode_pieces(std::string_view prompt) const;
  // [sot] + the first length-2 BPE ids + [eot], padded to `length` with pad_id().
  std::vector<int64_t> encode(std::string_view prompt, int64_t length = kContextLength) const;
  // I64 [N, length] on the CPU.
  Tensor encode_batch(const std::vector<std::string>& prompts, int64_t length = kContextLength) const;

  int64_t vocab_size() const { return int64_t(vocab_.size()); }
  // The token string of an id (CLIP's byte symbols, "</w>" marking a word end).
  const std::string& token(int64_t id) const;
  int64_t sot_id() const { return sot_; }
  int64_t eot_id() const { return eot_; }
  int64_t pad_id() const { return pad_; }

 private:
  ClipTokenizer() = default;
  // The vocabulary openai's SimpleTokenizer derives from its merges file's text.
  static ClipTokenizer from_openai_merges(std::string_view text, const std::string& source);
  // From the vocabulary's token strings in id order and the merges in rank order.
  static ClipTokenizer build(std::vector<std::string> vocab, const std::vector<std::pair<std::string, std::string>>& merges,
                             const std::string& pad_token, const std::string& source);
  std::vector<std::string> bpe(const std::string& word) const;  // word in CLIP's byte symbols

  std::string source_;                              // named in errors
  std::vector<std::string> vocab_;                  // id -> token
  std::unordered_map<std::string, int64_t> ids_;    // token -> id
  std::unordered_map<std::string, int64_t> ranks_;  // "first second" -> merge rank
  int64_t sot_ = 0, eot_ = 0, pad_ = 0;
};

struct ClipOutput {
  Tensor hidden;  // f32 [N, L, hidden_size] (last_hidden_state, after the final LayerNorm)
  Tensor pooled;  // f32 [N, hidden_size] (pooler_output)
};

class ClipTextEncoder {
 public:
  // Takes the tensors of a clip_l checkpoint (transformers CLIPTextModel names, any layout the
  // key maps know), moved to `device`. Throws naming missing or mis-shaped tensors and
  // unsupported hidden_act values (quick_gelu, gelu).
  ClipTextEncoder(const weights::ModelWeights& weights, const weights::ClipTextConfig& config,
                  Device device = Device::cpu());

  // ids: integer [N, L] with L <= max_position_embeddings (no attention mask, as FLUX calls
  // it). `hidden`, when given, receives the embedding output followed by every layer's output.
  ClipOutput forward(const Tensor& ids, std::vector<Tensor>* hidden = nullptr) const;

  const weights::ClipTextConfig& config() const { return config_; }
  Device device() const { return device_; }

 private:
  struct Layer {
    Tensor ln1_w, ln1_b, q_w, q_b, k_w, k_b, v_w, v_b, out_w, out_b, ln2_w, ln2_b, fc1_w, fc1_b, fc2_w, fc2_b;
  };
  Tensor attention(const Layer& l, const Tensor& x, const Tensor& causal) const;
  Tensor mlp(const Layer& l, const Tensor& x) const;

  weights::ClipTextConfig config_;
  Device device_;
  Tensor token_embedding_, position_embedding_, final_ln_w_, final_ln_b_;
  std::vector<Layer> layers_;
};

}  // namespace ditkit::text
