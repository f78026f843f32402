// umT5 tokenizer and prompt cleaning against the official Wan2.1 outputs
// (tests/data/golden/wan_tiny/tokenizer, README section 2), plus the cleaning steps one by one.
// Expected values of the single steps are ftfy 6.3.1's documented / tested behaviour and
// Python's html.unescape.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "test_util.h"
#include "text/clean.h"
#include "text/tokenizer.h"
#include "weights/checkpoint.h"

namespace {

using namespace ditkit;
using namespace ditkit::text;
using namespace ditkit::test;

const std::string kDir = kGolden + "wan_tiny/tokenizer/";

std::string utf8_of(const Tensor& t) {
  EXPECT_EQ(t.dtype(), DType::U8);
  return t.numel() == 0 ? std::string() : std::string(t.data<char>(), size_t(t.numel()));
}

std::vector<int64_t> ints_of(const Tensor& t) {
  EXPECT_EQ(t.dtype(), DType::I64);
  std::vector<int64_t> v(size_t(t.numel()));
  if (!v.empty()) {
    const Tensor c = t.contiguous();
    std::memcpy(v.data(), c.raw(), v.size() * sizeof(int64_t));  // file data need not be aligned
  }
  return v;
}

std::vector<int64_t> row(const std::vector<int64_t>& m, int64_t i, int64_t width) {
  return std::vector<int64_t>(m.begin() + i * width, m.begin() + (i + 1) * width);
}

// Applies one UTF-32 step to UTF-8 text.
template <typename Fn>
std::string run_step(Fn&& fn, const std::string& text) {
  return u32_to_utf8(fn(utf8_to_u32(text)));
}

std::string fix_text(const std::string& text) { return run_step(ftfy::fix_text, text); }

TEST(WanTokenizerGolden, CleaningIdsMaskAndSeqLen) {
  const auto ck = weights::Checkpoint::open(kDir + "io.safetensors");
  const auto tok = load_t5_tokenizer(kDir + "spiece.model");
  const int64_t text_len = std::stoll(ck.metadata().at("text_len"));
  const int64_t n = std::stoll(ck.metadata().at("n_prompts"));
  ASSERT_EQ(text_len, 32);
  ASSERT_EQ(n, 6);
  EXPECT_EQ(tok->vocab_size(), 1000);
  EXPECT_EQ(tok->pad_id(), std::stoll(ck.metadata().at("pad_id")));
  EXPECT_EQ(tok->eos_id(), std::stoll(ck.metadata().at("eos_id")));

  const std::vector<int64_t> ids = ints_of(ck.get("ids")), mask = ints_of(ck.get("mask"));
  const std::vector<int64_t> seq_lens = ints_of(ck.get("seq_lens"));
  std::vector<std::string> prompts;
  for (int64_t i = 0; i < n; ++i) {
    SCOPED_TRACE("prompt " + std::to_string(i));
    const std::string prompt = utf8_of(ck.get("prompt_" + std::to_string(i) + "_utf8"));
    const std::string cleaned = utf8_of(ck.get("cleaned_" + std::to_string(i) + "_utf8"));
    prompts.push_back(prompt);
    EXPECT_EQ(clean_whitespace(prompt), cleaned);
    EXPECT_EQ(tok->cleaned(prompt), cleaned);
    EXPECT_EQ(tok->encode_pieces(cleaned), ints_of(ck.get("spm_ids_" + std::to_string(i))));
    const Tokens t = tok->encode(prompt, text_len);
    EXPECT_EQ(t.ids, row(ids, i, text_len));
    EXPECT_EQ(t.mask, row(mask, i, text_len));
    EXPECT_EQ(t.seq_len, seq_lens[size_t(i)]);
  }

  const TokenBatch batch = tok->encode_batch(prompts, text_len);
  EXPECT_EQ(batch.ids.shape(), (Shape{n, text_len}));
  EXPECT_EQ(batch.mask.shape(), (Shape{n, text_len}));
  EXPECT_EQ(ints_of(batch.ids), ids);
  EXPECT_EQ(ints_of(batch.mask), mask);
  EXPECT_EQ(batch.seq_lens, seq_lens);
}

TEST(WanTokenizer, TruncationKeepsEosAndCleaningCanBeOff) {
  const auto tok = load_t5_tokenizer(kDir);  // the folder form
  const std::string prompt = "A cat walks on the grass, realistic style.";
  const std::vector<int64_t> pieces = tok->encode_pieces(prompt);
  ASSERT_EQ(pieces.size(), 16u);

  const Tokens five = tok->encode(prompt, 5);
  EXPECT_EQ(five.ids, (std::vector<int64_t>{pieces[0], pieces[1], pieces[2], pieces[3], 1}));
  EXPECT_EQ(five.mask, (std::vector<int64_t>{1, 1, 1, 1, 1}));
  EXPECT_EQ(five.seq_len, 5);
  const Tokens one = tok->encode(prompt, 1);
  EXPECT_EQ(one.ids, (std::vector<int64_t>{1}));
  EXPECT_EQ(one.seq_len, 1);
  EXPECT_NE(error_of([&] { tok->encode(prompt, 0); }).find("text_len"), std::string::npos);

  const auto raw = load_t5_tokenizer(kDir + "spiece.model", Clean::none);
  const std::string messy = "  “ﬁsh &amp; chips”  ";
  EXPECT_EQ(raw->cleaned(messy), messy);
  EXPECT_EQ(tok->cleaned(messy), "\"fish & chips\"");
  EXPECT_NE(raw->encode(messy, 32).ids, tok->encode(messy, 32).ids);
}

TEST(WanTokenizer, ModelErrorsNameTheFile) {
  const std::string missing = kDir + "no_such.model";
  EXPECT_NE(error_of([&] { load_t5_tokenizer(missing); }).find(missing), std::string::npos);
  const std::string folder = kGolden + "wan_tiny";
  const std::string no_model = error_of([&] { load_t5_tokenizer(folder); });
  EXPECT_NE(no_model.find(folder), std::string::npos);
  EXPECT_NE(no_model.find("spiece.model"), std::string::npos);
  const std::string corrupt = error_of([&] { load_t5_tokenizer(kDir + "io.safetensors"); });
  EXPECT_NE(corrupt.find(kDir + "io.safetensors"), std::string::npos);
  EXPECT_NE(corrupt.find("not a valid SentencePiece model"), std::string::npos);
}

// Reads the parts of a SentencePiece ModelProto that an HF tokenizer.json carries.
struct SpmModel {
  std::vector<std::pair<std::string, float>> pieces;
  std::vector<int> types;
  int64_t unk_id = -1;
  std::string charsmap;
};

uint64_t read_varint(const std::string& b, size_t& i) {
  uint64_t v = 0;
  for (int shift = 0; i < b.size(); shift += 7) {
    const auto byte = static_cast<unsigned char>(b[i++]);
    v |= uint64_t(byte & 0x7F) << shift;
    if (byte < 0x80) break;
  }
  return v;
}

// Calls fn(field, varint value, bytes) for each field of a protobuf message.
template <typename Fn>
void for_each_field(const std::string& b, Fn&& fn) {
  for (size_t i = 0; i < b.size();) {
    const uint64_t tag = read_varint(b, i);
    uint64_t value = 0;
    std::string bytes;
    if ((tag & 7) == 0) value = read_varint(b, i);
    if ((tag & 7) == 5) {
      bytes = b.substr(i, 4);
      i += 4;
    }
    if ((tag & 7) == 2) {
      const uint64_t n = read_varint(b, i);
      bytes = b.substr(i, n);
      i += n;
    }
    fn(int(tag >> 3), value, bytes);
  }
}

SpmModel read_spm_model(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  const std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  SpmModel m;
  for_each_field(data, [&](int field, uint64_t, const std::string& msg) {
    if (field == 1) {
      std::pair<std::string, float> piece;
      int type = 1;
      for_each_field(msg, [&](int f, uint64_t v, const std::string& b) {
        if (f == 1) piece.first = b;
        if (f == 2) std::memcpy(&piece.second, b.data(), 4);
        if (f == 3) type = int(v);
      });
      m.pieces.push_back(piece);
      m.types.push_back(type);
    }
    if (field == 2)
      for_each_field(msg, [&](int f, uint64_t v, const std::string&) { m.unk_id = f == 40 ? int64_t(v) : m.unk_id; });
    if (field == 3)
      for_each_field(msg, [&](int f, uint64_t, const std::string& b) { m.charsmap = f == 2 ? b : m.charsmap; });
  });
  return m;
}

std::string base64(const std::string& in) {
  static const char* abc = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  for (size_t i = 0; i < in.size(); i += 3) {
    uint32_t v = 0;
    for (size_t k = 0; k < 3; ++k) v = (v << 8) | (i + k < in.size() ? static_cast<unsigned char>(in[i + k]) : 0);
    for (size_t k = 0; k < 4; ++k) out.push_back(k <= (in.size() - i) ? abc[(v >> (18 - 6 * k)) & 63] : '=');
  }
  return out;
}

// What transformers' SpmConverter writes for this model, as a folder holding only tokenizer.json.
std::string write_tokenizer_json(const SpmModel& m, bool byte_fallback, const std::string& name) {
  nlohmann::json vocab = nlohmann::json::array(), added = nlohmann::json::array();
  for (size_t id = 0; id < m.pieces.size(); ++id) {
    vocab.push_back({m.pieces[id].first, m.pieces[id].second});
    if (m.types[id] == 3) added.push_back({{"id", id}, {"content", m.pieces[id].first}, {"special", true}});
  }
  const nlohmann::json j = {
      {"version", "1.0"},
      {"added_tokens", added},
      {"normalizer",
       {{"type", "Sequence"},
        {"normalizers",
         {{{"type", "Precompiled"}, {"precompiled_charsmap", base64(m.charsmap)}},
          {{"type", "Strip"}, {"strip_left", false}, {"strip_right", true}},
          {{"type", "Replace"}, {"pattern", {{"Regex", " {2,}"}}}, {"content", "\u2581"}}}}}},
      {"pre_tokenizer", {{"type", "Metaspace"}, {"replacement", "\u2581"}, {"prepend_scheme", "always"}, {"split", true}}},
      {"model", {{"type", "Unigram"}, {"unk_id", m.unk_id}, {"vocab", vocab}, {"byte_fallback", byte_fallback}}}};
  const auto dir = fresh_dir("tokenizer_" + name);
  std::ofstream(dir / "tokenizer.json") << j.dump();
  return dir.string();
}

TEST(WanTokenizer, TokenizerJsonMatchesSpieceModel) {
  const auto spm = load_t5_tokenizer(kDir + "spiece.model");
  const SpmModel m = read_spm_model(kDir + "spiece.model");
  ASSERT_EQ(m.pieces.size(), 1000u);
  ASSERT_EQ(m.unk_id, 2);
  const auto json = load_t5_tokenizer(write_tokenizer_json(m, true, "byte_fallback"));
  const auto no_bytes = load_t5_tokenizer(write_tokenizer_json(m, false, "no_byte_fallback"));
  EXPECT_EQ(json->vocab_size(), 1000);
  EXPECT_EQ(json->pad_id(), 0);
  EXPECT_EQ(json->eos_id(), 1);

  const auto prompts = nlohmann::json::parse(std::ifstream(kDir + "prompts.json"));
  for (const auto& p : prompts.at("prompts")) {
    const std::string cleaned = p.at("cleaned").get<std::string>();
    EXPECT_EQ(json->encode_pieces(cleaned), spm->encode_pieces(cleaned)) << cleaned;
    EXPECT_EQ(json->encode(p.at("prompt").get<std::string>(), 32).ids, spm->encode(p.at("prompt").get<std::string>(), 32).ids);
  }
  // Without byte fallback (transformers' default conversion) unknown characters become <unk>.
  EXPECT_EQ(no_bytes->encode_pieces("A cat walks."), spm->encode_pieces("A cat walks."));
  const std::vector<int64_t> emoji = no_bytes->encode_pieces("cat \U0001F431");
  EXPECT_EQ(emoji.back(), 2);
  for (const int64_t id : emoji) EXPECT_FALSE(id >= 3 && id <= 258) << id;
  const std::vector<int64_t> emoji_bytes = spm->encode_pieces("cat \U0001F431");
  EXPECT_EQ(std::vector<int64_t>(emoji_bytes.end() - 4, emoji_bytes.end()), (std::vector<int64_t>{3 + 0xF0, 3 + 0x9F, 3 + 0x90, 3 + 0xB1}));

  const auto bad_dir = fresh_dir("tokenizer_bad");
  std::ofstream(bad_dir / "tokenizer.json") << R"({"model": {"type": "BPE"}})";
  const std::string bpe = error_of([&] { load_t5_tokenizer(bad_dir.string()); });
  EXPECT_NE(bpe.find((bad_dir / "tokenizer.json").string()), std::string::npos);
  EXPECT_NE(bpe.find("Unigram"), std::string::npos);
  std::ofstream(bad_dir / "tokenizer.json") << R"({"model": {"type": "Unigram", "vocab": [["a"]]}})";
  EXPECT_NE(error_of([&] { load_t5_tokenizer(bad_dir.string()); }).find("tokenizer.json"), std::string::npos);
  std::ofstream(bad_dir / "tokenizer.json") << "{ truncated";
  EXPECT_NE(error_of([&] { load_t5_tokenizer(bad_dir.string()); }).find("not a valid tokenizer.json"), std::string::npos);
  for (const char* name : {"byte_fallback", "no_byte_fallback", "bad"})
    std::filesystem::remove_all(temp_path(std::string("tokenizer_") + name));
}

TEST(WanClean, CurlyQuotes) {
  EXPECT_EQ(run_step(ftfy::uncurl_quotes, "\u201chere\u2019s a test\u201d"), "\"here's a test\"");
  EXPECT_EQ(run_step(ftfy::uncurl_quotes, "\u201a\u201b\u02bc \u201e\u201f"), "''' \"\"");
  EXPECT_EQ(fix_text("\u2018single\u2019 \u00abguillemets stay\u00bb"), "'single' \u00abguillemets stay\u00bb");
}

TEST(WanClean, Ligatures) {
  EXPECT_EQ(run_step(ftfy::fix_latin_ligatures, "ﬂuﬃeﬆ"), "fluffiest");
  EXPECT_EQ(run_step(ftfy::fix_latin_ligatures, "Ĳssel ǆungla ﬅ æ"), "IJssel džungla ſt æ");
  // ŉ becomes ʼn, whose apostrophe uncurl_quotes then straightens.
  EXPECT_EQ(fix_text("ŉ ﬁsh"), "'n fish");
}

TEST(WanClean, FullWidthAndHalfWidth) {
  EXPECT_EQ(run_step(ftfy::fix_character_width, "ＬＯＵＤ　ＮＯＩＳＥＳ"), "LOUD NOISES");
  EXPECT_EQ(run_step(ftfy::fix_character_width, "Ｕﾀｰﾝ"), "Uターン");
  EXPECT_EQ(fix_text("２０２５年，ｆｕｌｌ！"), "2025年,full!");
}

TEST(WanClean, FtfyHtmlEntities) {
  EXPECT_EQ(run_step(ftfy::unescape_html, "&lt;tag&gt;"), "<tag>");
  EXPECT_EQ(run_step(ftfy::unescape_html, "&Jscr;ohn &HilbertSpace;ancock"), "𝒥ohn ℋancock");
  EXPECT_EQ(run_step(ftfy::unescape_html, "P&EACUTE;REZ BUNDESSTRA&SZLIG;E"), "PÉREZ BUNDESSTRASSE");
  EXPECT_EQ(run_step(ftfy::unescape_html, "&ntilde; &Ntilde; &NTILDE; &nTILDE;"), "ñ Ñ Ñ &nTILDE;");
  EXPECT_EQ(run_step(ftfy::unescape_html, "euro &#x80; &EURO;"), "euro € €");
  EXPECT_EQ(run_step(ftfy::unescape_html, "not an entity &#20x6;"), "not an entity &#20x6;");
  EXPECT_EQ(run_step(ftfy::unescape_html, "[&#xffff;]"), "[]");
  EXPECT_EQ(run_step(ftfy::unescape_html, "&#xffffffff;"), "\ufffd");
  // Only ";"-terminated names: informal "&not" stays.
  EXPECT_EQ(fix_text("this is just informal english &not html"), "this is just informal english &not html");
  EXPECT_EQ(fix_text("&amp;amp;amp;"), "&");
  EXPECT_EQ(fix_text("broken&#x81;"), "broken\u0081");
  // A segment (line) holding "<" switches entity decoding off for itself and all later lines.
  EXPECT_EQ(fix_text("&amp;\n<html>\n&amp;"), "&\n<html>\n&amp;");
}

TEST(WanClean, PythonHtmlUnescape) {
  const auto unescape = [](const std::string& s) { return run_step(html_unescape, s); };
  EXPECT_EQ(unescape("&amp &ampfoo; &notit; &notin; &frac12x"), "& &foo; ¬it; ∉ ½x");
  EXPECT_EQ(unescape("&#0;&#13;&#128;&#x81;&#X9F;"), "\ufffd\r€\u0081Ÿ");
  EXPECT_EQ(unescape("[&#1;&#xb;&#x7f;&#xfdd0;&#x1FFFF;]"), "[]");
  EXPECT_EQ(unescape("&#xd800; &#1114112; &#99999999999999999999;"), "\ufffd \ufffd \ufffd");
  EXPECT_EQ(unescape("&#65&#x42;&#x; &# &; &NTILDE; &unknown;"), "AB&#x; &# &; &NTILDE; &unknown;");
}

TEST(WanClean, WhitespaceKinds) {
  EXPECT_EQ(clean_whitespace("\u2009 Two\u00a0\u00a0kinds\u202f\t\u205fof\r\n\u3000space \u1680\u2028"),
            "Two kinds of space");
  EXPECT_EQ(clean_whitespace("   Two  children\tplay   in the\n\nrain  "), "Two children play in the rain");
  EXPECT_EQ(clean_whitespace("&nbsp;x&#x2003;y&amp;#32;"), "x y");
  // regex's \s is Unicode White_Space; str.strip() also strips U+001C..U+001F.
  EXPECT_TRUE(is_white_space(0x85));
  EXPECT_FALSE(is_white_space(0x1C));
  EXPECT_TRUE(is_python_space(0x1F));
  EXPECT_FALSE(is_white_space(0x200B));
  EXPECT_EQ(u32_to_utf8(python_strip(U"\u001c a b\u001f\u3000")), "a b");
  // With "<" in the prompt ftfy leaves entities alone and only html.unescape decodes them.
  EXPECT_EQ(clean_whitespace("1 &lt; 2 < 3 &amp;amp; x"), "1 < 2 < 3 & x");
}

TEST(WanClean, ControlCharactersAndLineBreaks) {
  EXPECT_EQ(run_step(ftfy::remove_control_chars,
                  "\ufeffSometimes, \ufffcbad ideas \x7f\ufffalike these characters\ufffb \u206aget standardized.\r\n"),
            "Sometimes, bad ideas like these characters get standardized.\r\n");
  EXPECT_EQ(fix_text("\001\033[36;44mfoo"), "foo");
  EXPECT_EQ(run_step(ftfy::remove_terminal_escapes, "\033[1mbold\033[0m \033[12"), "bold \033[12");
  EXPECT_EQ(run_step(ftfy::fix_line_breaks, "a\r\nb\rc\u2028d\u2029e\u0085f"), "a\nb\nc\nd\ne\nf");
  EXPECT_EQ(clean_whitespace("tab\x01\x02 zero\x08-width\u200b kept"), "tab zero-width\u200b kept");
}

TEST(WanClean, NfcAndC1Controls) {
  EXPECT_EQ(fix_text("Cafe\u0301 nai\u0308ve"), "Café naïve");
  EXPECT_EQ(run_step(ftfy::fix_c1_controls, "\u0093quoted\u0094 \u0080 \u0081"), "\u201cquoted\u201d € \u0081");
  EXPECT_EQ(fix_text("\u0093quoted\u0094"), "\"quoted\"");
}

TEST(WanClean, Mojibake) {
  EXPECT_EQ(run_step(ftfy::fix_encoding, "sÃ³"), "só");
  EXPECT_EQ(run_step(ftfy::fix_encoding, "ï»¿"), "\ufeff");
  EXPECT_EQ(fix_text("âœ” No problems"), "✔ No problems");
  EXPECT_EQ(fix_text("&macr;\\_(ã\u0083\u0084)_/&macr;"), "¯\\_(ツ)_/¯");
  EXPECT_EQ(fix_text("CafÃ© â€œnaÃ¯veâ€\u009d ðŸ˜€"), "Café \"naïve\" 😀");
  // Double mojibake is undone step by step.
  EXPECT_EQ(run_step(ftfy::fix_encoding, "CafÃƒÂ©"), "Café");
  // Legitimate text that merely could be re-decoded stays (ftfy's badness heuristic).
  for (const std::string ok : {"4288×…", "TEM QUE SEGUIR, SDV SÓ…", "Bremer/Mccoy – DrÃ¥ber", "Café “naïve”"})
    EXPECT_EQ(run_step(ftfy::fix_encoding, ok), ok);
  EXPECT_TRUE(ftfy::is_bad(U"Ã©"));
  EXPECT_FALSE(ftfy::is_bad(U"naïve café"));
}

// A sample of ftfy's own test cases (tests/test-cases/*.json): input, fix_text result.
TEST(WanClean, FtfyTestCases) {
  const std::pair<std::string, std::string> cases[] = {
      {"voil\u00c3  le travail", "voil\u00e0 le travail"},  // restore_byte_a0
      {"com especial aten\u00c3\u00a7\u00c3\u00a3o \u00c3 s crian\u00c3\u00a7as", "com especial aten\u00e7\u00e3o \u00e0s crian\u00e7as"},
      {"\u00d7\u2018\u00d7\u201d\u00d7\u2022\u00d7\u201c\u00d7\u02d8\u00d7\u201d", "\u05d1\u05d4\u05d5\u05d3\u05e2\u05d4"},  // windows-1250
      {"\u25ca\u00eb\u25ca\u00ee\u25ca\u00ef\u25ca\u00ec\u25ca\u00a2\u25ca\u00ee", "\u05d1\u05d4\u05d5\u05d3\u05e2\u05d4"},  // macroman
      {"#\u2568\u2510\u2564\u00c7\u2568\u2591\u2568\u2593\u2568\u2555\u2568\u2557\u2564\u00ee\u2568\u255c\u2568\u255b\u2568\u2561",
       "#\u043f\u0440\u0430\u0432\u0438\u043b\u044c\u043d\u043e\u0435"},  // cp437
      {"Blog Traffic Tip 2 \u0432\u0402\u201c Broadcast Email Your Blog", "Blog Traffic Tip 2 \u2013 Broadcast Email Your Blog"},
      {"Hi guys \u00ed\u00a0\u00bd\u00ed\u00b8\u008d", "Hi guys \U0001F60D"},  // CESU-8 emoji
      {"\u00e2\u20ac\u0153lossy decoding\u00e2\u20ac\ufffd", "\"lossy decoding\ufffd"},
      {"The Mona Lisa doesn\u00c3\u0192\u00c2\u00a2\u00c3\u00a2\u00e2\u20ac\u0161\u00c2\u00ac\u00c3\u00a2\u00e2\u20ac\u017e\u00c2\u00a2t have eyebrows.",
       "The Mona Lisa doesn't have eyebrows."},  // three layers
      {"10\u00ce&frac14;s", "10\u03bcs"},
      {"Ningbo\u00ef\u00bc\u0152China", "Ningbo,China"},
      {"These control characters \u001a are apparently intentional \u0081",
       "These control characters  are apparently intentional \u0081"},
      // Negative cases: left alone.
      {"I'm not such a fan of Charlotte Bront\u00eb\u2026\u201d", "I'm not such a fan of Charlotte Bront\u00eb\u2026\""},
      {"AH\u00c5\u2122, the new sofa from IKEA", "AH\u00c5\u2122, the new sofa from IKEA"},
      {"\u0412\u0406\u041a\u0406 is Ukrainian for WIKI", "\u0412\u0406\u041a\u0406 is Ukrainian for WIKI"},
      {"There are a lot of \u00c3\u2019s in mojibake text", "There are a lot of \u00c3's in mojibake text"},
  };
  for (const auto& [original, fixed] : cases) EXPECT_EQ(fix_text(original), fixed) << original;
}

TEST(WanClean, InvalidUtf8BecomesReplacementCharacters) {
  // Python's errors='replace': one U+FFFD per maximal invalid subsequence.
  EXPECT_EQ(utf8_to_u32(std::string("a\xC3(b\xE2\x82\xF0\x9F\x98\xFF\xED\xA0\x80", 13)),
            U"a\uFFFD(b\uFFFD\uFFFD\uFFFD\uFFFD\uFFFD\uFFFD");
  EXPECT_EQ(clean_whitespace(std::string("ok\xC0\xAF", 4)), "ok\uFFFD\uFFFD");
}

}  // namespace
