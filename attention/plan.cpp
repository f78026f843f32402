// Attention plans (which kind at which site), their JSON form, the process-wide schedule cache
// and the goldens' layout schema.
#include "attention/plan.h"

#include <climits>
#include <fstream>
#include <map>
#include <mutex>

#include "core/error.h"

namespace ditkit::attention {
namespace {

using nlohmann::json;

const std::pair<Pass, const char*> kPassNames[] = {
    {Pass::Cond, "cond"}, {Pass::Uncond, "uncond"}, {Pass::Perturbed, "perturbed"}, {Pass::FullBranch, "full_branch"}};
const std::pair<Role, const char*> kRoleNames[] = {
    {Role::SelfAttention, "self"}, {Role::CrossAttention, "cross"}, {Role::JointAttention, "joint"}};

template <typename E, size_t N>
E enum_from(const std::pair<E, const char*> (&names)[N], const json& j, const std::string& where) {
  std::string known;
  for (const auto& [e, name] : names) {
    if (j.is_string() && j.get<std::string>() == name) return e;
    known += known.empty() ? name : cat(", ", name);
  }
  fail(where, ": expected one of ", known, ", got ", j.dump());
}

template <typename E, size_t N>
const char* enum_name(const std::pair<E, const char*> (&names)[N], E e) {
  for (const auto& [value, name] : names)
    if (value == e) return name;
  return "?";
}

int64_t get_int(const json& j, const std::string& where) {
  DK_CHECK(j.is_number_integer(), where, ": expected an integer, got ", j.dump());
  return j.get<int64_t>();
}

// A kind from {"kind": name, "params": {...}} (+ "scale" in the goldens' schema).
std::shared_ptr<const Kind> kind_from_json(const json& j, const std::string& where, bool take_scale) {
  DK_CHECK(j.is_object() && j.contains("kind") && j["kind"].is_string(), where,
           ": expected an object with a string \"kind\"");
  json params = j.value("params", json::object());
  DK_CHECK(params.is_object(), where, ".params: expected an object, got ", params.dump());
  if (take_scale && j.contains("scale") && j["scale"].is_number()) params["scale"] = j["scale"];
  try {
    return make_kind(j["kind"].get<std::string>(), params);
  } catch (const Error& e) {
    fail(where, ": ", e.what());
  }
}

void check_keys(const json& j, std::initializer_list<const char*> allowed, const std::string& where) {
  for (const auto& [key, value] : j.items()) {
    bool known = false;
    for (const char* a : allowed) known = known || key == a;
    DK_CHECK(known, where, ": unknown key \"", key, "\"");
  }
}

Where where_from_json(const json& r, const std::string& where) {
  Where w;
  if (r.contains("layers")) {
    DK_CHECK(r["layers"].is_array(), where, ".layers: expected a list of layer indices");
    for (size_t i = 0; i < r["layers"].size(); ++i)
      w.layers.push_back(int(get_int(r["layers"][i], cat(where, ".layers[", i, "]"))));
  }
  if (r.contains("steps")) {
    const json& s = r["steps"];
    DK_CHECK(s.is_array() && s.size() == 2, where, ".steps: expected [begin, end] (end null = open)");
    w.step_begin = int(get_int(s[0], where + ".steps[0]"));
    w.step_end = s[1].is_null() ? INT_MAX : int(get_int(s[1], where + ".steps[1]"));
    DK_CHECK(w.step_begin >= 0 && w.step_begin < w.step_end, where, ".steps: expected 0 <= begin < end, got ",
             s.dump());
  }
  if (r.contains("passes")) {
    DK_CHECK(r["passes"].is_array(), where, ".passes: expected a list");
    for (size_t i = 0; i < r["passes"].size(); ++i)
      w.passes.push_back(enum_from(kPassNames, r["passes"][i], cat(where, ".passes[", i, "]")));
  }
  if (r.contains("roles")) {
    DK_CHECK(r["roles"].is_array(), where, ".roles: expected a list");
    for (size_t i = 0; i < r["roles"].size(); ++i)
      w.roles.push_back(enum_from(kRoleNames, r["roles"][i], cat(where, ".roles[", i, "]")));
  }
  return w;
}

json kind_to_json(const Kind& kind) { return {{"kind", kind.name()}, {"params", kind.params()}}; }

}  // namespace

Plan::Plan() : default_(make_dense_kind(json::object())), dense_(default_) {}

Plan::Plan(std::shared_ptr<const Kind> kind) : default_(std::move(kind)), dense_(make_dense_kind(json::object())) {
  DK_CHECK(default_ != nullptr, "attention plan: null kind");
}

void Plan::add_rule(Where where, std::shared_ptr<const Kind> kind) {
  DK_CHECK(kind != nullptr, "attention plan: null kind in rule");
  rules_.push_back({std::move(where), std::move(kind)});
}

const Kind& Plan::kind_at(const Site& site) const {
  if (site.role == Role::CrossAttention) return *dense_;
  for (const Rule& r : rules_)
    if (r.where.matches(site)) return *r.kind;
  return *default_;
}

Plan Plan::from_json(const json& j, const std::string& source) {
  DK_CHECK(j.is_object(), source, ": an attention plan must be a JSON object");
  if (j.contains("kind")) return Plan(kind_from_json(j, source, /*take_scale=*/true));
  check_keys(j, {"default", "rules"}, source);
  DK_CHECK(j.contains("default") || j.contains("rules"), source,
           ": expected \"kind\" (one kind) or \"default\"/\"rules\" (a plan)");
  Plan plan = j.contains("default") ? Plan(kind_from_json(j["default"], source + ": default", false)) : Plan();
  if (j.contains("rules")) {
    DK_CHECK(j["rules"].is_array(), source, ": rules: expected a list");
    for (size_t i = 0; i < j["rules"].size(); ++i) {
      const json& r = j["rules"][i];
      const std::string where = cat(source, ": rules[", i, "]");
      DK_CHECK(r.is_object(), where, ": expected an object");
      check_keys(r, {"layers", "steps", "passes", "roles", "kind", "params"}, where);
      plan.add_rule(where_from_json(r, where), kind_from_json(r, where, false));
    }
  }
  return plan;
}

Plan Plan::load(const std::string& path) {
  std::ifstream in(path);
  DK_CHECK(in, path, ": cannot open the attention plan");
  json j = json::parse(in, nullptr, /*allow_exceptions=*/false);
  DK_CHECK(!j.is_discarded(), path, ": not valid JSON");
  return from_json(j, path);
}

json Plan::to_json() const {
  if (rules_.empty()) return kind_to_json(*default_);
  json rules = json::array();
  for (const Rule& r : rules_) {
    json o = kind_to_json(*r.kind);
    if (!r.where.layers.empty()) o["layers"] = r.where.layers;
    if (r.where.step_begin != 0 || r.where.step_end != INT_MAX)
      o["steps"] = {r.where.step_begin, r.where.step_end == INT_MAX ? json(nullptr) : json(r.where.step_end)};
    if (!r.where.passes.empty()) {
      o["passes"] = json::array();
      for (Pass p : r.where.passes) o["passes"].push_back(enum_name(kPassNames, p));
    }
    if (!r.where.roles.empty()) {
      o["roles"] = json::array();
      for (Role role : r.where.roles) o["roles"].push_back(enum_name(kRoleNames, role));
    }
    rules.push_back(std::move(o));
  }
  return {{"default", kind_to_json(*default_)}, {"rules", std::move(rules)}};
}

std::shared_ptr<const BlockSchedule> cached_schedule(const Kind& kind, const TokenLayout& layout, int64_t q_tokens,
                                                     int64_t k_tokens, BlockShape block) {
  static std::mutex mutex;
  static std::map<std::string, std::shared_ptr<const BlockSchedule>> cache;
  const std::string key =
      cat(kind.name(), kind.params().dump(), '|', layout.frames, 'x', layout.height, 'x', layout.width, '|',
          layout.text_tokens, '/', int(layout.text_position), '/', layout.valid_keys, '|', q_tokens, 'x', k_tokens,
          '|', block.q_block, 'x', block.k_block);
  // Built under the lock: concurrent first calls for one layout then build it once.
  std::lock_guard lock(mutex);
  auto& entry = cache[key];
  if (!entry) {
    KindMask m = kind.mask(layout, q_tokens, k_tokens);
    DK_CHECK(m.rule != nullptr, "attention kind '", kind.name(), "': mask() returned no rule");
    entry = std::make_shared<const BlockSchedule>(build_schedule(*m.rule, q_tokens, k_tokens, block.q_block,
                                                                 block.k_block, std::move(m.q_order),
                                                                 std::move(m.k_order)));
  }
  return entry;
}

TokenLayout layout_from_json(const json& j, const std::string& source) {
  DK_CHECK(j.is_object(), source, ": layout: expected an object");
  DK_CHECK(j.contains("video_shape") && j["video_shape"].is_array() && !j["video_shape"].empty() &&
               j["video_shape"].size() <= 3,
           source, ": layout.video_shape: expected [T, H, W], [H, W] or [L]");
  std::vector<int64_t> shape;
  for (size_t i = 0; i < j["video_shape"].size(); ++i) {
    shape.push_back(get_int(j["video_shape"][i], cat(source, ": layout.video_shape[", i, "]")));
    DK_CHECK(shape.back() > 0, source, ": layout.video_shape: sizes must be positive, got ", j["video_shape"].dump());
  }
  shape.insert(shape.begin(), 3 - shape.size(), 1);  // rank 1/2 are the T = 1 (and H = 1) cases
  TokenLayout l;
  l.frames = shape[0], l.height = shape[1], l.width = shape[2];
  l.text_tokens = j.contains("text_tokens") ? get_int(j["text_tokens"], source + ": layout.text_tokens") : 0;
  const int64_t valid =
      j.contains("text_valid") ? get_int(j["text_valid"], source + ": layout.text_valid") : l.text_tokens;
  DK_CHECK(l.text_tokens >= 0 && valid >= 0 && valid <= l.text_tokens, source,
           ": layout: expected 0 <= text_valid <= text_tokens, got ", valid, " and ", l.text_tokens);
  const std::string pos = j.value("text_position", l.text_tokens > 0 ? "" : "none");
  if (pos == "none") {
    DK_CHECK(l.text_tokens == 0, source, ": layout.text_position \"none\" with ", l.text_tokens, " text tokens");
  } else if (pos == "prefix") {
    // The text span comes first, so padding inside it is not a key-count cut-off.
    DK_CHECK(valid == l.text_tokens, source, ": layout: padded prefix text is not supported (text_valid ", valid,
             " < text_tokens ", l.text_tokens, ")");
    l.text_position = TextPosition::Prefix;
  } else if (pos == "suffix" || pos == "additional_kv") {
    l.text_position = pos == "suffix" ? TextPosition::Suffix : TextPosition::AdditionalKV;
    if (valid < l.text_tokens) l.valid_keys = l.grid_tokens() + valid;
  } else if (pos == "cross") {
    // Cross-attention: the text is the keys of a separate call.
    if (valid < l.text_tokens) l.valid_keys = valid;
  } else {
    fail(source, ": layout.text_position: expected none, prefix, suffix, additional_kv or cross, got \"", pos, "\"");
  }
  return l;
}

}  // namespace ditkit::attention
