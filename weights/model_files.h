// Finding model components on disk: a single weights file, a sharded index, an official Wan
// folder (config.json, diffusion_pytorch_model*.safetensors[.index.json], models_t5_*.pth,
// Wan2.1_VAE.pth, tokenizer folder), a diffusers folder (transformer/, text_encoder/, vae/, ...)
// or any folder of weight files; and loading one with its config.
#pragma once
#include <string>
#include <vector>

#include "weights/layout.h"

namespace ditkit::weights {

struct Component {
  std::string name;                // path relative to the folder searched ("transformer/...", a file name)
  std::vector<std::string> files;  // one file, one *.safetensors.index.json, or the shards of one model
  std::string config;              // config.json in the same folder, "" when there is none
};

struct ModelFolder {
  std::vector<Component> components;
  std::vector<std::string> tokenizers;  // folders holding tokenizer files
};

// PATH is a weights file, an index, or a folder (searched three levels deep). Throws naming the
// path when it does not exist or holds no weights.
ModelFolder find_components(const std::string& path);

// "safetensors", "pth", "gguf" from the file's first bytes; "safetensors index" for an index;
// "unknown" otherwise.
std::string file_format(const std::string& path);

struct LoadedComponent {
  std::shared_ptr<const Checkpoint> checkpoint;
  Detected detected;                      // family unknown when nothing matched
  std::unique_ptr<ModelWeights> weights;  // null when the family is unknown
  ModelConfig config;
  std::string config_source;  // the config.json used, or "tensor shapes"
  std::string config_error;   // why no config could be inferred from the shapes (config left unknown)
};

// Opens the component, detects (or takes) family and layout and reads its config. Overrides are
// family / layout names as for detect(). Throws naming the file when it cannot be read or its
// config.json is invalid; tensors that do not tell the config are reported in config_error.
LoadedComponent load_component(const Component& c, std::string_view family = {}, std::string_view layout = {});

}  // namespace ditkit::weights
