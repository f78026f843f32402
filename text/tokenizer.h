// Text tokenizers. The umT5 / T5 tokenizer follows the official Wan2.1 path
// (wan/modules/tokenizers.py HuggingfaceTokenizer with transformers' T5 conventions):
// optional prompt cleaning, SentencePiece encoding (with the model's byte fallback), at most
// text_len-1 pieces, then eos, then right-padding with pad to text_len; mask 1 on the real
// tokens including eos.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace ditkit::text {

// Which prompt cleaning runs before encoding (Wan2.1 uses whitespace; FLUX's T5 none).
enum class Clean { none, whitespace };

struct Tokens {
  std::vector<int64_t> ids, mask;  // text_len entries each
  int64_t seq_len = 0;             // real tokens including eos (= sum of mask)
};

struct TokenBatch {
  Tensor ids, mask;               // I64 [N, text_len] on the CPU
  std::vector<int64_t> seq_lens;  // N entries
};

class Tokenizer {
 public:
  explicit Tokenizer(Clean clean) : clean_(clean) {}
  virtual ~Tokenizer() = default;

  // Ids of the pieces of `text` as given (no cleaning, no special tokens, no truncation).
  virtual std::vector<int64_t> encode_pieces(const std::string& text) const = 0;
  virtual int64_t vocab_size() const = 0;
  virtual int64_t pad_id() const = 0;
  virtual int64_t eos_id() const = 0;

  Clean clean() const { return clean_; }
  // The prompt after this tokenizer's cleaning (UTF-8).
  std::string cleaned(const std::string& prompt) const;
  // Cleaned, encoded, truncated to text_len-1 pieces, eos appended, padded to text_len.
  Tokens encode(const std::string& prompt, int64_t text_len) const;
  TokenBatch encode_batch(const std::vector<std::string>& prompts, int64_t text_len) const;

 private:
  Clean clean_;
};

// Loads a T5 tokenizer from a SentencePiece `spiece.model`, from an HF fast-tokenizer
// `tokenizer.json` (Unigram model; its vocabulary, scores, byte_fallback flag, Precompiled
// normalizer and Metaspace prefix are turned into an equivalent SentencePiece model), or from a
// folder holding either (spiece.model preferred, as transformers' slow T5Tokenizer reads it).
// Errors name the path and what was expected.
std::unique_ptr<Tokenizer> load_t5_tokenizer(const std::string& path, Clean clean = Clean::whitespace);

}  // namespace ditkit::text
