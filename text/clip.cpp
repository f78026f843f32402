// CLIP BPE tokenizer (openai/CLIP clip/simple_tokenizer.py, HF CLIPTokenizer files) and text
// tower (transformers CLIPTextModel).
#include "text/clip.h"

#include <unicode/uchar.h>
#include <unicode/locid.h>
#include <unicode/unistr.h>
#include <zlib.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/ops.h"
#include "text/clean.h"

namespace ditkit::text {

std::string_view builtin_clip_vocab_gz();  // clip_vocab.cpp

namespace {

namespace fs = std::filesystem;

constexpr const char* kSot = "<|startoftext|>";
constexpr const char* kEot = "<|endoftext|>";
// Both files hold more lines than CLIP uses: 49152 ids minus 256 bytes, 256 "</w>" bytes
// and the two special tokens leave 48894 merges (openai and HF slice the same way).
constexpr size_t kMerges = 49152 - 256 - 2;

std::string read_bytes(const fs::path& path, const char* what) {
  std::error_code ec;
  DK_CHECK(fs::is_regular_file(path, ec), "CLIP tokenizer: ", what, " '", path.string(),
           "' does not exist or is not a regular file");
  std::ifstream in(path, std::ios::binary);
  DK_CHECK(in, "CLIP tokenizer: cannot open ", what, " '", path.string(), "'");
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  DK_CHECK(!in.bad(), "CLIP tokenizer: error reading ", what, " '", path.string(), "'");
  return bytes;
}

bool is_gzip(std::string_view bytes) { return bytes.size() >= 2 && bytes[0] == '\x1f' && bytes[1] == '\x8b'; }

std::string gunzip(std::string_view gz, const std::string& source) {
  z_stream zs{};
  DK_CHECK(inflateInit2(&zs, 16 + MAX_WBITS) == Z_OK, "CLIP tokenizer: zlib init failed for '", source, "'");
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(gz.data()));
  zs.avail_in = uInt(gz.size());
  std::string out;
  std::array<char, 1 << 16> buf;
  int rc = Z_OK;
  while (rc == Z_OK) {
    zs.next_out = reinterpret_cast<Bytef*>(buf.data());
    zs.avail_out = uInt(buf.size());
    rc = inflate(&zs, Z_NO_FLUSH);
    out.append(buf.data(), buf.size() - zs.avail_out);
  }
  inflateEnd(&zs);
  DK_CHECK(rc == Z_STREAM_END, "CLIP tokenizer: '", source, "' is not a valid gzip file (zlib error ", rc, ")");
  return out;
}

std::vector<std::string_view> split_lines(std::string_view text) {
  std::vector<std::string_view> lines;
  for (size_t start = 0; start <= text.size();) {
    const size_t end = std::min(text.find('\n', start), text.size());
    lines.push_back(text.substr(start, end - start));
    start = end + 1;
  }
  return lines;
}

// The merges of a merges file: the header line dropped, at most kMerges lines of "a b".
std::vector<std::pair<std::string, std::string>> parse_merges(std::string_view text, const std::string& source) {
  const std::vector<std::string_view> lines = split_lines(text);
  std::vector<std::pair<std::string, std::string>> merges;
  for (size_t i = 1; i < lines.size() && merges.size() < kMerges; ++i) {
    std::string_view line = lines[i];
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty() && i + 1 >= lines.size()) break;  // the final newline
    const size_t space = line.find(' ');
    DK_CHECK(space != std::string_view::npos && space > 0 && space + 1 < line.size() &&
                 line.find(' ', space + 1) == std::string_view::npos,
             "CLIP tokenizer: '", source, "' line ", i + 1, " is not a merge \"a b\": '", line, "'");
    merges.emplace_back(line.substr(0, space), line.substr(space + 1));
  }
  return merges;
}

std::string utf8(char32_t c) { return u32_to_utf8(std::u32string_view(&c, 1)); }

// openai's bytes_to_unicode: printable Latin-1 bytes stand for themselves, the other bytes map
// to U+0100 upwards in byte order. Symbols are kept as UTF-8.
bool printable_byte(int b) { return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF); }

const std::array<std::string, 256>& byte_symbols() {
  static const std::array<std::string, 256> table = [] {
    std::array<std::string, 256> t;
    int next = 0;
    for (int b = 0; b < 256; ++b) t[size_t(b)] = utf8(printable_byte(b) ? char32_t(b) : char32_t(256 + next++));
    return t;
  }();
  return table;
}

bool is_letter(char32_t c) { return (U_GET_GC_MASK(UChar32(c)) & U_GC_L_MASK) != 0; }
bool is_number(char32_t c) { return (U_GET_GC_MASK(UChar32(c)) & U_GC_N_MASK) != 0; }

// Python's str.lower() (full Unicode lower-casing, final sigma included).
std::u32string lower(std::u32string_view text) {
  if (text.empty()) return {};
  icu::UnicodeString s =
      icu::UnicodeString::fromUTF32(reinterpret_cast<const UChar32*>(text.data()), int32_t(text.size()));
  s.toLower(icu::Locale::getRoot());
  std::u32string out(size_t(s.countChar32()), U'\0');
  UErrorCode status = U_ZERO_ERROR;
  s.toUTF32(reinterpret_cast<UChar32*>(out.data()), int32_t(out.size()), status);
  DK_CHECK(U_SUCCESS(status), "CLIP tokenizer: ICU UTF-32 conversion failed: ", u_errorName(status));
  return out;
}

// Whether `text` continues at `pos` with `word`, compared case-insensitively (re.IGNORECASE).
bool matches_at(std::u32string_view text, size_t pos, std::u32string_view word) {
  if (text.size() - pos < word.size()) return false;
  for (size_t i = 0; i < word.size(); ++i)
    if (u_foldCase(UChar32(text[pos + i]), U_FOLD_CASE_DEFAULT) != UChar32(word[i])) return false;
  return true;
}

// re.findall with CLIP's pattern
//   <\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+
// (alternatives tried in order at each position; characters no alternative matches, i.e.
// white space, are skipped).
std::vector<std::u32string> pre_tokens(std::u32string_view text) {
  // The literal alternatives, in the pattern's order.
  static const std::u32string_view words[] = {U"<|startoftext|>", U"<|endoftext|>", U"'s", U"'t", U"'re", U"'ve",
                                              U"'m", U"'ll", U"'d"};
  std::vector<std::u32string> out;
  size_t i = 0;
  auto take_run = [&](auto&& pred) {
    size_t j = i;
    while (j < text.size() && pred(text[j])) ++j;
    out.emplace_back(text.substr(i, j - i));
    i = j;
  };
  while (i < text.size()) {
    const char32_t c = text[i];
    const auto word = std::find_if(std::begin(words), std::end(words), [&](auto w) { return matches_at(text, i, w); });
    if (word != std::end(words)) {
      out.emplace_back(text.substr(i, word->size()));  // as written: the match ignores case
      i += word->size();
    } else if (is_letter(c)) {
      take_run(is_letter);
    } else if (is_number(c)) {
      out.emplace_back(1, c);
      ++i;
    } else if (!is_white_space(c)) {
      take_run([](char32_t x) { return !is_white_space(x) && !is_letter(x) && !is_number(x); });
    } else {
      ++i;
    }
  }
  return out;
}

}  // namespace

ClipTokenizer ClipTokenizer::build(std::vector<std::string> vocab,
                                   const std::vector<std::pair<std::string, std::string>>& merges,
                                   const std::string& pad_token, const std::string& source) {
  ClipTokenizer t;
  t.source_ = source;
  t.vocab_ = std::move(vocab);
  for (size_t id = 0; id < t.vocab_.size(); ++id) t.ids_.emplace(t.vocab_[id], int64_t(id));
  for (size_t r = 0; r < merges.size(); ++r) t.ranks_.emplace(merges[r].first + " " + merges[r].second, int64_t(r));
  auto special = [&](const std::string& token) {
    const auto it = t.ids_.find(token);
    DK_CHECK(it != t.ids_.end(), "CLIP tokenizer: '", source, "' has no token '", token, "'");
    return it->second;
  };
  t.sot_ = special(kSot);
  t.eot_ = special(kEot);
  t.pad_ = special(pad_token);
  return t;
}

ClipTokenizer ClipTokenizer::from_openai_merges(std::string_view text, const std::string& source) {
  const auto merges = parse_merges(text, source);
  DK_CHECK(merges.size() == kMerges, "CLIP tokenizer: '", source, "' holds ", merges.size(), " merges, expected ",
           kMerges, " (openai/CLIP bpe_simple_vocab_16e6.txt)");
  // openai's vocabulary: the byte symbols (printable bytes first, then the rest in byte order),
  // the same with "</w>", one token per merge, then the special tokens.
  std::vector<std::string> vocab;
  for (bool printable : {true, false})
    for (int b = 0; b < 256; ++b)
      if (printable_byte(b) == printable) vocab.push_back(byte_symbols()[size_t(b)]);
  for (size_t i = 0; i < 256; ++i) vocab.push_back(vocab[i] + "</w>");
  for (const auto& [a, b] : merges) vocab.push_back(a + b);
  vocab.push_back(kSot);
  vocab.push_back(kEot);
  return build(std::move(vocab), merges, kEot, source);
}

ClipTokenizer ClipTokenizer::from_bpe_file(const std::string& path) {
  const std::string bytes = read_bytes(path, "BPE merges file");
  return from_openai_merges(is_gzip(bytes) ? gunzip(bytes, path) : bytes, path);
}

const ClipTokenizer& ClipTokenizer::builtin() {
  static const ClipTokenizer t = [] {
    const std::string source = "builtin bpe_simple_vocab_16e6.txt.gz";
    return from_openai_merges(gunzip(builtin_clip_vocab_gz(), source), source);
  }();
  return t;
}

ClipTokenizer ClipTokenizer::load(const std::string& path) {
  std::error_code ec;
  if (!fs::is_directory(path, ec)) return from_bpe_file(path);
  const fs::path dir(path);
  if (!fs::exists(dir / "vocab.json", ec) && fs::exists(dir / "bpe_simple_vocab_16e6.txt.gz", ec))
    return from_bpe_file((dir / "bpe_simple_vocab_16e6.txt.gz").string());
  DK_CHECK(fs::exists(dir / "vocab.json", ec) && fs::exists(dir / "merges.txt", ec), "CLIP tokenizer: folder '", path,
           "' holds neither vocab.json + merges.txt nor bpe_simple_vocab_16e6.txt.gz");

  const std::string vocab_path = (dir / "vocab.json").string();
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(read_bytes(vocab_path, "vocabulary"));
  } catch (const nlohmann::json::exception& e) {
    fail("CLIP tokenizer: '", vocab_path, "' is not valid JSON: ", e.what());
  }
  DK_CHECK(j.is_object() && !j.empty(), "CLIP tokenizer: '", vocab_path, "' is not a {token: id} object");
  std::vector<std::string> vocab(j.size());
  for (const auto& [token, id] : j.items()) {
    DK_CHECK(id.is_number_integer() && id.get<int64_t>() >= 0 && id.get<size_t>() < vocab.size() &&
                 vocab[id.get<size_t>()].empty(),
             "CLIP tokenizer: '", vocab_path, "': token '", token, "' has id ", id.dump(),
             ", expected distinct ids 0..", vocab.size() - 1);
    vocab[id.get<size_t>()] = token;
  }

  // transformers' CLIPTokenizer pads with <|endoftext|> unless the folder names another pad.
  std::string pad = kEot;
  for (const char* name : {"special_tokens_map.json", "tokenizer_config.json"}) {
    if (!fs::exists(dir / name, ec)) continue;
    const std::string p = (dir / name).string();
    const auto cfg = nlohmann::json::parse(read_bytes(p, "tokenizer config"), nullptr, false);
    DK_CHECK(!cfg.is_discarded(), "CLIP tokenizer: '", p, "' is not valid JSON");
    const auto it = cfg.find("pad_token");
    if (it == cfg.end() || it->is_null()) continue;
    DK_CHECK(it->is_string() || (it->is_object() && it->contains("content") && (*it)["content"].is_string()),
             "CLIP tokenizer: '", p, "': pad_token must be a string or {\"content\": string}");
    pad = it->is_string() ? it->get<std::string>() : (*it)["content"].get<std::string>();
    break;
  }
  const std::string merges_path = (dir / "merges.txt").string();
  return build(std::move(vocab), parse_merges(read_bytes(merges_path, "merges file"), merges_path), pad, path);
}

const std::string& ClipTokenizer::token(int64_t id) const {
  DK_CHECK(id >= 0 && id < vocab_size(), "CLIP tokenizer: id ", id, " out of range [0, ", vocab_size(), ")");
  return vocab_[size_t(id)];
}

std::string ClipTokenizer::cleaned(std::string_view prompt) {
  return u32_to_utf8(lower(utf8_to_u32(clean_whitespace(prompt))));
}

std::vector<std::string> ClipTokenizer::bpe(const std::string& word) const {
  // Split into byte symbols (one UTF-8 character each), the last marked as a word end.
  std::vector<std::string> parts;
  for (char32_t c : utf8_to_u32(word)) parts.push_back(utf8(c));
  parts.back() += "</w>";
  // Merge the lowest-ranked adjacent pair everywhere (left to right), until none is known.
  while (parts.size() > 1) {
    int64_t best = std::numeric_limits<int64_t>::max();
    std::string best_key;
    for (size_t i = 0; i + 1 < parts.size(); ++i) {
      const std::string key = parts[i] + " " + parts[i + 1];
      const auto it = ranks_.find(key);
      if (it != ranks_.end() && it->second < best) {
        best = it->second;
        best_key = key;
      }
    }
    if (best_key.empty()) break;
    std::vector<std::string> merged;
    for (size_t i = 0; i < parts.size(); ++i) {
      if (i + 1 < parts.size() && parts[i] + " " + parts[i + 1] == best_key) {
        merged.push_back(parts[i] + parts[i + 1]);
        ++i;
      } else {
        merged.push_back(parts[i]);
      }
    }
    parts = std::move(merged);
  }
  return parts;
}

std::vector<int64_t> ClipTokenizer::encode_pieces(std::string_view prompt) const {
  std::vector<int64_t> ids;
  for (const std::u32string& token : pre_tokens(utf8_to_u32(cleaned(prompt)))) {
    const std::string text = u32_to_utf8(token);
    if (text == kSot || text == kEot) {
      ids.push_back(text == kSot ? sot_ : eot_);
      continue;
    }
    std::string symbols;
    for (unsigned char b : text) symbols += byte_symbols()[b];
    for (const std::string& piece : bpe(symbols)) {
      const auto it = ids_.find(piece);
      DK_CHECK(it != ids_.end(), "CLIP tokenizer: '", source_, "' has no id for BPE piece '", piece, "'");
      ids.push_back(it->second);
    }
  }
  return ids;
}

std::vector<int64_t> ClipTokenizer::encode(std::string_view prompt, int64_t length) const {
  DK_CHECK(length >= 2, "CLIP tokenizer: length ", length, " leaves no room for the start and end tokens");
  const std::vector<int64_t> pieces = encode_pieces(prompt);
  std::vector<int64_t> ids{sot_};
  ids.insert(ids.end(), pieces.begin(), pieces.begin() + std::min<int64_t>(int64_t(pieces.size()), length - 2));
  ids.push_back(eot_);
  ids.resize(size_t(length), pad_);
  return ids;
}

Tensor ClipTokenizer::encode_batch(const std::vector<std::string>& prompts, int64_t length) const {
  Tensor out = Tensor::empty({int64_t(prompts.size()), length}, DType::I64);
  for (size_t i = 0; i < prompts.size(); ++i) {
    const std::vector<int64_t> ids = encode(prompts[i], length);
    std::copy(ids.begin(), ids.end(), out.data<int64_t>() + int64_t(i) * length);
  }
  return out;
}

// ---- text tower ------------------------------------------------------------------------

ClipTextEncoder::ClipTextEncoder(const weights::ModelWeights& w, const weights::ClipTextConfig& c, Device device)
    : config_(c), device_(device) {
  DK_CHECK(w.family() == weights::Family::clip_l, "CLIP text encoder: checkpoint holds a ",
           weights::family_name(w.family()), " model, expected clip_l");
  DK_CHECK(c.hidden_act == "quick_gelu" || c.hidden_act == "gelu", "CLIP text encoder: hidden_act '", c.hidden_act,
           "' is not supported (quick_gelu or gelu)");
  DK_CHECK(c.num_attention_heads > 0 && c.hidden_size % c.num_attention_heads == 0, "CLIP text encoder: hidden_size ",
           c.hidden_size, " is not a multiple of num_attention_heads ", c.num_attention_heads);
  weights::validate({weights::Family::clip_l, c}, w.shapes(), "CLIP text encoder");
  auto get = [&](const std::string& name) { return w.get("text_model." + name).to(device); };
  token_embedding_ = get("embeddings.token_embedding.weight");
  position_embedding_ = get("embeddings.position_embedding.weight");
  final_ln_w_ = get("final_layer_norm.weight");
  final_ln_b_ = get("final_layer_norm.bias");
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    const std::string p = cat("encoder.layers.", i, ".");
    layers_.push_back({get(p + "layer_norm1.weight"), get(p + "layer_norm1.bias"),
                       get(p + "self_attn.q_proj.weight"), get(p + "self_attn.q_proj.bias"),
                       get(p + "self_attn.k_proj.weight"), get(p + "self_attn.k_proj.bias"),
                       get(p + "self_attn.v_proj.weight"), get(p + "self_attn.v_proj.bias"),
                       get(p + "self_attn.out_proj.weight"), get(p + "self_attn.out_proj.bias"),
                       get(p + "layer_norm2.weight"), get(p + "layer_norm2.bias"), get(p + "mlp.fc1.weight"),
                       get(p + "mlp.fc1.bias"), get(p + "mlp.fc2.weight"), get(p + "mlp.fc2.bias")});
  }
}

Tensor ClipTextEncoder::attention(const Layer& l, const Tensor& x, const Tensor& causal) const {
  const int64_t n = x.dim(0), len = x.dim(1), heads = config_.num_attention_heads,
                head_dim = config_.hidden_size / heads;
  auto split_heads = [&](const Tensor& t) { return t.reshape({n, len, heads, head_dim}).permute({0, 2, 1, 3}); };
  const Tensor q = split_heads(ops::affine(ops::linear(x, l.q_w, l.q_b), 1.0f / std::sqrt(float(head_dim)), 0.0f));
  const Tensor k = split_heads(ops::linear(x, l.k_w, l.k_b)), v = split_heads(ops::linear(x, l.v_w, l.v_b));
  const Tensor attn = ops::softmax(ops::add(ops::matmul(q, k, false, true), causal), -1);
  const Tensor out = ops::matmul(attn, v).permute({0, 2, 1, 3}).reshape({n, len, config_.hidden_size});
  return ops::linear(out, l.out_w, l.out_b);
}

Tensor ClipTextEncoder::mlp(const Layer& l, const Tensor& x) const {
  const Tensor h = ops::linear(x, l.fc1_w, l.fc1_b);
  return ops::linear(config_.hidden_act == "gelu" ? ops::gelu(h) : ops::unary(ops::Unary::QuickGelu, h), l.fc2_w,
                     l.fc2_b);
}

ClipOutput ClipTextEncoder::forward(const Tensor& ids, std::vector<Tensor>* hidden) const {
  DK_CHECK(ids.ndim() == 2 && ids.dim(1) >= 1, "CLIP text encoder: ids must be [N, L], got ", ids.str());
  const int64_t n = ids.dim(0), len = ids.dim(1);
  DK_CHECK(len <= config_.max_position_embeddings, "CLIP text encoder: ", len, " tokens exceed max_position_embeddings ",
           config_.max_position_embeddings);
  const float eps = float(config_.layer_norm_eps);

  // Token i attends to 0..i: later keys get the float32 minimum as score (weight 0).
  std::vector<float> mask(size_t(len * len), 0.0f);
  for (int64_t i = 0; i < len; ++i)
    for (int64_t j = i + 1; j < len; ++j) mask[size_t(i * len + j)] = std::numeric_limits<float>::lowest();
  const Tensor causal = Tensor::from_vector(mask, {len, len}).to(device_);

  Tensor x = ops::add(ops::embedding(token_embedding_, ids.to(device_)), position_embedding_.narrow(0, 0, len));
  if (hidden) hidden->assign({x});
  for (const Layer& l : layers_) {
    x = ops::add(x, attention(l, ops::layer_norm(x, l.ln1_w, l.ln1_b, eps), causal));
    x = ops::add(x, mlp(l, ops::layer_norm(x, l.ln2_w, l.ln2_b, eps)));
    if (hidden) hidden->push_back(x);
  }
  x = ops::layer_norm(x, final_ln_w_, final_ln_b_, eps);

  // pooler_output: the state at argmax(ids), the first <|endoftext|> (the largest id).
  const std::vector<float> id_values = ids.to_vector();
  std::vector<Tensor> rows;
  for (int64_t i = 0; i < n; ++i) {
    const auto row = id_values.begin() + i * len;
    const int64_t eot = std::max_element(row, row + len) - row;
    rows.push_back(x.select(0, i).narrow(0, eot, 1));
  }
  return {x, ops::concat(rows, 0)};
}

}  // namespace ditkit::text
