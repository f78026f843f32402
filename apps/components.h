// Finding one model component (by family) in what the user pointed at: a file, a sharded
// index, or a model folder (official, diffusers, ComfyUI). The attention options shared by
// `t2v`, `t2i` and the benches (kinds, plans, PAG/SoftPAG, FreeSwim's dual path), the Wan
// velocity function that applies them, and FLUX.1's component flags and velocity function.
#pragma once
#include <CLI/CLI.hpp>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "attention/freeswim.h"
#include "attention/plan.h"
#include "dit/flux.h"
#include "dit/wan.h"
#include "samplers/denoise.h"
#include "weights/model_files.h"

namespace ditkit::apps {

// The first component of `family` under `path`; throws naming `flag` and the path when none is
// found or its config cannot be determined.
weights::LoadedComponent load_family(const std::string& path, weights::Family family, const std::string& flag);

// The tokenizer under `path` (spiece.model, tokenizer.json or a folder holding one).
std::string find_tokenizer(const std::string& path, const std::string& flag);

// Wan2.1 video sizes: frames 4k+1, width and height positive multiples of 16 (VAE stride 8 x
// patch 2). Errors name the flag.
void check_wan_video_size(int64_t frames, int64_t width, int64_t height);

// "0-3,7" -> 0 1 2 3 7 (layers, heads): every index below `count`; errors name the flag and `what`.
std::vector<int> parse_indices(const std::string& text, const std::string& flag, int64_t count, const char* what);

// --attention KIND[:k=v,...] | --attention-plan FILE, --pag-scale, --pag-layers, --pag-heads, --softpag.
struct AttentionOptions {
  std::string kind = "dense", plan_file, pag_layers, pag_heads;
  double pag_scale = 0.0, softpag = 1.0;
  void add_to(CLI::App& cmd);
};

// What the options make for a model of `num_layers` blocks with `num_heads` heads. PAG's
// default layers: the middle block (num_layers / 2), as PAG perturbs a U-Net's mid block.
// FreeSwim's dual path replaces cross-attention outputs: a model without cross-attention
// (`cross_attention` false: FLUX) runs the sliding window alone.
struct AttentionSetup {
  attention::Plan plan;
  attention::Hooks hooks;
  std::unique_ptr<attention::DualPath> dual_path;  // FreeSwim: sliding-window with dual_path
  double pag_scale = 0.0;
  attention::Control control() const { return {&plan, &hooks}; }
  // Settings for the run metadata (attention plan JSON, PAG, dual path).
  std::vector<std::pair<std::string, std::string>> metadata;
};
AttentionSetup make_attention_setup(const AttentionOptions& o, int64_t num_layers, int64_t num_heads,
                                    bool cross_attention = true);

// The Wan velocity of one pass at `timesteps[step]`: Cond and Perturbed see contexts[0] (the
// prompt), Uncond contexts[1]; runs FreeSwim's full branch first when the dual path asks.
samplers::VelocityFn wan_velocity(const dit::WanModel& model, const std::vector<double>& timesteps,
                                  const std::vector<Tensor>& contexts, const AttentionSetup& setup);

// FLUX.1's components: --model DIR (a BFL folder with flux1-*.safetensors and ae.safetensors,
// or a diffusers folder) and the per-component flags, which win over --model.
struct FluxPaths {
  std::string model, dit, vae, clip_l, t5, t5_tokenizer, clip_tokenizer;
  // --model, --dit, --clip-l, --t5, --t5-tokenizer, --clip-tokenizer; --vae when `with_vae`.
  void add_to(CLI::App& cmd, bool with_vae);
  // The component of `family` from its flag, else from --model; errors name the flag to give.
  weights::LoadedComponent load(weights::Family family) const;
  // The DiT config when --dit or --model holds a FLUX DiT (for the defaults of encode-prompt).
  std::optional<weights::FluxDitConfig> find_dit_config() const;
  // T5's SentencePiece tokenizer: --t5-tokenizer, else tokenizer_2/ (or another folder holding
  // spiece.model / tokenizer.json) under --model, else one beside the --t5 weights.
  std::string t5_tokenizer_path() const;
  // CLIP's BPE: --clip-tokenizer, else tokenizer/ (vocab.json + merges.txt) under --model, else
  // the standard CLIP vocabulary carried in the binary (single-file users have none).
  std::string clip_tokenizer_path() const;  // "" = the builtin vocabulary
};

// T5 tokens FLUX feeds the DiT: 512 for dev-like models (guidance embedding), 256 for schnell.
int64_t flux_default_text_len(bool guidance_embed);

// What one FLUX image is conditioned on: the T5 rows (padding included) [T, context_in_dim] and
// their zero ids, the pooled CLIP vector [vec_in_dim], the packed image token ids and the
// distilled guidance value.
struct FluxConditioning {
  Tensor txt, txt_ids, vec, img_ids;
  double guidance = 3.5;
};

// The FLUX velocity of one pass at `timesteps[step]` (t in [0, 1]); Cond and Perturbed see the
// same conditioning (FLUX has no negative prompt).
samplers::VelocityFn flux_velocity(const dit::FluxModel& model, const std::vector<double>& timesteps,
                                   const FluxConditioning& cond, const AttentionSetup& setup);

}  // namespace ditkit::apps
