// Prompt cleaning exactly as the official Wan2.1 pipeline runs it (wan/modules/tokenizers.py,
// HuggingfaceTokenizer(clean='whitespace')):
//   basic_clean:      ftfy.fix_text(text) (ftfy 6.3.1 defaults), html.unescape twice, strip()
//   whitespace_clean: every run of Unicode White_Space (the `regex` module's \s) -> " ", strip()
// The pieces work on UTF-32 strings (one element per code point, like a Python str) and are
// exposed so that each step can be tested on its own.
//
// ftfy is ported rule for rule: its default fixers in their order and loop, the segment-wise
// unescape_html="auto" rule, and fix_encoding with the badness heuristic, all ten single-byte
// encodings (including the "sloppy" codecs), restore_byte_a0, replace_lossy_sequences,
// decode_inconsistent_utf8 and the utf-8-variants decoder. The character tables are
// generated data (html_entities.inc, ftfy_data.inc). fix_surrogates has nothing to do here:
// input is UTF-8, so surrogate code points cannot occur (invalid bytes become U+FFFD).
#pragma once
#include <string>
#include <string_view>

namespace ditkit::text {

// UTF-8 -> code points. Invalid input becomes U+FFFD per maximal invalid subsequence, as
// Python's bytes.decode('utf-8', errors='replace') does.
std::u32string utf8_to_u32(std::string_view utf8);
std::string u32_to_utf8(std::u32string_view text);

// Unicode White_Space (what `regex` matches with \s; U+001C..U+001F are not in it).
bool is_white_space(char32_t c);
// Python's str.isspace() (White_Space plus U+001C..U+001F), used by str.strip().
bool is_python_space(char32_t c);
std::u32string python_strip(std::u32string_view text);

// Python's html.unescape: named references from the HTML5 table (legacy names also without
// ";", longest-prefix rule), decimal/hex references with Python's replacements for invalid
// code points.
std::u32string html_unescape(std::u32string_view text);

namespace ftfy {

// The individual fixers of ftfy.fix_text, in the order fix_text applies them.
std::u32string unescape_html(std::u32string_view text);
// ftfy.badness.is_bad: whether the text holds a sequence typical of mojibake.
bool is_bad(std::u32string_view text);
std::u32string fix_encoding(std::u32string_view text);
std::u32string fix_c1_controls(std::u32string_view text);
std::u32string fix_latin_ligatures(std::u32string_view text);
std::u32string fix_character_width(std::u32string_view text);
std::u32string uncurl_quotes(std::u32string_view text);
std::u32string fix_line_breaks(std::u32string_view text);
std::u32string remove_terminal_escapes(std::u32string_view text);
std::u32string remove_control_chars(std::u32string_view text);
std::u32string normalize_nfc(std::u32string_view text);

// ftfy.fix_text with the default TextFixerConfig.
std::u32string fix_text(std::u32string_view text);

}  // namespace ftfy

// The official clean='whitespace' path on a UTF-8 prompt; returns UTF-8.
std::string clean_whitespace(std::string_view prompt);

}  // namespace ditkit::text
