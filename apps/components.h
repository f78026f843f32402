// Finding one model component (by family) in what the user pointed at: a file, a sharded
// index, or a model folder (official, diffusers, ComfyUI).
#pragma once
#include <string>

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

}  // namespace ditkit::apps
