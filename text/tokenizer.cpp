#include "text/tokenizer.h"

#include <sentencepiece_processor.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "text/clean.h"

namespace ditkit::text {
namespace {

std::string read_file(const std::filesystem::path& path) {
  std::error_code ec;
  DK_CHECK(std::filesystem::is_regular_file(path, ec), "tokenizer: model file '", path.string(),
           "' does not exist or is not a regular file");
  std::ifstream in(path, std::ios::binary);
  DK_CHECK(in, "tokenizer: cannot open model file '", path.string(), "'");
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  DK_CHECK(!in.bad(), "tokenizer: error reading model file '", path.string(), "'");
  return bytes;
}

class SentencePieceTokenizer final : public Tokenizer {
 public:
  // `model` is a serialized SentencePiece ModelProto; `path` names its source in errors.
  SentencePieceTokenizer(const std::string& model, std::string path, Clean clean)
      : Tokenizer(clean), path_(std::move(path)) {
    const auto status = sp_.LoadFromSerializedProto(model);
    DK_CHECK(status.ok(), "tokenizer: '", path_, "' is not a valid SentencePiece model (", status.ToString(), ")");
    // transformers' T5Tokenizer looks the special tokens up by piece name.
    pad_ = special_id("<pad>");
    eos_ = special_id("</s>");
  }

  std::vector<int64_t> encode_pieces(const std::string& text) const override {
    std::vector<int> ids;
    const auto status = sp_.Encode(text, &ids);
    DK_CHECK(status.ok(), "tokenizer: SentencePiece encoding with '", path_, "' failed: ", status.ToString());
    return std::vector<int64_t>(ids.begin(), ids.end());
  }

  int64_t vocab_size() const override { return sp_.GetPieceSize(); }
  int64_t pad_id() const override { return pad_; }
  int64_t eos_id() const override { return eos_; }

 private:
  int64_t special_id(const std::string& piece) const {
    const int id = sp_.PieceToId(piece);
    DK_CHECK(id >= 0 && sp_.IdToPiece(id) == piece, "tokenizer: SentencePiece model '", path_,
             "' has no '", piece, "' piece (a T5 tokenizer needs <pad> and </s>)");
    return id;
  }

  std::string path_;
  sentencepiece::SentencePieceProcessor sp_;
  int64_t pad_ = 0, eos_ = 1;
};

// Protobuf wire format, only what a SentencePiece ModelProto needs.
class ProtoWriter {
 public:
  void integer(int field, int64_t v) {
    tag(field, 0);
    varint(uint64_t(v));  // negative int32 values take ten bytes, as protobuf encodes them
  }
  void real(int field, float v) {
    tag(field, 5);
    uint32_t u = 0;
    std::memcpy(&u, &v, sizeof u);
    for (int i = 0; i < 4; ++i) out_.push_back(char(u >> (8 * i)));
  }
  void bytes(int field, std::string_view v) {
    tag(field, 2);
    varint(v.size());
    out_ += v;
  }
  const std::string& str() const { return out_; }

 private:
  void tag(int field, int wire) { varint(uint64_t(field) << 3 | uint64_t(wire)); }
  void varint(uint64_t v) {
    for (; v >= 0x80; v >>= 7) out_.push_back(char(v | 0x80));
    out_.push_back(char(v));
  }
  std::string out_;
};

std::string base64_decode(std::string_view in, const std::string& what) {
  const auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (const char c : in) {
    if (c == '=') break;
    const int v = value(c);
    DK_CHECK(v >= 0, "tokenizer: ", what, " is not valid base64");
    acc = (acc << 6) | uint32_t(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(char((acc >> bits) & 0xFF));
    }
  }
  return out;
}

// The first JSON object of the given "type" in a (possibly nested "Sequence") component.
const nlohmann::json* find_component(const nlohmann::json& node, const std::string& type) {
  if (!node.is_object()) return nullptr;
  if (node.value("type", std::string()) == type) return &node;
  for (const char* list : {"normalizers", "pretokenizers"}) {
    if (!node.contains(list) || !node[list].is_array()) continue;
    for (const auto& child : node[list])
      if (const auto* found = find_component(child, type)) return found;
  }
  return nullptr;
}

bool is_byte_piece(const std::string& piece) {
  const auto hex = [](char c) { return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F'); };
  return piece.size() == 6 && piece.starts_with("<0x") && piece[5] == '>' && hex(piece[3]) && hex(piece[4]);
}

// A SentencePiece ModelProto equivalent to an HF fast-tokenizer Unigram `tokenizer.json` (what
// transformers' SpmConverter writes): vocabulary and scores, unk id, byte_fallback flag, the
// Precompiled normalizer's charsmap (SentencePiece's own format) and Metaspace's dummy prefix.
std::string model_from_tokenizer_json(const std::string& text, const std::string& path) {
  try {
    const nlohmann::json j = nlohmann::json::parse(text);
    const nlohmann::json& model = j.at("model");
    DK_CHECK(model.value("type", std::string()) == "Unigram", "tokenizer: '", path,
             "' holds a ", model.value("type", std::string("?")), " model; only Unigram (T5/umT5) is supported");
    const bool byte_fallback = model.value("byte_fallback", false);
    const int64_t unk_id = model.contains("unk_id") && model["unk_id"].is_number_integer() ? model["unk_id"].get<int64_t>() : -1;
    std::map<std::string, bool> added;  // content -> special
    if (j.contains("added_tokens"))
      for (const auto& t : j["added_tokens"]) added[t.at("content").get<std::string>()] = t.value("special", false);

    ProtoWriter proto;
    const auto& vocab = model.at("vocab");
    for (size_t id = 0; id < vocab.size(); ++id) {
      const std::string piece = vocab[id].at(0).get<std::string>();
      // SentencePiece piece types: 1 normal, 2 unknown, 3 control, 4 user defined, 6 byte.
      int type = 1;
      if (int64_t(id) == unk_id) {
        type = 2;
      } else if (const auto it = added.find(piece); it != added.end()) {
        type = it->second ? 3 : 4;
      } else if (byte_fallback && is_byte_piece(piece)) {
        type = 6;
      }
      ProtoWriter p;
      p.bytes(1, piece);
      p.real(2, vocab[id].at(1).get<float>());
      p.integer(3, type);
      proto.bytes(1, p.str());
    }
    ProtoWriter trainer;
    trainer.integer(3, 1);  // model_type UNIGRAM
    trainer.integer(4, int64_t(vocab.size()));
    trainer.integer(35, byte_fallback);
    trainer.integer(40, unk_id);
    proto.bytes(2, trainer.str());

    ProtoWriter normalizer;
    const auto* precompiled = j.contains("normalizer") ? find_component(j["normalizer"], "Precompiled") : nullptr;
    const std::string charsmap =
        precompiled ? base64_decode(precompiled->at("precompiled_charsmap").get<std::string>(),
                                    "precompiled_charsmap of '" + path + "'")
                    : std::string();
    normalizer.bytes(1, charsmap.empty() ? "identity" : "nmt_nfkc");
    normalizer.bytes(2, charsmap);
    const auto* metaspace = j.contains("pre_tokenizer") ? find_component(j["pre_tokenizer"], "Metaspace") : nullptr;
    const bool dummy_prefix = !metaspace || (metaspace->value("add_prefix_space", true) &&
                                             metaspace->value("prepend_scheme", std::string("always")) != "never");
    normalizer.integer(3, dummy_prefix);
    normalizer.integer(4, 1);  // remove_extra_whitespaces
    normalizer.integer(5, 1);  // escape_whitespaces
    proto.bytes(3, normalizer.str());
    return proto.str();
  } catch (const nlohmann::json::exception& e) {
    fail("tokenizer: '", path, "' is not a valid tokenizer.json: ", e.what());
  }
}

}  // namespace

std::string Tokenizer::cleaned(const std::string& prompt) const {
  return clean_ == Clean::whitespace ? clean_whitespace(prompt) : prompt;
}

Tokens Tokenizer::encode(const std::string& prompt, int64_t text_len) const {
  DK_CHECK(text_len >= 1, "tokenizer: text_len must be at least 1 (room for eos), got ", text_len);
  std::vector<int64_t> pieces = encode_pieces(cleaned(prompt));
  Tokens t;
  t.ids.assign(pieces.begin(), pieces.begin() + std::min<int64_t>(int64_t(pieces.size()), text_len - 1));
  t.ids.push_back(eos_id());
  t.seq_len = int64_t(t.ids.size());
  t.mask.assign(size_t(t.seq_len), 1);
  t.ids.resize(size_t(text_len), pad_id());
  t.mask.resize(size_t(text_len), 0);
  return t;
}

TokenBatch Tokenizer::encode_batch(const std::vector<std::string>& prompts, int64_t text_len) const {
  const auto n = int64_t(prompts.size());
  TokenBatch batch{Tensor::empty({n, text_len}, DType::I64), Tensor::empty({n, text_len}, DType::I64), {}};
  for (int64_t i = 0; i < n; ++i) {
    const Tokens t = encode(prompts[size_t(i)], text_len);
    std::copy(t.ids.begin(), t.ids.end(), batch.ids.data<int64_t>() + i * text_len);
    std::copy(t.mask.begin(), t.mask.end(), batch.mask.data<int64_t>() + i * text_len);
    batch.seq_lens.push_back(t.seq_len);
  }
  return batch;
}

std::unique_ptr<Tokenizer> load_t5_tokenizer(const std::string& path, Clean clean) {
  std::error_code ec;
  std::filesystem::path file = path;
  if (std::filesystem::is_directory(file, ec)) {
    file /= std::filesystem::exists(file / "spiece.model", ec) ? "spiece.model" : "tokenizer.json";
    DK_CHECK(std::filesystem::exists(file, ec), "tokenizer: folder '", path,
             "' has neither spiece.model nor tokenizer.json");
  }
  const std::string bytes = read_file(file);
  if (file.extension() == ".json")
    return std::make_unique<SentencePieceTokenizer>(model_from_tokenizer_json(bytes, file.string()), file.string(), clean);
  return std::make_unique<SentencePieceTokenizer>(bytes, file.string(), clean);
}

}  // namespace ditkit::text
