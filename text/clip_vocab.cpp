// The standard CLIP BPE merges file (openai/CLIP bpe_simple_vocab_16e6.txt.gz, unmodified),
// embedded at build time: CMake passes its path as DITKIT_CLIP_VOCAB_GZ and rebuilds this file
// when it changes.
#include <string_view>

__asm__(
    ".pushsection .rodata\n"
    ".balign 16\n"
    ".global ditkit_clip_vocab_gz_begin\n"
    ".hidden ditkit_clip_vocab_gz_begin\n"
    "ditkit_clip_vocab_gz_begin:\n"
    ".incbin \"" DITKIT_CLIP_VOCAB_GZ
    "\"\n"
    ".global ditkit_clip_vocab_gz_end\n"
    ".hidden ditkit_clip_vocab_gz_end\n"
    "ditkit_clip_vocab_gz_end:\n"
    ".popsection\n");

extern "C" const char ditkit_clip_vocab_gz_begin[];
extern "C" const char ditkit_clip_vocab_gz_end[];

namespace ditkit::text {

std::string_view builtin_clip_vocab_gz() {
  return {ditkit_clip_vocab_gz_begin, size_t(ditkit_clip_vocab_gz_end - ditkit_clip_vocab_gz_begin)};
}

}  // namespace ditkit::text
