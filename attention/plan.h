// Which attention kind runs at which call site: a default kind plus rules addressed by layer,
// step, pass and role (first matching rule wins), e.g. radial with its dense warm-up, or
// sliding-window on some layers only. Cross-attention always runs dense (every kind leaves it
// dense, ../shared/spec/attention.md §0.1). Schedules are built on first use per (kind
// parameters, layout, block shape) and cached for the whole process.
#pragma once
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "attention/block_sparse.h"
#include "attention/hooks.h"
#include "attention/kind.h"

namespace ditkit::attention {

class Plan {
 public:
  Plan();  // dense everywhere
  explicit Plan(std::shared_ptr<const Kind> kind);

  void add_rule(Where where, std::shared_ptr<const Kind> kind);
  // The kind at `site`: the first matching rule's, else the default; cross-attention: dense.
  // (attend() then runs it dense when kind.dense_at(site), with the kind's scale.)
  const Kind& kind_at(const Site& site) const;
  const Kind& default_kind() const { return *default_; }

  // Plan JSON: either one kind in the goldens' config.json schema ({"kind", "params",
  // "scale"}; other keys ignored) or {"default": {"kind", "params"}, "rules": [{"layers": [..],
  // "steps": [begin, end], "passes": [..], "kind", "params"}, ...]}. `source` names the file in errors.
  static Plan from_json(const nlohmann::json& j, const std::string& source);
  static Plan load(const std::string& path);
  nlohmann::json to_json() const;

 private:
  struct Rule {
    Where where;
    std::shared_ptr<const Kind> kind;
  };
  std::shared_ptr<const Kind> default_, dense_;
  std::vector<Rule> rules_;
};

// The cached schedule of `kind` on a layout for a block shape.
std::shared_ptr<const BlockSchedule> cached_schedule(const Kind& kind, const TokenLayout& layout, int64_t q_tokens,
                                                     int64_t k_tokens, BlockShape block);

// Token layout in the goldens' config.json schema: {"video_shape": [T, H, W] | [H, W] | [L],
// "text_tokens", "text_valid", "text_position": "none"|"prefix"|"suffix"|"additional_kv"|"cross"}.
TokenLayout layout_from_json(const nlohmann::json& j, const std::string& source);

}  // namespace ditkit::attention
