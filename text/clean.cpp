#include "text/clean.h"

#include <unicode/normalizer2.h>
#include <unicode/uchar.h>
#include <unicode/unistr.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>

#include "core/error.h"

namespace ditkit::text {
namespace {

#include "text/html_entities.inc"
#include "text/ftfy_data.inc"

constexpr char32_t kReplacement = 0xFFFD;

// Decodes UTF-8; returns false when anything was invalid (then `out` has U+FFFD in its place,
// one per maximal invalid subsequence, the Unicode/Python "replace" convention).
bool decode_utf8(std::string_view s, std::u32string& out) {
  bool valid = true;
  size_t i = 0;
  while (i < s.size()) {
    const auto b0 = static_cast<unsigned char>(s[i]);
    if (b0 < 0x80) {
      out.push_back(b0);
      ++i;
      continue;
    }
    // Length and the allowed range of the second byte (excludes overlong forms, surrogates
    // and code points above U+10FFFF).
    int len = 0;
    unsigned char lo = 0x80, hi = 0xBF;
    if (b0 >= 0xC2 && b0 <= 0xDF) {
      len = 2;
    } else if (b0 >= 0xE0 && b0 <= 0xEF) {
      len = 3;
      if (b0 == 0xE0) lo = 0xA0;
      if (b0 == 0xED) hi = 0x9F;
    } else if (b0 >= 0xF0 && b0 <= 0xF4) {
      len = 4;
      if (b0 == 0xF0) lo = 0x90;
      if (b0 == 0xF4) hi = 0x8F;
    }
    if (len == 0) {
      out.push_back(kReplacement);
      valid = false;
      ++i;
      continue;
    }
    char32_t cp = b0 & (0xFF >> (len + 1));
    int k = 1;
    for (; k < len && i + k < s.size(); ++k) {
      const auto b = static_cast<unsigned char>(s[i + k]);
      if (b < lo || b > hi) break;
      cp = (cp << 6) | (b & 0x3F);
      lo = 0x80;
      hi = 0xBF;
    }
    if (k < len) {
      out.push_back(kReplacement);
      valid = false;
    } else {
      out.push_back(cp);
    }
    i += k;
  }
  return valid;
}

bool contains(std::u32string_view text, char32_t c) { return text.find(c) != std::u32string_view::npos; }

bool is_ascii_alpha(char32_t c) { return (c >= U'a' && c <= U'z') || (c >= U'A' && c <= U'Z'); }

bool is_ascii_alnum(char32_t c) { return is_ascii_alpha(c) || (c >= U'0' && c <= U'9'); }

int hex_value(char32_t c) {
  if (c >= U'0' && c <= U'9') return int(c - U'0');
  if (c >= U'a' && c <= U'f') return int(c - U'a') + 10;
  if (c >= U'A' && c <= U'F') return int(c - U'A') + 10;
  return -1;
}

// Copies `text`, replacing the references that start at its '&'s: `decode(i, out)` appends the
// replacement of the one at i and returns the index after it, or returns i, appending nothing,
// to keep the '&' as text.
template <typename Decode>
std::u32string replace_references(std::u32string_view text, Decode&& decode) {
  std::u32string out;
  out.reserve(text.size());
  size_t i = 0;
  while (i < text.size()) {
    const size_t next = text[i] == U'&' ? decode(i, out) : i;
    if (next == i) {
      out.push_back(text[i++]);
    } else {
      i = next;
    }
  }
  return out;
}

// sloppy-windows-1252: Windows-1252 whose five undefined bytes keep their Latin-1 meaning; its
// 0x80..0x9F part is also Python's html._invalid_charrefs table.
constexpr const Charmap& kSloppyCp1252 = kCharmaps[1];
static_assert(std::string_view(kSloppyCp1252.name) == "sloppy-windows-1252");

// Bits of `c` in a sorted range table.
template <size_t N>
uint32_t range_bits(const CharRange (&table)[N], char32_t c) {
  const CharRange* it = std::upper_bound(std::begin(table), std::end(table), c,
                                         [](char32_t v, const CharRange& r) { return v < r.first; });
  return it != std::begin(table) && c <= (it - 1)->last ? (it - 1)->bits : 0;
}

using EntityMap = std::unordered_map<std::string, std::u32string>;

EntityMap build_entity_map(const NamedEntity* begin, const NamedEntity* end) {
  EntityMap map;
  for (const NamedEntity* e = begin; e != end; ++e) map.emplace(e->name, utf8_to_u32(e->value));
  return map;
}

const EntityMap& html5_entities() {
  static const EntityMap map = build_entity_map(std::begin(kHtml5Entities), std::end(kHtml5Entities));
  return map;
}

const EntityMap& ftfy_upper_entities() {
  static const EntityMap map =
      build_entity_map(std::begin(kFtfyUpperEntities), std::end(kFtfyUpperEntities));
  return map;
}

const std::u32string* find_entity(const EntityMap& map, std::u32string_view name) {
  const auto it = map.find(u32_to_utf8(name));
  return it == map.end() ? nullptr : &it->second;
}

// Python's html._replace_charref for a numeric reference.
std::u32string numeric_charref(char32_t num) {
  if (num == 0x00) return U"\uFFFD";
  if (num == 0x0D) return U"\r";
  if (num >= 0x80 && num <= 0x9F) return std::u32string(1, kSloppyCp1252.high[num - 0x80]);
  if ((num >= 0xD800 && num <= 0xDFFF) || num > 0x10FFFF) return U"\uFFFD";
  const bool invalid = (num >= 0x01 && num <= 0x08) || num == 0x0B || (num >= 0x0E && num <= 0x1F) ||
                       num == 0x7F || (num >= 0xFDD0 && num <= 0xFDEF) || (num & 0xFFFE) == 0xFFFE;
  if (invalid) return U"";
  return std::u32string(1, num);
}

// A Python-style "map each character" (str.translate with a dict of strings).
template <typename Fn>
std::u32string translate(std::u32string_view text, Fn&& map_char) {
  std::u32string out;
  out.reserve(text.size());
  for (const char32_t c : text) map_char(c, out);
  return out;
}

std::u32string replace_all(std::u32string text, std::u32string_view from, std::u32string_view to) {
  for (size_t pos = text.find(from); pos != std::u32string::npos; pos = text.find(from, pos + to.size()))
    text.replace(pos, from.size(), to);
  return text;
}

bool is_ascii_lower(char32_t c) { return c >= U'a' && c <= U'z'; }

// Python's \w: str.isalnum() (letters and anything with a numeric value) or "_".
bool is_word_char(char32_t c) {
  return c == U'_' || u_isalpha(UChar32(c)) || u_getNumericValue(UChar32(c)) != U_NO_NUMERIC_VALUE;
}

// text.encode(charmap) as ftfy's possible_encoding + encode see it, or nothing when some
// character has no byte in that encoding.
std::optional<std::string> encode_single_byte(std::u32string_view text, const Charmap& charmap) {
  std::string bytes;
  bytes.reserve(text.size());
  for (const char32_t c : text) {
    if (c < 0x80 && c != 0x1A) {
      bytes.push_back(char(c));
    } else if (c == charmap.byte_1a) {
      bytes.push_back(char(0x1A));
    } else {
      const char32_t* found = std::find(std::begin(charmap.high), std::end(charmap.high), c);
      if (found == std::end(charmap.high)) return std::nullopt;
      bytes.push_back(char(0x80 + (found - std::begin(charmap.high))));
    }
  }
  return bytes;
}

bool byte_in(unsigned char b, unsigned char lo, unsigned char hi) { return b >= lo && b <= hi; }

// A continuation byte other than 0x85 and 0xA0 (ALTERED_UTF8_RE's [\x80-\x84\x86-\x9f\xa1-\xbf]).
bool plain_continuation(unsigned char b) { return byte_in(b, 0x80, 0xBF) && b != 0x85 && b != 0xA0; }

// Length of an ALTERED_UTF8_RE match at `i` (UTF-8 with a 0xA0 byte turned into a space), or 0.
size_t altered_utf8_at(std::string_view s, size_t i) {
  const auto at = [&](size_t k) { return i + k < s.size() ? static_cast<unsigned char>(s[i + k]) : 0; };
  const unsigned char b0 = at(0), b1 = at(1), b2 = at(2), b3 = at(3);
  if (std::string_view("\xC2\xC3\xC5\xCE\xD0\xD9").find(char(b0)) != std::string_view::npos && b1 == ' ')
    return 2;
  if ((b0 == 0xE2 || b0 == 0xE3) && b1 == ' ' && plain_continuation(b2)) return 3;
  if (byte_in(b0, 0xE0, 0xE3) && plain_continuation(b1) && b2 == ' ') return 3;
  const bool c1 = byte_in(b1, 0x80, 0xBF), c2 = byte_in(b2, 0x80, 0xBF), c3 = byte_in(b3, 0x80, 0xBF);
  if (b0 == 0xF0 && ((b1 == ' ' && c2 && c3) || (c1 && b2 == ' ' && c3) || (c1 && c2 && b3 == ' '))) return 4;
  return 0;
}

// ftfy's restore_byte_a0: puts back 0xA0 bytes that became spaces inside UTF-8 sequences; a
// lone "\xC3 " (mojibake of "à ") keeps its space unless a Portuguese "às"/"àquele" form follows.
std::string restore_byte_a0(std::string_view bytes) {
  std::string s;
  for (size_t i = 0; i < bytes.size(); ++i) {
    s.push_back(bytes[i]);
    if (bytes[i] != '\xC3' || i + 1 >= bytes.size() || bytes[i + 1] != ' ') continue;
    const std::string_view rest = bytes.substr(i + 2);
    const bool keep = rest.starts_with(" ") || rest.starts_with("quele") || rest.starts_with("quela") ||
                      rest.starts_with("quilo") || rest.starts_with("s ");
    if (!keep) s.push_back('\xA0');
  }
  for (size_t i = 0; i < s.size();) {
    const size_t len = altered_utf8_at(s, i);
    if (len == 0) {
      ++i;
      continue;
    }
    std::replace(s.begin() + i, s.begin() + i + len, ' ', '\xA0');
    i += len;
  }
  return s;
}

// Length of a LOSSY_UTF8_RE match at `i` (a UTF-8 sequence with bytes lost to 0x1A or "?"), or 0.
size_t lossy_utf8_at(std::string_view s, size_t i) {
  const auto at = [&](size_t k) { return i + k < s.size() ? static_cast<unsigned char>(s[i + k]) : 0; };
  const auto lost = [](unsigned char b) { return b == 0x1A || b == '?'; };
  const auto cont_or_sub = [](unsigned char b) { return b == 0x1A || byte_in(b, 0x80, 0xBF); };
  const auto any = [&](unsigned char b) { return lost(b) || byte_in(b, 0x80, 0xBF); };
  const unsigned char b0 = at(0), b1 = at(1), b2 = at(2), b3 = at(3), b4 = at(4), b5 = at(5);
  if (byte_in(b0, 0xC2, 0xDF) && b1 == 0x1A) return 2;
  if (byte_in(b0, 0xC2, 0xC3) && b1 == '?') return 2;
  if (b0 == 0xED && byte_in(b1, 0xA0, 0xAF) && b3 == 0xED && byte_in(b4, 0xB0, 0xBF) &&
      ((lost(b2) && any(b5)) || (any(b2) && lost(b5))))
    return 6;
  if (byte_in(b0, 0xE0, 0xEF) && ((lost(b1) && cont_or_sub(b2)) || (cont_or_sub(b1) && lost(b2)))) return 3;
  if (byte_in(b0, 0xF0, 0xF4) && ((lost(b1) && cont_or_sub(b2) && cont_or_sub(b3)) ||
                                  (cont_or_sub(b1) && lost(b2) && cont_or_sub(b3)) ||
                                  (cont_or_sub(b1) && cont_or_sub(b2) && lost(b3))))
    return 4;
  return b0 == 0x1A ? 1 : 0;
}

// ftfy's replace_lossy_sequences: such sequences become the UTF-8 of U+FFFD.
std::string replace_lossy_sequences(std::string_view bytes) {
  std::string out;
  for (size_t i = 0; i < bytes.size();) {
    const size_t len = lossy_utf8_at(bytes, i);
    if (len == 0) {
      out.push_back(bytes[i++]);
    } else {
      out += "\xEF\xBF\xBD";
      i += len;
    }
  }
  return out;
}

// ftfy's "utf-8-variants" decoder: strict UTF-8 that also accepts CESU-8 surrogate pairs and
// Java's C0 80 for U+0000. Returns false on anything else that is invalid.
bool decode_utf8_variants(std::string_view s, std::u32string& out) {
  size_t start = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    const auto b = [&](size_t k) { return i + k < s.size() ? static_cast<unsigned char>(s[i + k]) : 0; };
    size_t len = 0;
    char32_t cp = 0;
    if (b(0) == 0xC0 && b(1) == 0x80) {
      len = 2;
    } else if (b(0) == 0xED && byte_in(b(1), 0xA0, 0xAF) && byte_in(b(2), 0x80, 0xBF) && b(3) == 0xED &&
               byte_in(b(4), 0xB0, 0xBF) && byte_in(b(5), 0x80, 0xBF)) {
      len = 6;
      const char32_t hi = ((b(1) & 0x0F) << 6) | (b(2) & 0x3F), lo = ((b(4) & 0x0F) << 6) | (b(5) & 0x3F);
      cp = 0x10000 + (hi << 10) + lo;
    }
    if (len == 0) continue;
    if (!decode_utf8(s.substr(start, i - start), out)) return false;
    out.push_back(cp);
    i += len - 1;
    start = i + 1;
  }
  return decode_utf8(s.substr(start), out);
}

// Length of one UTF8_DETECTOR_RE repetition at `i`: a lead character and its continuations.
size_t utf8_clue_at(std::u32string_view text, size_t i) {
  const auto continuations = [&](size_t count) {
    for (size_t k = 1; k <= count; ++k)
      if (i + k >= text.size() || !(range_bits(kUtf8Clues, text[i + k]) & kUtf8Continuation)) return false;
    return true;
  };
  const uint32_t lead = range_bits(kUtf8Clues, text[i]);
  if ((lead & kUtf8FirstOf2) && continuations(1)) return 2;
  if ((lead & kUtf8FirstOf3) && continuations(2)) return 3;
  if ((lead & kUtf8FirstOf4) && continuations(3)) return 4;
  return 0;
}

// ftfy's decode_inconsistent_utf8: each run matching UTF8_DETECTOR_RE (not preceded by a strict
// continuation character) that is shorter than the text and looks bad is fixed on its own.
std::u32string decode_inconsistent_utf8(std::u32string_view text) {
  std::u32string out;
  size_t i = 0;
  while (i < text.size()) {
    size_t end = i;
    if (i == 0 || !(range_bits(kUtf8Clues, text[i - 1]) & kUtf8ContinuationStrict)) {
      while (end < text.size()) {
        const size_t len = utf8_clue_at(text, end);
        if (len == 0) break;
        end += len;
      }
    }
    if (end == i) {
      out.push_back(text[i++]);
      continue;
    }
    const std::u32string_view run = text.substr(i, end - i);
    out += run.size() < text.size() && ftfy::is_bad(run) ? ftfy::fix_encoding(run) : std::u32string(run);
    i = end;
  }
  return out;
}

// One step of ftfy's _fix_encoding_one_step_and_explain: re-decode the whole text from the first
// single-byte encoding it fits that yields valid UTF-8, else fix mojibake runs in isolation, else
// repair C1 controls.
std::u32string fix_encoding_one_step(std::u32string_view text) {
  if (!ftfy::is_bad(text)) return std::u32string(text);

  for (const Charmap& charmap : kCharmaps) {
    const auto encoded = encode_single_byte(text, charmap);
    if (!encoded) continue;
    std::string bytes = *encoded;
    const std::string_view name = charmap.name;
    if (name != "macroman") {
      bool altered = false;
      for (size_t i = 0; i < bytes.size() && !altered; ++i) altered = altered_utf8_at(bytes, i) > 0;
      if (altered) bytes = restore_byte_a0(bytes);
    }
    if (name.starts_with("sloppy")) bytes = replace_lossy_sequences(bytes);
    std::u32string decoded;
    if (decode_utf8_variants(bytes, decoded)) return decoded;
  }
  std::u32string fixed = decode_inconsistent_utf8(text);
  if (fixed != text) return fixed;
  // What remains of ftfy's Latin-1 -> Windows-1252 step and its C1 repair both come down to
  // reading C1 controls as Windows-1252 (the undefined bytes stay as they are).
  return ftfy::fix_c1_controls(text);
}

const icu::Normalizer2& icu_normalizer(bool compat) {
  UErrorCode status = U_ZERO_ERROR;
  const icu::Normalizer2* norm =
      compat ? icu::Normalizer2::getNFKCInstance(status) : icu::Normalizer2::getNFCInstance(status);
  DK_CHECK(U_SUCCESS(status) && norm, "text cleaning: ICU normalizer unavailable: ", u_errorName(status));
  return *norm;
}

std::u32string icu_normalize(std::u32string_view text, bool compat) {
  if (text.empty()) return {};
  const icu::UnicodeString src =
      icu::UnicodeString::fromUTF32(reinterpret_cast<const UChar32*>(text.data()), int32_t(text.size()));
  UErrorCode status = U_ZERO_ERROR;
  const icu::UnicodeString dst = icu_normalizer(compat).normalize(src, status);
  DK_CHECK(U_SUCCESS(status), "text cleaning: ICU normalization failed: ", u_errorName(status));
  std::u32string out(size_t(dst.countChar32()), U'\0');
  status = U_ZERO_ERROR;
  dst.toUTF32(reinterpret_cast<UChar32*>(out.data()), int32_t(out.size()), status);
  DK_CHECK(U_SUCCESS(status), "text cleaning: ICU UTF-32 conversion failed: ", u_errorName(status));
  return out;
}

// ftfy's WIDTH_MAP: U+3000 -> space, and U+FF01..U+FFEF -> their NFKC form where it differs.
constexpr char32_t kWidthFirst = 0xFF01, kWidthLast = 0xFFEF;

const std::array<std::u32string, kWidthLast - kWidthFirst + 1>& width_map() {
  static const auto map = [] {
    std::array<std::u32string, kWidthLast - kWidthFirst + 1> m;
    for (char32_t c = kWidthFirst; c <= kWidthLast; ++c) {
      const std::u32string one(1, c);
      std::u32string alt = icu_normalize(one, true);
      if (alt != one) m[c - kWidthFirst] = std::move(alt);
    }
    return m;
  }();
  return map;
}

}  // namespace

std::u32string utf8_to_u32(std::string_view utf8) {
  std::u32string out;
  out.reserve(utf8.size());
  decode_utf8(utf8, out);
  return out;
}

std::string u32_to_utf8(std::u32string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char32_t c : text) {
    if ((c >= 0xD800 && c <= 0xDFFF) || c > 0x10FFFF) c = kReplacement;
    if (c < 0x80) {
      out.push_back(char(c));
    } else if (c < 0x800) {
      out.push_back(char(0xC0 | (c >> 6)));
      out.push_back(char(0x80 | (c & 0x3F)));
    } else if (c < 0x10000) {
      out.push_back(char(0xE0 | (c >> 12)));
      out.push_back(char(0x80 | ((c >> 6) & 0x3F)));
      out.push_back(char(0x80 | (c & 0x3F)));
    } else {
      out.push_back(char(0xF0 | (c >> 18)));
      out.push_back(char(0x80 | ((c >> 12) & 0x3F)));
      out.push_back(char(0x80 | ((c >> 6) & 0x3F)));
      out.push_back(char(0x80 | (c & 0x3F)));
    }
  }
  return out;
}

bool is_white_space(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F ||
         c == 0x3000;
}

bool is_python_space(char32_t c) { return is_white_space(c) || (c >= 0x1C && c <= 0x1F); }

std::u32string python_strip(std::u32string_view text) {
  size_t begin = 0, end = text.size();
  while (begin < end && is_python_space(text[begin])) ++begin;
  while (end > begin && is_python_space(text[end - 1])) --end;
  return std::u32string(text.substr(begin, end - begin));
}

// Python: re.sub(r'&(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\t\n\f <&#;]{1,32};?)', _replace_charref, s)
std::u32string html_unescape(std::u32string_view text) {
  if (!contains(text, U'&')) return std::u32string(text);
  const size_t n = text.size();
  return replace_references(text, [&](size_t i, std::u32string& out) {
    const size_t j = i + 1;
    if (j < n && text[j] == U'#') {
      // Decimal first, then hex; the value saturates above U+10FFFF (Python ints do not).
      const bool hex = j + 2 < n && (text[j + 1] == U'x' || text[j + 1] == U'X') && hex_value(text[j + 2]) >= 0;
      const bool dec = j + 1 < n && text[j + 1] >= U'0' && text[j + 1] <= U'9';
      if (!dec && !hex) return i;
      size_t k = dec ? j + 1 : j + 2;
      const int base = dec ? 10 : 16;
      char32_t num = 0;
      for (; k < n; ++k) {
        const int d = dec ? (text[k] >= U'0' && text[k] <= U'9' ? int(text[k] - U'0') : -1) : hex_value(text[k]);
        if (d < 0) break;
        num = num > 0x10FFFF ? num : num * base + char32_t(d);
      }
      if (k < n && text[k] == U';') ++k;
      out += numeric_charref(num);
      return k;
    }
    size_t k = j;
    while (k < n && k - j < 32 && !contains(U"\t\n\f <&#;", text[k])) ++k;
    if (k == j) return i;
    if (k < n && text[k] == U';') ++k;
    const std::u32string_view name = text.substr(j, k - j);
    if (const std::u32string* value = find_entity(html5_entities(), name)) {
      out += *value;
    } else {
      // The longest prefix (at least 2 characters) that is a known name.
      const std::u32string* prefix_value = nullptr;
      size_t x = name.size() - 1;
      while (x >= 2 && !(prefix_value = find_entity(html5_entities(), name.substr(0, x)))) --x;
      if (prefix_value) {
        out += *prefix_value;
        out += name.substr(x);
      } else {
        out.push_back(U'&');
        out += name;
      }
    }
    return k;
  });
}

namespace ftfy {

// HTML_ENTITY_RE = r"&#?[0-9A-Za-z]{1,24};": known ";"-terminated names (and ftfy's all-caps
// variants) are decoded; numeric references only when html.unescape consumes the ";".
std::u32string unescape_html(std::u32string_view text) {
  const size_t n = text.size();
  return replace_references(text, [&](size_t i, std::u32string& out) {
    const bool numeric = i + 1 < n && text[i + 1] == U'#';
    const size_t start = i + (numeric ? 2 : 1);
    size_t k = start;
    while (k < n && k - start < 25 && is_ascii_alnum(text[k])) ++k;
    const size_t len = k - start;
    if (len < 1 || len > 24 || k >= n || text[k] != U';') return i;
    const std::u32string_view entity = text.substr(i, k + 1 - i);
    if (numeric) {
      const std::u32string decoded = html_unescape(entity);
      out += contains(decoded, U';') ? std::u32string(entity) : decoded;
    } else if (const std::u32string* v = find_entity(html5_entities(), entity.substr(1))) {
      out += *v;
    } else if (const std::u32string* u = find_entity(ftfy_upper_entities(), entity.substr(1))) {
      out += *u;
    } else {
      out += entity;
    }
    return k + 1;
  });
}

// BADNESS_RE of ftfy/badness.py, alternative by alternative, tried at every position.
bool is_bad(std::u32string_view text) {
  constexpr char32_t kNone = 0xFFFFFFFF;  // past the end: in no class
  const auto in = [](char32_t c, uint32_t categories) { return (range_bits(kMojibakeCategories, c) & categories) != 0; };
  const auto one_of = [](char32_t c, std::u32string_view set) { return c != kNone && contains(set, c); };
  constexpr uint32_t kAccented = kLowerAccented | kUpperAccented;
  constexpr uint32_t kMarks = kAccented | kBox | kStartPunctuation | kEndPunctuation | kCurrency | kNumeric | kLaw;
  const auto arabic_middle = [&](char32_t c) {
    return in(c, kCommon | kCurrency | kBad | kNumeric | kStartPunctuation) || one_of(c, U"ŸŠ®°µ»");
  };
  const size_t n = text.size();
  for (size_t i = 0; i < n; ++i) {
    const auto at = [&](size_t k) { return i + k < n ? text[i + k] : kNone; };
    const char32_t a = at(0), b = at(1), c = at(2), d = at(3);
    const bool bad =
        in(a, kC1) ||
        (in(a, kBad | kMarks) && in(b, kBad)) ||
        (is_ascii_alpha(a) && in(b, kLowerCommon | kUpperCommon) && in(c, kBad)) ||
        (in(a, kBad) && in(b, kMarks)) ||
        (in(a, kLowerAccented | kLowerCommon | kBox | kEndPunctuation | kCurrency | kNumeric) && in(b, kUpperAccented)) ||
        (in(a, kBox | kEndPunctuation | kCurrency | kNumeric) && in(b, kLowerAccented)) ||
        (in(a, kLowerAccented | kBox | kEndPunctuation) && in(b, kCurrency)) ||
        (a != kNone && is_python_space(a) && in(b, kUpperAccented) && in(c, kCurrency)) ||
        (in(a, kUpperAccented | kBox) && in(b, kNumeric | kLaw)) ||
        (in(a, kAccented | kBox | kCurrency | kEndPunctuation) && in(b, kStartPunctuation) && in(c, kNumeric)) ||
        (in(a, kAccented | kCurrency | kNumeric | kBox | kLaw) && in(b, kEndPunctuation) && in(c, kStartPunctuation)) ||
        (in(a, kCurrency | kNumeric | kBox) && in(b, kStartPunctuation)) ||
        (is_ascii_lower(a) && in(b, kUpperAccented) && in(c, kStartPunctuation | kCurrency)) ||
        (in(a, kBox) && in(b, kKaomoji)) ||
        (in(a, kAccented | kCurrency | kNumeric | kStartPunctuation | kEndPunctuation | kLaw) && in(b, kBox)) ||
        (in(a, kBox) && in(b, kEndPunctuation)) ||
        (in(a, kAccented) && in(b, kStartPunctuation | kEndPunctuation) && c != kNone && is_word_char(c)) ||
        (one_of(a, U"Œœ") && b != kNone && !is_ascii_alpha(b)) ||
        (in(a, kUpperAccented) && b == U'°') ||
        (one_of(a, U"ÂÃÎÐ") &&
         (one_of(b, U"€œŠš¢£Ÿž\u00A0\u00AD®©°·»–—´") || in(b, kStartPunctuation | kEndPunctuation))) ||
        (a == U'×' && one_of(b, U"²³")) ||
        (one_of(a, U"ØÙ") && arabic_middle(b) && one_of(c, U"ØÙ") && arabic_middle(d)) ||
        (a == U'à' && one_of(b, U"²µ¹¼½¾")) ||
        (a == U'√' && one_of(b, U"±∂†≠®™´≤≥¥µø")) ||
        (a == U'≈' && one_of(b, U"°¢")) ||
        (a == U'‚' && b == U'Ä' && one_of(c, U"ìîïòôúùû†°¢π")) ||
        (a == U'‚' && one_of(b, U"âó") && one_of(c, U"àä°ê")) ||
        (a == U'в' && b == U'Ђ') ||
        (one_of(a, U"ВГРС") && (in(b, kC1 | kBad | kStartPunctuation | kEndPunctuation | kCurrency) || one_of(b, U"°µ")) &&
         one_of(c, U"ВГРС")) ||
        (text.substr(i, 5) == U"ГўВЂВ" && at(5) != kNone && at(5) != U'\n' && (is_ascii_alpha(at(6)) || at(6) == U' ')) ||
        (a == U'Ã' && one_of(b, U"\u00A0¡")) ||
        (is_ascii_lower(a) && ((one_of(b, U"ÃÂ") && c == U' ') ||
                               (b != kNone && is_python_space(b) && one_of(c, U"ÃÂ") && d == U' '))) ||
        (i == 0 && one_of(a, U"ÃÂ") && b == U' ') ||
        ((is_ascii_lower(a) || one_of(a, U".,?!") || in(a, kEndPunctuation)) && b == U'Â' &&
         (c == U' ' || in(c, kStartPunctuation | kEndPunctuation))) ||
        (a == U'β' && b == U'€' && one_of(c, U"™\u00A0Ά\u00AD®°")) ||
        (one_of(a, U"ΒΓΞΟ") && (in(b, kC1 | kBad | kStartPunctuation | kEndPunctuation | kCurrency) || b == U'°') &&
         one_of(c, U"ΒΓΞΟ")) ||
        (a == U'ā' && b == U'€');
    if (bad) return true;
  }
  return false;
}

std::u32string fix_encoding(std::u32string_view text) {
  std::u32string current(text);
  while (true) {
    std::u32string next = fix_encoding_one_step(current);
    if (next == current) return current;
    current = std::move(next);
  }
}

std::u32string fix_c1_controls(std::u32string_view text) {
  return translate(text, [](char32_t c, std::u32string& out) {
    out.push_back(c >= 0x80 && c <= 0x9F ? kSloppyCp1252.high[c - 0x80] : c);
  });
}

std::u32string fix_latin_ligatures(std::u32string_view text) {
  static const std::unordered_map<char32_t, std::u32string_view> ligatures = {
      {U'Ĳ', U"IJ"}, {U'ĳ', U"ij"}, {U'ŉ', U"ʼn"}, {U'Ǳ', U"DZ"}, {U'ǲ', U"Dz"},  {U'ǳ', U"dz"},
      {U'Ǆ', U"DŽ"}, {U'ǅ', U"Dž"}, {U'ǆ', U"dž"}, {U'Ǉ', U"LJ"}, {U'ǈ', U"Lj"},  {U'ǉ', U"lj"},
      {U'Ǌ', U"NJ"}, {U'ǋ', U"Nj"}, {U'ǌ', U"nj"}, {U'ﬀ', U"ff"}, {U'ﬁ', U"fi"},  {U'ﬂ', U"fl"},
      {U'ﬃ', U"ffi"}, {U'ﬄ', U"ffl"}, {U'ﬅ', U"ſt"}, {U'ﬆ', U"st"}};
  return translate(text, [](char32_t c, std::u32string& out) {
    const auto it = ligatures.find(c);
    if (it == ligatures.end()) {
      out.push_back(c);
    } else {
      out += it->second;
    }
  });
}

std::u32string fix_character_width(std::u32string_view text) {
  const auto& map = width_map();
  return translate(text, [&map](char32_t c, std::u32string& out) {
    if (c == 0x3000) {
      out.push_back(U' ');
    } else if (c >= kWidthFirst && c <= kWidthLast && !map[c - kWidthFirst].empty()) {
      out += map[c - kWidthFirst];
    } else {
      out.push_back(c);
    }
  });
}

std::u32string uncurl_quotes(std::u32string_view text) {
  return translate(text, [](char32_t c, std::u32string& out) {
    if (c == 0x02BC || (c >= 0x2018 && c <= 0x201B)) {
      out.push_back(U'\'');
    } else if (c >= 0x201C && c <= 0x201F) {
      out.push_back(U'"');
    } else {
      out.push_back(c);
    }
  });
}

std::u32string fix_line_breaks(std::u32string_view text) {
  std::u32string out = replace_all(std::u32string(text), U"\r\n", U"\n");
  for (const char32_t c : {U'\r', U'\u2028', U'\u2029', U'\u0085'})
    out = replace_all(std::move(out), std::u32string(1, c), U"\n");
  return out;
}

// ANSI_RE = "\033\[((?:\d|;)*)([a-zA-Z])", \d being any Unicode decimal digit.
std::u32string remove_terminal_escapes(std::u32string_view text) {
  std::u32string out;
  out.reserve(text.size());
  const size_t n = text.size();
  size_t i = 0;
  while (i < n) {
    if (text[i] == 0x1B && i + 1 < n && text[i + 1] == U'[') {
      size_t k = i + 2;
      while (k < n && (text[k] == U';' || u_isdigit(UChar32(text[k])))) ++k;
      if (k < n && is_ascii_alpha(text[k])) {
        i = k + 1;
        continue;
      }
    }
    out.push_back(text[i++]);
  }
  return out;
}

std::u32string remove_control_chars(std::u32string_view text) {
  return translate(text, [](char32_t c, std::u32string& out) {
    const bool control = c <= 0x08 || c == 0x0B || (c >= 0x0E && c <= 0x1F) || c == 0x7F ||
                         (c >= 0x206A && c <= 0x206F) || c == 0xFEFF || (c >= 0xFFF9 && c <= 0xFFFC);
    if (!control) out.push_back(c);
  });
}

std::u32string normalize_nfc(std::u32string_view text) { return icu_normalize(text, false); }

namespace {

// ftfy.fix_and_explain on one segment: all fixers, repeated until nothing changes.
std::u32string fix_segment(std::u32string text, bool unescape) {
  while (true) {
    const std::u32string original = text;
    if (unescape) text = unescape_html(text);
    text = fix_encoding(text);
    text = fix_c1_controls(text);
    text = fix_latin_ligatures(text);
    text = fix_character_width(text);
    text = uncurl_quotes(text);
    text = fix_line_breaks(text);
    // fix_surrogates has nothing to do: UTF-32 text here never holds surrogates.
    text = remove_terminal_escapes(text);
    text = remove_control_chars(text);
    text = normalize_nfc(text);
    if (text == original) return text;
  }
}

}  // namespace

std::u32string fix_text(std::u32string_view text) {
  constexpr size_t kMaxDecodeLength = 1000000;
  // unescape_html="auto": off for the first segment holding "<" and every segment after it.
  bool unescape = true;
  std::u32string out;
  size_t pos = 0;
  while (pos < text.size()) {
    const size_t newline = text.find(U'\n', pos);
    size_t end = newline == std::u32string_view::npos ? text.size() : newline + 1;
    end = std::min(end, pos + kMaxDecodeLength);
    const std::u32string_view segment = text.substr(pos, end - pos);
    unescape = unescape && !contains(segment, U'<');
    out += fix_segment(std::u32string(segment), unescape);
    pos = end;
  }
  return out;
}

}  // namespace ftfy

std::string clean_whitespace(std::string_view prompt) {
  std::u32string text = ftfy::fix_text(utf8_to_u32(prompt));
  text = python_strip(html_unescape(html_unescape(text)));
  std::u32string collapsed;
  collapsed.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    if (!is_white_space(text[i])) {
      collapsed.push_back(text[i++]);
      continue;
    }
    while (i < text.size() && is_white_space(text[i])) ++i;
    collapsed.push_back(U' ');
  }
  return u32_to_utf8(python_strip(collapsed));
}

}  // namespace ditkit::text
