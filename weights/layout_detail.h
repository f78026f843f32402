// Internals shared by layout*.cpp: per-family key rules, parameter lists and config readers.
#pragma once
#include <functional>
#include <nlohmann/json.hpp>

#include "weights/layout.h"

namespace ditkit::weights::detail {

// Maps one stored name (prefix removed) to an official name. Templates: "{}" matches a run of
// digits, "{w}" one name segment (no dot), a trailing "*" any non-empty rest; captures fill the
// destination in order. A null
// destination marks a known extra (ignored). part/parts: this tensor is rows part of `parts`
// pieces concatenated along dim 0 into the official tensor; swap: its two halves are swapped.
using BlockCount = std::function<int64_t(const char* blocks)>;

struct Rule {
  const char* src;
  const char* dst;
  int part = 0;
  int parts = 1;
  bool swap = false;
  // A 2-D linear weight standing for a 1x1 convolution: two unit dims are appended.
  bool conv1x1 = false;
  // Official block indices computed from the stored ones where the numbering differs (diffusers
  // groups or reverses blocks). `count(p)` is the number of stored blocks "<p>N." (prefix removed).
  std::vector<int64_t> (*index)(const std::vector<int64_t>& stored, const BlockCount& count) = nullptr;
};

struct LayoutSpec {
  Family family;
  Layout naming;
  std::vector<const char*> signature;  // all present (after the prefix) => this spec matches
  std::vector<const char*> absent;     // none of these present
  std::vector<Rule> rules;             // tried in order; unmatched names are kept as they are
};

const std::vector<LayoutSpec>& wan_specs();
const std::vector<LayoutSpec>& flux_specs();
const std::vector<LayoutSpec>& text_specs();

std::vector<ExpectedTensor> expected_wan_dit(const WanDitConfig& c);
std::vector<ExpectedTensor> expected_wan_vae(const WanVaeConfig& c);
std::vector<ExpectedTensor> expected_flux_dit(const FluxDitConfig& c);
std::vector<ExpectedTensor> expected_flux_ae(const FluxAeConfig& c);
std::vector<ExpectedTensor> expected_t5(Family f, const T5Config& c);
std::vector<ExpectedTensor> expected_clip(const ClipTextConfig& c);

WanDitConfig wan_dit_from_json(const nlohmann::json& j, const std::string& what);
WanVaeConfig wan_vae_from_json(const nlohmann::json& j, const std::string& what);
FluxDitConfig flux_dit_from_json(const nlohmann::json& j, const std::string& what);
FluxAeConfig flux_ae_from_json(const nlohmann::json& j, const std::string& what);
T5Config t5_from_json(Family f, const nlohmann::json& j, const std::string& what);
ClipTextConfig clip_from_json(const nlohmann::json& j, const std::string& what);

using Shapes = std::map<std::string, Shape>;
WanDitConfig wan_dit_from_shapes(const Shapes& s);
WanVaeConfig wan_vae_from_shapes(const Shapes& s);
FluxDitConfig flux_dit_from_shapes(const Shapes& s);
FluxAeConfig flux_ae_from_shapes(const Shapes& s);
T5Config t5_from_shapes(Family f, const Shapes& s);
ClipTextConfig clip_from_shapes(const Shapes& s);

// Real configs of one family (for sizes that shapes cannot tell).
std::vector<ModelConfig> known_configs(Family f);

// Shape helpers; throw naming the tensor when it is missing or too short.
int64_t shape_dim(const Shapes& s, const std::string& name, size_t i);
bool has(const Shapes& s, const std::string& name);
// Upper bound on layer / block / level counts, so that a hostile config cannot make the
// parameter list unbounded.
constexpr int64_t kMaxBlocks = 4096;
void check_count(const std::string& what, const char* key, int64_t value);
// Number of blocks "<prefix>N." present (largest N + 1, at most kMaxBlocks).
int64_t count_blocks(const Shapes& s, const std::string& prefix);

// Reads the first of `keys` present and not null into `out`; throws naming `what` and the key
// when the value has the wrong type. Returns whether one was found.
template <typename T>
bool read_json(const nlohmann::json& j, std::initializer_list<const char*> keys, T& out, const std::string& what) {
  for (const char* k : keys) {
    auto it = j.find(k);
    if (it == j.end() || it->is_null()) continue;
    try {
      out = it->get<T>();
    } catch (const nlohmann::json::exception& e) {
      fail(what, ": config key \"", k, "\" has the wrong type (", it->dump(), ")");
    }
    return true;
  }
  return false;
}

// Appends "<name>.weight" [shape] and, when bias, "<name>.bias" [shape[0]].
void add_linear(std::vector<ExpectedTensor>& out, const std::string& name, Shape weight, bool bias = true);

}  // namespace ditkit::weights::detail
