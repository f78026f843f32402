// Parameter reading and the joint-attention text rule shared by the sparse kinds.
#include "attention/kind_util.h"

#include <algorithm>

#include "core/error.h"

namespace ditkit::attention {

KindParams::KindParams(std::string kind, const nlohmann::json& given)
    : kind_(std::move(kind)), given_(given), out_(nlohmann::json::object()) {
  DK_CHECK(given_.is_object(), where(), "parameters must be a JSON object, got ", given_.dump());
}

std::string KindParams::where() const { return cat("attention kind '", kind_, "': "); }

nlohmann::json KindParams::optional(const std::string& key) {
  known_.push_back(key);
  const auto it = given_.find(key);
  if (it == given_.end()) return nullptr;
  out_[key] = *it;
  return *it;
}

int64_t KindParams::integer(const std::string& key, int64_t fallback, int64_t min) {
  const nlohmann::json v = optional(key);
  if (v.is_null()) {
    out_[key] = fallback;
    return fallback;
  }
  DK_CHECK(v.is_number_integer() && v.get<int64_t>() >= min, where(), key, " must be an integer >= ", min, ", got ",
           v.dump());
  return v.get<int64_t>();
}

double KindParams::number(const std::string& key, double fallback, bool allow_zero) {
  const nlohmann::json v = optional(key);
  if (v.is_null()) {
    out_[key] = fallback;
    return fallback;
  }
  DK_CHECK(v.is_number() && (v.get<double>() > 0 || (allow_zero && v.get<double>() == 0)), where(), key,
           " must be a number ", allow_zero ? ">= 0" : "> 0", ", got ", v.dump());
  return v.get<double>();
}

std::string KindParams::word(const std::string& key, const std::string& fallback,
                             const std::vector<std::string>& choices) {
  const nlohmann::json v = optional(key);
  if (v.is_null()) {
    out_[key] = fallback;
    return fallback;
  }
  std::string list;
  for (const std::string& c : choices) list += (list.empty() ? "" : ", ") + c;
  DK_CHECK(v.is_string() && std::find(choices.begin(), choices.end(), v.get<std::string>()) != choices.end(),
           where(), key, " must be one of ", list, ", got ", v.dump());
  return v.get<std::string>();
}

void KindParams::scale() {
  const nlohmann::json v = optional("scale");
  DK_CHECK(v.is_null() || (v.is_number() && v.get<double>() >= 0), where(),
           "scale must be a number >= 0 (0 = 1/sqrt(head_dim)), got ", v.dump());
}

void KindParams::informative(std::initializer_list<const char*> keys) {
  for (const char* key : keys) optional(key);
}

nlohmann::json KindParams::finish() const {
  for (const auto& [key, value] : given_.items())
    if (std::find(known_.begin(), known_.end(), key) == known_.end()) {
      std::string list;
      for (const std::string& k : known_) list += (list.empty() ? "" : ", ") + k;
      fail(where(), "unknown parameter '", key, "' (known: ", list, ")");
    }
  return out_;
}

namespace {

// Grid queries [qg0, qg1) and grid keys [kg0, kg1) (kernel positions) follow `grid`; the rest
// is text. masked_before[p] = keys at or past valid_keys before position p (empty: none).
class JointRule final : public MaskRule {
 public:
  JointRule(std::unique_ptr<MaskRule> grid, int64_t qg0, int64_t qg1, int64_t kg0, int64_t kg1,
            std::vector<int64_t> masked_before)
      : grid_(std::move(grid)), qg0_(qg0), qg1_(qg1), kg0_(kg0), kg1_(kg1), masked_before_(std::move(masked_before)) {}

  bool visible(int64_t qp, int64_t kp) const override {
    if (masked(kp, kp + 1)) return false;
    if (qp < qg0_ || qp >= qg1_ || kp < kg0_ || kp >= kg1_) return true;
    return grid_->visible(qp - qg0_, kp - kg0_);
  }

  BlockClass classify(int64_t q0, int64_t q1, int64_t k0, int64_t k1) const override {
    const int64_t keys = k1 - k0, valid = keys - masked(k0, k1);
    if (valid == 0) return BlockClass::Empty;
    const int64_t gq0 = std::max(q0, qg0_), gq1 = std::min(q1, qg1_);
    const int64_t gk0 = std::max(k0, kg0_), gk1 = std::min(k1, kg1_);
    const bool grid_queries = gq0 < gq1, grid_keys = gk0 < gk1;
    const int64_t grid_valid = grid_keys ? (gk1 - gk0) - masked(gk0, gk1) : 0;
    bool all = valid == keys;
    // Text queries see every valid key; grid queries see every valid text key.
    bool any = (q1 - q0 > (grid_queries ? gq1 - gq0 : 0)) || (grid_queries && valid > grid_valid);
    if (grid_queries && grid_keys) {
      switch (grid_->classify(gq0 - qg0_, gq1 - qg0_, gk0 - kg0_, gk1 - kg0_)) {
        case BlockClass::Partial: return BlockClass::Partial;
        case BlockClass::Full: any = any || grid_valid > 0; break;
        case BlockClass::Empty: all = false; break;
      }
    }
    return all ? BlockClass::Full : any ? BlockClass::Partial : BlockClass::Empty;
  }

 private:
  int64_t masked(int64_t begin, int64_t end) const {
    return masked_before_.empty() ? 0 : masked_before_[size_t(end)] - masked_before_[size_t(begin)];
  }

  std::unique_ptr<MaskRule> grid_;
  int64_t qg0_, qg1_, kg0_, kg1_;
  std::vector<int64_t> masked_before_;
};

const char* position_name(TextPosition p) {
  switch (p) {
    case TextPosition::None: return "no text";
    case TextPosition::Prefix: return "prefix text";
    case TextPosition::Suffix: return "suffix text";
    case TextPosition::AdditionalKV: return "additional keys";
  }
  return "text";
}

// `before` text tokens (canonical 0..before-1), the grid slots (canonical + before, -1 kept),
// then `after` text tokens following the grid's `grid_tokens`.
std::vector<int64_t> place(const std::vector<int64_t>& grid_order, int64_t grid_tokens, int64_t before, int64_t after) {
  std::vector<int64_t> order;
  order.reserve(size_t(before) + grid_order.size() + size_t(after));
  for (int64_t t = 0; t < before; ++t) order.push_back(t);
  for (int64_t t : grid_order) order.push_back(t < 0 ? -1 : t + before);
  for (int64_t t = 0; t < after; ++t) order.push_back(before + grid_tokens + t);
  return order;
}

}  // namespace

KindMask joint_mask(const std::string& kind, const TokenLayout& layout, int64_t q_tokens, int64_t k_tokens,
                    std::unique_ptr<MaskRule> grid, const std::vector<int64_t>& grid_order) {
  const int64_t g = layout.grid_tokens(), text = layout.text_tokens;
  const TextPosition pos = layout.text_position;
  const int64_t want_q = pos == TextPosition::None || pos == TextPosition::AdditionalKV ? g : g + text;
  const int64_t want_k = pos == TextPosition::None ? g : g + text;
  DK_CHECK(q_tokens == want_q && k_tokens == want_k, "attention kind '", kind, "': the layout (grid ", layout.frames,
           "x", layout.height, "x", layout.width, ", ", text, " tokens of ", position_name(pos), ") has ", want_q,
           " queries and ", want_k, " keys, got ", q_tokens, " and ", k_tokens);
  DK_CHECK(layout.valid_keys == -1 || (layout.valid_keys >= 1 && layout.valid_keys <= k_tokens), "attention kind '",
           kind, "': valid_keys must be -1 or in [1, ", k_tokens, "], got ", layout.valid_keys);

  const int64_t before = pos == TextPosition::Prefix ? text : 0;
  const int64_t grid_len = grid_order.empty() ? g : int64_t(grid_order.size());
  KindMask m;
  if (!grid_order.empty()) {
    m.q_order = place(grid_order, g, before, pos == TextPosition::Suffix ? text : 0);
    const bool keys_after = pos == TextPosition::Suffix || pos == TextPosition::AdditionalKV;
    m.k_order = place(grid_order, g, before, keys_after ? text : 0);
  }
  std::vector<int64_t> masked_before;
  if (layout.valid_keys >= 0 && layout.valid_keys < k_tokens) {
    const int64_t k_len = m.k_order.empty() ? k_tokens : int64_t(m.k_order.size());
    masked_before.assign(size_t(k_len) + 1, 0);
    for (int64_t p = 0; p < k_len; ++p) {
      const int64_t t = m.k_order.empty() ? p : m.k_order[size_t(p)];
      masked_before[size_t(p) + 1] = masked_before[size_t(p)] + (t >= layout.valid_keys);
    }
  }
  m.rule = std::make_unique<JointRule>(std::move(grid), before, before + grid_len, before, before + grid_len,
                                       std::move(masked_before));
  return m;
}

}  // namespace ditkit::attention
