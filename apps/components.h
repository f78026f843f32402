// Finding one model component (by family) in what the user pointed at: a file, a sharded
// index, or a model folder (official, diffusers, ComfyUI). The attention options shared by
// `t2v` and `bench t2v` (kinds, plans, PAG/SoftPAG, FreeSwim's dual path) and the Wan velocity
// function that applies them.
#pragma once
#include <CLI/CLI.hpp>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "attention/freeswim.h"
#include "attention/plan.h"
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

// --attention KIND[:k=v,...] | --attention-plan FILE, --pag-scale, --pag-layers, --pag-heads, --softpag.
struct AttentionOptions {
  std::string kind = "dense", plan_file, pag_layers, pag_heads;
  double pag_scale = 0.0, softpag = 1.0;
  void add_to(CLI::App& cmd);
};

// What the options make for a model of `num_layers` blocks with `num_heads` heads. PAG's
// default layers: the middle block (num_layers / 2), as PAG perturbs a U-Net's mid block.
struct AttentionSetup {
  attention::Plan plan;
  attention::Hooks hooks;
  std::unique_ptr<attention::DualPath> dual_path;  // FreeSwim: sliding-window with dual_path
  double pag_scale = 0.0;
  attention::Control control() const { return {&plan, &hooks}; }
  // Settings for the run metadata (attention plan JSON, PAG, dual path).
  std::vector<std::pair<std::string, std::string>> metadata;
};
AttentionSetup make_attention_setup(const AttentionOptions& o, int64_t num_layers, int64_t num_heads);

// The Wan velocity of one pass at `timesteps[step]`: Cond and Perturbed see contexts[0] (the
// prompt), Uncond contexts[1]; runs FreeSwim's full branch first when the dual path asks.
samplers::VelocityFn wan_velocity(const dit::WanModel& model, const std::vector<double>& timesteps,
                                  const std::vector<Tensor>& contexts, const AttentionSetup& setup);

}  // namespace ditkit::apps
