// Attention kinds: dense, radial, neighborhood (NATTEN/GNA), grat, sliding-window (FreeSwim).
// A kind is its parameters (defaults as in the official code, filled in on construction) and
// the mask it builds for a token layout; the block-sparse engine runs every one of them.
// Kinds never know which model calls them.
#pragma once
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "attention/attention.h"
#include "attention/schedule.h"

namespace ditkit::attention {

// The pattern of a kind on one layout: its rule over kernel positions and the kernel order
// (empty = canonical order; see BlockSchedule).
struct KindMask {
  std::unique_ptr<MaskRule> rule;
  std::vector<int64_t> q_order, k_order;
};

class Kind {
 public:
  explicit Kind(nlohmann::json params) : params_(std::move(params)) {}
  virtual ~Kind() = default;
  virtual std::string name() const = 0;
  // All parameters, defaults included (what a run records in its metadata).
  const nlohmann::json& params() const { return params_; }
  // Runs dense attention at this site instead (radial's dense warm-up steps and layers).
  virtual bool dense_at(const Site&) const { return false; }
  // Softmax scale for head_dim D: params "scale" when given, else the kind's own rule
  // (1/sqrt(D) except FreeSwim's).
  virtual float scale(int64_t head_dim) const;
  // The mask on `layout` with q_tokens queries and k_tokens keys (self-attention: both the
  // layout's tokens; AdditionalKV: keys = grid + text). Throws naming the parameter when the
  // layout does not fit (e.g. a NATTEN kernel larger than an axis).
  virtual KindMask mask(const TokenLayout& layout, int64_t q_tokens, int64_t k_tokens) const = 0;
  // Dense kinds skip the block-sparse engine.
  virtual bool is_dense() const { return false; }

 protected:
  nlohmann::json params_;
};

// Kind by name ("dense", "radial", "neighborhood" or "natten", "grat", "sliding-window" or
// "freeswim") with parameters; unknown names and keys, and bad values, throw naming them.
std::shared_ptr<const Kind> make_kind(const std::string& name, const nlohmann::json& params = nlohmann::json::object());
// "KIND[:key=value,...]" as given on the command line: values are numbers, true/false, words,
// or per-axis lists written with 'x' ("kernel_size=3x5x5").
std::shared_ptr<const Kind> parse_kind(const std::string& spec);
// Names and one-line descriptions with their default parameters, for --help and `attention`.
std::vector<std::pair<std::string, std::string>> kind_help();

// Per-kind constructors (one file each); make_kind() dispatches to these.
std::shared_ptr<const Kind> make_dense_kind(const nlohmann::json& params);
std::shared_ptr<const Kind> make_radial_kind(const nlohmann::json& params);
std::shared_ptr<const Kind> make_neighborhood_kind(const nlohmann::json& params);
std::shared_ptr<const Kind> make_grat_kind(const nlohmann::json& params);
std::shared_ptr<const Kind> make_sliding_window_kind(const nlohmann::json& params);

}  // namespace ditkit::attention
