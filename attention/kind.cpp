// The kind factory: names to kinds, the command-line "KIND[:key=value,...]" syntax, the help
// text, and what every kind shares (its softmax scale rule).
#include <charconv>
#include <cmath>
#include <optional>

#include "attention/kind.h"
#include "core/error.h"

namespace ditkit::attention {
namespace {

struct Entry {
  const char* name;
  const char* alias;  // nullptr: none
  std::shared_ptr<const Kind> (*make)(const nlohmann::json&);
  const char* description;
};

const Entry kKinds[] = {
    {"dense", nullptr, make_dense_kind, "every key (minus padded text keys)"},
    {"radial", nullptr, make_radial_kind,
     "Radial attention: the spatial window shrinks with temporal distance (mit-han-lab/radial-attention)"},
    {"neighborhood", "natten", make_neighborhood_kind,
     "neighborhood attention / GNA: a window of keys around each query, per axis (SHI-Labs/NATTEN)"},
    {"grat", nullptr, make_grat_kind,
     "GRAT: token groups attend to the groups sharing an axis (X) or within a radius (B) (OliverRensu/GRAT); "
     "group_shape auto = 4x8x8 on video, 8x8 on images; groups that do not divide the grid are padded and the "
     "padding masked"},
    {"sliding-window", "freeswim", make_sliding_window_kind,
     "FreeSwim: inward sliding window plus a dense full branch (WillWu111/FreeSwim)"},
};

std::string known_names() {
  std::string names;
  for (const Entry& e : kKinds) {
    names += names.empty() ? "" : ", ";
    names += e.name;
    if (e.alias) names += cat(" (", e.alias, ")");
  }
  return names;
}

// A number (integer when it has no '.' or exponent), true or false; nullopt for anything else.
std::optional<nlohmann::json> parse_scalar(const std::string& text) {
  if (text == "true") return nlohmann::json(true);
  if (text == "false") return nlohmann::json(false);
  const char* begin = text.data();
  const char* end = begin + text.size();
  if (text.find_first_of(".eE") == std::string::npos) {
    int64_t i = 0;
    auto [ptr, ec] = std::from_chars(begin, end, i);
    if (ec == std::errc() && ptr == end) return nlohmann::json(i);
  }
  double d = 0;
  auto [ptr, ec] = std::from_chars(begin, end, d);
  if (ec == std::errc() && ptr == end && std::isfinite(d)) return nlohmann::json(d);
  return std::nullopt;
}

// A value as written after '=': a scalar, a per-axis list "3x5x5" of scalars, else a word.
nlohmann::json parse_value(const std::string& text) {
  if (auto scalar = parse_scalar(text)) return *scalar;
  if (text.find('x') != std::string::npos) {
    nlohmann::json list = nlohmann::json::array();
    for (size_t begin = 0;;) {
      const size_t end = std::min(text.find('x', begin), text.size());
      auto item = parse_scalar(text.substr(begin, end - begin));
      if (!item) return text;  // a word that happens to hold an 'x' ("box")
      list.push_back(*item);
      if (end == text.size()) return list;
      begin = end + 1;
    }
  }
  return text;
}

}  // namespace

float Kind::scale(int64_t head_dim) const {
  const auto it = params_.find("scale");
  if (it != params_.end() && it->is_number() && it->get<double>() > 0) return it->get<float>();
  return 1.0f / std::sqrt(float(head_dim));
}

std::shared_ptr<const Kind> make_kind(const std::string& name, const nlohmann::json& params) {
  for (const Entry& e : kKinds)
    if (name == e.name || (e.alias && name == e.alias)) return e.make(params);
  fail("unknown attention kind '", name, "' (known: ", known_names(), ")");
}

std::shared_ptr<const Kind> parse_kind(const std::string& spec) {
  const size_t colon = spec.find(':');
  const std::string name = spec.substr(0, colon);
  nlohmann::json params = nlohmann::json::object();
  if (colon != std::string::npos) {
    const std::string list = spec.substr(colon + 1);
    for (size_t begin = 0; begin <= list.size();) {
      const size_t end = std::min(list.find(',', begin), list.size());
      const std::string item = list.substr(begin, end - begin);
      const size_t eq = item.find('=');
      DK_CHECK(eq != std::string::npos && eq > 0 && eq + 1 < item.size(), "attention kind '", spec,
               "': expected key=value, got '", item, "'");
      const std::string key = item.substr(0, eq);
      DK_CHECK(!params.contains(key), "attention kind '", spec, "': parameter '", key, "' given twice");
      params[key] = parse_value(item.substr(eq + 1));
      begin = end + 1;
    }
  }
  return make_kind(name, params);
}

std::vector<std::pair<std::string, std::string>> kind_help() {
  std::vector<std::pair<std::string, std::string>> help;
  for (const Entry& e : kKinds) {
    std::string line = e.description;
    if (e.alias) line += cat("; also '", e.alias, "'");
    const nlohmann::json defaults = e.make(nlohmann::json::object())->params();
    if (!defaults.empty()) line += cat("; defaults ", defaults.dump());
    help.emplace_back(e.name, line);
  }
  return help;
}

}  // namespace ditkit::attention
