// Model families and checkpoint key layouts. A checkpoint's key set tells which model it holds
// (family) and how its tensors are named (layout: the official repository's names, a ComfyUI
// prefixed file, diffusers or transformers names). Model code only ever sees OFFICIAL names:
// ModelWeights maps them back to the stored tensors (renames, concatenation of split tensors,
// swapped halves). Configs are read from a config.json when there is one, else inferred from
// tensor shapes and the known real configurations.
#pragma once
#include <array>
#include <map>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "weights/checkpoint.h"

namespace ditkit::weights {

enum class Family { unknown, wan_dit, umt5, wan_vae, flux_dit, flux_ae, clip_l, t5_xxl };
// official: Wan repo / BFL names (and transformers names for clip_l and t5_xxl, whose official
// release is the transformers one); comfyui: official or transformers names behind a prefix
// such as "model.diffusion_model.", or ComfyUI's scaled-fp8 text encoders.
enum class Layout { official, comfyui, diffusers, hf };

const char* family_name(Family f);
const char* layout_name(Layout l);
// Throw naming the text and the accepted values.
Family family_from_name(std::string_view name);
Layout layout_from_name(std::string_view name);

struct Detected {
  Family family = Family::unknown;
  Layout layout = Layout::official;  // as reported
  Layout naming = Layout::official;  // the names behind the prefix (official, diffusers or hf)
  std::string prefix;                // stripped from every key, e.g. "model.diffusion_model."
};

// Detects family and layout from a checkpoint's key set. Empty overrides mean "detect"; a given
// family and/or layout wins (the prefix is still looked for; a family whose keys do not match is
// taken with the names as they are, for validation to report). Throws listing a few keys when
// nothing matches (detect) or returns family unknown (try_detect).
Detected detect(const std::vector<std::string>& names, std::string_view family = {}, std::string_view layout = {});
Detected try_detect(const std::vector<std::string>& names);

// One official tensor assembled from stored tensors: the listed rows of each piece,
// concatenated along dim 0 (a single whole piece is the common rename case).
struct Piece {
  std::string key;  // stored name
  int64_t row_begin = 0, rows = 0;
};
struct Source {
  std::vector<Piece> pieces;
  Shape shape;        // of the assembled tensor
  bool whole = true;  // one whole stored tensor (a rename; `shape` may add unit dims)
};
struct KeyMap {
  std::map<std::string, Source> official;  // official name -> source
  std::vector<std::string> unmapped;       // stored names no rule knows (not part of the model)
  std::vector<std::string> ignored;        // known extras: tied copies, buffers, other towers
};
// Builds the map for a detected layout from the stored names and shapes. Throws naming the
// official tensor when a split tensor misses a part or the parts disagree.
KeyMap build_key_map(const Detected& d, const std::map<std::string, Shape>& stored);

// ---- configs (field names as in the official constructors) ----
struct WanDitConfig {
  std::string model_type = "t2v";
  std::array<int64_t, 3> patch_size{1, 2, 2};
  int64_t text_len = 512, in_dim = 16, dim = 2048, ffn_dim = 8192, freq_dim = 256, text_dim = 4096, out_dim = 16,
          num_heads = 16, num_layers = 32;
  std::array<int64_t, 2> window_size{-1, -1};
  bool qk_norm = true, cross_attn_norm = true;
  double eps = 1e-6;
};
// Wan's umT5 (shared_pos false: one relative bias table per layer) and T5 v1.1 (shared_pos true).
struct T5Config {
  int64_t vocab = 256384, dim = 4096, dim_attn = 4096, dim_ffn = 10240, num_heads = 64, num_layers = 24,
          num_buckets = 32, max_distance = 128;
  bool shared_pos = false;
  double eps = 1e-6;
};
struct WanVaeConfig {
  int64_t dim = 96, z_dim = 16;
  std::vector<int64_t> dim_mult{1, 2, 4, 4};
  int64_t num_res_blocks = 2;
  std::vector<double> attn_scales;
  std::vector<bool> temperal_downsample{false, true, true};
  std::vector<double> latent_mean, latent_std;  // 16 each (wan/modules/vae.py)
};
struct FluxDitConfig {
  int64_t in_channels = 64, out_channels = 64, vec_in_dim = 768, context_in_dim = 4096, hidden_size = 3072;
  double mlp_ratio = 4.0;
  int64_t num_heads = 24, depth = 19, depth_single_blocks = 38;
  std::vector<int64_t> axes_dim{16, 56, 56};
  double theta = 10000;
  bool qkv_bias = true, guidance_embed = true;
};
struct FluxAeConfig {
  int64_t resolution = 256, in_channels = 3, ch = 128, out_ch = 3;
  std::vector<int64_t> ch_mult{1, 2, 4, 4};
  int64_t num_res_blocks = 2, z_channels = 16;
  double scale_factor = 0.3611, shift_factor = 0.1159;
};
struct ClipTextConfig {
  int64_t vocab_size = 49408, hidden_size = 768, intermediate_size = 3072, num_hidden_layers = 12,
          num_attention_heads = 12, max_position_embeddings = 77;
  std::string hidden_act = "quick_gelu";
  double layer_norm_eps = 1e-5;
};

struct ModelConfig {
  Family family = Family::unknown;
  std::variant<std::monostate, WanDitConfig, T5Config, WanVaeConfig, FluxDitConfig, FluxAeConfig, ClipTextConfig>
      params;
  template <typename T>
  const T& as() const {
    return std::get<T>(params);
  }
};

// The real configurations by name: wan2.1-t2v-1.3b, wan2.1-t2v-14b, umt5-xxl, wan2.1-vae,
// flux.1-dev, flux.1-schnell, flux.1-ae, clip-l, t5-v1_1-xxl.
ModelConfig known_config(std::string_view name);
std::vector<std::string> known_config_names();
// Reads official constructor names or the diffusers / transformers names. Throws naming `what`.
ModelConfig config_from_json(Family f, const nlohmann::json& j, const std::string& what);
// Whether a config.json plausibly describes this family (a folder's config.json belongs to one
// component only).
bool config_json_fits(Family f, const nlohmann::json& j);
// From official tensor shapes; sizes shapes cannot tell (heads, text_len, axes) come from the
// known real config of the same width, else from the usual head size.
ModelConfig config_from_shapes(Family f, const std::map<std::string, Shape>& official);
nlohmann::json config_to_json(const ModelConfig& c);

// The full parameter list of a model in official names.
struct ExpectedTensor {
  std::string name;
  Shape shape;
};
std::vector<ExpectedTensor> expected_tensors(const ModelConfig& c);

struct Validation {
  std::vector<std::string> missing;     // expected, not present
  std::vector<std::string> mismatched;  // "name: expected [..], got [..]"
  std::vector<std::string> unexpected;  // present in official names, not expected
  bool ok() const { return missing.empty() && mismatched.empty(); }
};
Validation check_tensors(const ModelConfig& c, const std::map<std::string, Shape>& official);
// Throws naming `what`, the mismatched tensors with both shapes and the missing tensors.
void validate(const ModelConfig& c, const std::map<std::string, Shape>& official, const std::string& what);

// A checkpoint seen through official names.
class ModelWeights {
 public:
  ModelWeights(std::shared_ptr<const Checkpoint> ckpt, const Detected& d);
  // Opens a file or sharded index and detects (or takes) family and layout.
  static ModelWeights open(const std::string& path, std::string_view family = {}, std::string_view layout = {});

  const Detected& detected() const { return detected_; }
  Family family() const { return detected_.family; }
  std::vector<std::string> names() const;  // official names present, sorted
  bool contains(const std::string& name) const { return map_.official.count(name) != 0; }
  const Shape& shape(const std::string& name) const;
  DType dtype(const std::string& name) const;
  // In the stored dtype; a view of the file for renamed tensors, a new CPU tensor when assembled
  // (ComfyUI scaled-fp8 weights come back multiplied by their scale_weight, in bf16).
  Tensor get(const std::string& name) const;
  std::map<std::string, Shape> shapes() const;
  const KeyMap& key_map() const { return map_; }
  const Checkpoint& checkpoint() const { return *ckpt_; }

 private:
  const Source& source(const std::string& name) const;
  Tensor stored(const std::string& name) const;  // as stored, no scale applied
  std::shared_ptr<const Checkpoint> ckpt_;
  Detected detected_;
  KeyMap map_;
};

}  // namespace ditkit::weights
