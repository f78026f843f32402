// Pipeline pieces shared by the generating commands (t2i, t2v, style, edit): FLUX.1 text
// conditioning, prompt files and numbered outputs; Wan2.1 component flags, the official
// negative prompt and frame output.
#pragma once
#include <CLI/CLI.hpp>
#include <string>
#include <vector>

#include "apps/components.h"
#include "io/image.h"

namespace ditkit::apps {

// ---- FLUX.1 -------------------------------------------------------------------------------

// The text conditioning of N prompts (CPU, f32): T5 rows and pooled CLIP vectors.
struct PromptEmbeds {
  Tensor txt;  // [N, L, context dim]
  Tensor vec;  // [N, pooled dim]
};

// FLUX's HFEmbedder for both encoders: CLIP padded to 77 with its pad token, T5 padded to
// text_len and run WITHOUT an attention mask (the pads are attended, as the official code does).
// Each encoder's weights are freed before the next one is built.
PromptEmbeds flux_encode_prompts(const FluxPaths& paths, const std::vector<std::string>& prompts, int64_t text_len,
                                 Device device);

// One prompt per non-empty line of the file given to --prompts.
std::vector<std::string> read_prompts(const std::string& path);

// Output `index` of `count`: the path as given for one; else the %d pattern filled in, or
// "_<index>" before the extension.
std::string numbered_path(const std::string& out, int64_t index, int64_t count);

// FLUX's CLI rounds the size down to multiples of 16 (VAE stride 8 x 2x2 packing); says so on stderr.
int64_t image_side(int64_t value, const char* flag);

// ---- Wan2.1 -------------------------------------------------------------------------------

// wan/configs/shared_config.py sample_neg_prompt.
extern const char* const kWanNegativePrompt;

// Wan2.1's components: --model DIR and the per-component flags, which win over --model.
struct WanPaths {
  std::string model, dit, text_encoder, vae, tokenizer;
  void add_to(CLI::App& cmd);
  struct Loaded {
    weights::LoadedComponent dit, t5, vae;
    std::string tokenizer;  // spiece.model / tokenizer.json path
  };
  // Errors name the flag to give.
  Loaded load() const;
};

struct VideoOutput {
  std::string path;
  double fps = 16;
  int crf = 18;
};

// A .mp4 (or other container) file, or a PNG per frame when the path holds a %d pattern.
void write_frames(const Tensor& video, const VideoOutput& out, const PngText& text);

}  // namespace ditkit::apps
