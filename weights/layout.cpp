#include "weights/layout.h"

#include <algorithm>
#include <cstring>
#include <optional>
#include <set>

#include "weights/layout_detail.h"

namespace ditkit::weights {

namespace {

constexpr const char* kFamilyNames[] = {"unknown",  "wan_dit", "umt5",   "wan_vae",
                                        "flux_dit", "flux_ae", "clip_l", "t5_xxl"};
constexpr const char* kLayoutNames[] = {"official", "comfyui", "diffusers", "hf"};

// Prefixes of single-file (ComfyUI / original SD-style) checkpoints, "" first.
constexpr const char* kPrefixes[] = {"",
                                     "model.diffusion_model.",
                                     "diffusion_model.",
                                     "first_stage_model.",
                                     "vae.",
                                     "text_encoders.clip_l.transformer.",
                                     "text_encoders.t5xxl.transformer.",
                                     "text_encoders.umt5xxl.transformer.",
                                     "cond_stage_model.transformer."};

// ComfyUI's scaled-fp8 files carry this marker tensor.
constexpr const char* kScaledFp8Marker = "scaled_fp8";

std::vector<const detail::LayoutSpec*> all_specs() {
  std::vector<const detail::LayoutSpec*> out;
  for (const auto* list : {&detail::wan_specs(), &detail::flux_specs(), &detail::text_specs()})
    for (const auto& s : *list) out.push_back(&s);
  return out;
}

bool spec_matches(const detail::LayoutSpec& s, const std::set<std::string>& names, const std::string& prefix) {
  for (const char* k : s.signature)
    if (!names.count(prefix + k)) return false;
  for (const char* k : s.absent)
    if (names.count(prefix + k)) return false;
  return true;
}

Detected make_detected(const detail::LayoutSpec& s, const std::string& prefix, const std::set<std::string>& names) {
  Detected d;
  d.family = s.family;
  d.naming = s.naming;
  d.prefix = prefix;
  d.layout = (!prefix.empty() || names.count(kScaledFp8Marker)) ? Layout::comfyui : s.naming;
  return d;
}

// Template matching for Rule (see layout_detail.h): "{}" digits, "{w}" one name segment.
bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_word(char c) { return c != '.'; }

size_t placeholder(std::string_view tpl, size_t i) {
  if (tpl.substr(i, 2) == "{}") return 2;
  if (tpl.substr(i, 3) == "{w}") return 3;
  return 0;
}

// Captures of a template match: the "{}" block indices and the "{w}" / "*" text, each in order.
struct Captures {
  std::vector<int64_t> index;
  std::vector<std::string_view> text;
};

bool match(std::string_view tpl, std::string_view name, Captures& caps) {
  caps.index.clear();
  caps.text.clear();
  size_t i = 0, j = 0;
  while (i < tpl.size()) {
    if (size_t n = placeholder(tpl, i)) {
      auto accept = n == 2 ? is_digit : is_word;
      size_t k = j;
      while (k < name.size() && accept(name[k])) ++k;
      // Block indices have at most 6 digits (also keeps the conversion in range).
      if (k == j || (n == 2 && k - j > 6)) return false;
      if (n == 2)
        caps.index.push_back(std::stoll(std::string(name.substr(j, k - j))));
      else
        caps.text.push_back(name.substr(j, k - j));
      i += n;
      j = k;
    } else if (tpl[i] == '*' && i + 1 == tpl.size()) {
      if (j >= name.size()) return false;
      caps.text.push_back(name.substr(j));
      return true;
    } else {
      if (j >= name.size() || name[j] != tpl[i]) return false;
      ++i;
      ++j;
    }
  }
  return j == name.size();
}

std::string substitute(std::string_view tpl, const std::vector<int64_t>& index,
                       const std::vector<std::string_view>& text) {
  std::string out;
  size_t a = 0, b = 0;
  for (size_t i = 0; i < tpl.size();) {
    size_t n = placeholder(tpl, i);
    if (n == 2) {
      out += std::to_string(index.at(a++));
    } else if (n == 3 || (tpl[i] == '*' && i + 1 == tpl.size())) {
      out += text.at(b++);
      n = n ? n : 1;
    } else {
      out += tpl[i];
      n = 1;
    }
    i += n;
  }
  return out;
}

const detail::LayoutSpec& spec_for(Family f, Layout naming) {
  for (const auto* s : all_specs())
    if (s->family == f && s->naming == naming) return *s;
  fail("no ", layout_name(naming), " key layout is known for family ", family_name(f));
}

}  // namespace

const char* family_name(Family f) { return kFamilyNames[size_t(f)]; }
const char* layout_name(Layout l) { return kLayoutNames[size_t(l)]; }

Family family_from_name(std::string_view name) {
  for (size_t i = 1; i < std::size(kFamilyNames); ++i)
    if (name == kFamilyNames[i]) return Family(i);
  fail("unknown model family \"", name, "\" (expected wan_dit, umt5, wan_vae, flux_dit, flux_ae, clip_l or t5_xxl)");
}

Layout layout_from_name(std::string_view name) {
  for (size_t i = 0; i < std::size(kLayoutNames); ++i)
    if (name == kLayoutNames[i]) return Layout(i);
  fail("unknown key layout \"", name, "\" (expected official, comfyui, diffusers or hf)");
}

namespace {

std::optional<Detected> first_match(const std::set<std::string>& names,
                                    const std::vector<const detail::LayoutSpec*>& specs) {
  for (const char* prefix : kPrefixes)
    for (const auto* s : specs)
      if (spec_matches(*s, names, prefix)) return make_detected(*s, prefix, names);
  return std::nullopt;
}

}  // namespace

Detected try_detect(const std::vector<std::string>& names) {
  return first_match(std::set<std::string>(names.begin(), names.end()), all_specs()).value_or(Detected{});
}

Detected detect(const std::vector<std::string>& names, std::string_view family, std::string_view layout) {
  const std::set<std::string> set(names.begin(), names.end());
  std::optional<Family> f;
  std::optional<Layout> want;
  if (!family.empty()) f = family_from_name(family);
  if (!layout.empty()) want = layout_from_name(layout);
  // Specs allowed by the overrides; comfyui is official or hf names behind a prefix.
  std::vector<const detail::LayoutSpec*> candidates;
  for (const auto* s : all_specs()) {
    if (f && s->family != *f) continue;
    if (want && (*want == Layout::comfyui ? s->naming == Layout::diffusers : s->naming != *want)) continue;
    candidates.push_back(s);
  }
  DK_CHECK(!candidates.empty(), "no ", layout, " key layout is known for family ", family);
  std::optional<Detected> d = first_match(set, candidates);
  if (!d && f) d = make_detected(*candidates[0], "", set);  // names as given; validation says what is missing
  if (d) {
    if (want) d->layout = *want;
    return *d;
  }
  std::string sample;
  for (size_t i = 0; i < names.size() && i < 5; ++i) sample += (i ? ", " : "") + names[i];
  fail("cannot tell the model family", layout.empty() ? "" : cat(" (", layout, " layout)"), " from the ", names.size(),
       " tensor names (first: ", sample, names.size() > 5 ? ", ..." : "", "); pass --family and --layout");
}

KeyMap build_key_map(const Detected& d, const std::map<std::string, Shape>& stored) {
  KeyMap out;
  if (d.family == Family::unknown) {
    for (const auto& [name, shape] : stored)
      out.official[name] = Source{{Piece{name, 0, shape.empty() ? 1 : shape[0]}}, shape, true};
    return out;
  }
  const auto& spec = spec_for(d.family, d.naming);
  struct Part {
    std::string key;
    int part, parts;
    bool swap, conv1x1;
  };
  std::map<std::string, std::vector<Part>> parts;
  std::map<std::string, size_t> rule_of;  // official name -> rule index of its whole source (tied copies)
  Captures caps;
  for (const auto& [key, shape] : stored) {
    if (key.compare(0, d.prefix.size(), d.prefix) != 0) {
      out.unmapped.push_back(key);
      continue;
    }
    std::string_view name = std::string_view(key).substr(d.prefix.size());
    size_t r = 0;
    while (r < spec.rules.size() && !match(spec.rules[r].src, name, caps)) ++r;
    if (r == spec.rules.size()) {
      parts[std::string(name)].push_back({key, 0, 1, false, false});
      rule_of[std::string(name)] = r;
      continue;
    }
    const auto& rule = spec.rules[r];
    if (!rule.dst) {
      out.ignored.push_back(key);
      continue;
    }
    std::vector<int64_t> index = caps.index;
    if (rule.index) {
      auto count = [&](const char* blocks) { return detail::count_blocks(stored, d.prefix + blocks); };
      index = rule.index(caps.index, count);
    }
    std::string official = substitute(rule.dst, index, caps.text);
    if (rule.parts == 1) {
      // Two stored copies of one tensor (tied embeddings): keep the earlier rule's.
      auto it = rule_of.find(official);
      if (it != rule_of.end()) {
        if (it->second <= r) {
          out.ignored.push_back(key);
          continue;
        }
        out.ignored.push_back(parts[official][0].key);
        parts[official].clear();
      }
      rule_of[official] = r;
    }
    parts[official].push_back({key, rule.part, rule.parts, rule.swap, rule.conv1x1});
  }
  for (auto& [official, list] : parts) {
    std::sort(list.begin(), list.end(), [](const Part& a, const Part& b) { return a.part < b.part; });
    const int n = list[0].parts;
    DK_CHECK(int(list.size()) == n, "tensor ", official, " is stored split in ", n, " parts but ", list.size(),
             " were found (first: ", list[0].key, ")");
    Source src;
    src.shape = stored.at(list[0].key);
    DK_CHECK(!list[0].swap || (!src.shape.empty() && src.shape[0] % 2 == 0), "tensor ", list[0].key,
             ": expected an even first dimension to swap halves, got ", shape_str(src.shape));
    int64_t rows = 0;
    for (size_t i = 0; i < list.size(); ++i) {
      const Shape& s = stored.at(list[i].key);
      DK_CHECK(list[i].part == int(i), "tensor ", official, ": part ", i, " of ", n, " is missing");
      DK_CHECK(n == 1 || (!s.empty() && std::equal(s.begin() + 1, s.end(), src.shape.begin() + 1, src.shape.end())),
               "tensor ",
               official, ": part ", list[i].key, " has shape ", shape_str(s), ", which does not match ", list[0].key,
               " ", shape_str(src.shape), " beyond dim 0");
      if (list[i].swap) {
        int64_t half = s[0] / 2;
        src.pieces.push_back({list[i].key, half, half});
        src.pieces.push_back({list[i].key, 0, half});
      } else {
        src.pieces.push_back({list[i].key, 0, s.empty() ? 1 : s[0]});
      }
      rows += s.empty() ? 1 : s[0];
    }
    if (!src.shape.empty()) src.shape[0] = rows;
    src.whole = src.pieces.size() == 1;
    if (list[0].conv1x1 && src.whole && src.shape.size() == 2) src.shape.insert(src.shape.end(), {1, 1});
    out.official.emplace(official, std::move(src));
  }
  return out;
}

// ---- configs ----

namespace {

const std::vector<double> kWanLatentMean{-0.7571, -0.7089, -0.9113, 0.1075,  -0.1745, 0.9653,  -0.1517, 1.5508,
                                         0.4134,  -0.0715, 0.5517,  -0.3632, -0.1922, -0.9497, 0.2503,  -0.2921};
const std::vector<double> kWanLatentStd{2.8184, 1.4541, 2.3275, 2.6558, 1.2196, 1.7708, 2.6052, 2.0743,
                                        3.2687, 2.1526, 2.8652, 1.5579, 1.6382, 1.1253, 2.8251, 1.9160};

std::vector<std::pair<std::string, ModelConfig>> known_list() {
  WanDitConfig wan13;
  wan13.dim = 1536, wan13.ffn_dim = 8960, wan13.num_heads = 12, wan13.num_layers = 30;
  WanDitConfig wan14;
  wan14.dim = 5120, wan14.ffn_dim = 13824, wan14.num_heads = 40, wan14.num_layers = 40;
  T5Config umt5;  // defaults are umT5-XXL
  WanVaeConfig vae;
  vae.latent_mean = kWanLatentMean, vae.latent_std = kWanLatentStd;
  FluxDitConfig dev;
  FluxDitConfig schnell;
  schnell.guidance_embed = false;
  T5Config t5;
  t5.vocab = 32128, t5.shared_pos = true;
  return {{"wan2.1-t2v-1.3b", {Family::wan_dit, wan13}},
          {"wan2.1-t2v-14b", {Family::wan_dit, wan14}},
          {"umt5-xxl", {Family::umt5, umt5}},
          {"wan2.1-vae", {Family::wan_vae, vae}},
          {"flux.1-dev", {Family::flux_dit, dev}},
          {"flux.1-schnell", {Family::flux_dit, schnell}},
          {"flux.1-ae", {Family::flux_ae, FluxAeConfig{}}},
          {"clip-l", {Family::clip_l, ClipTextConfig{}}},
          {"t5-v1_1-xxl", {Family::t5_xxl, t5}}};
}

}  // namespace

ModelConfig known_config(std::string_view name) {
  std::string names;
  for (auto& [n, c] : known_list()) {
    if (n == name) return c;
    names += (names.empty() ? "" : ", ") + n;
  }
  fail("unknown model config \"", name, "\" (known: ", names, ")");
}

std::vector<std::string> known_config_names() {
  std::vector<std::string> out;
  for (auto& [n, c] : known_list()) out.push_back(n);
  return out;
}

std::vector<ModelConfig> detail::known_configs(Family f) {
  std::vector<ModelConfig> out;
  for (auto& [n, c] : known_list())
    if (c.family == f) out.push_back(c);
  return out;
}

bool config_json_fits(Family f, const nlohmann::json& j) {
  if (!j.is_object()) return false;
  auto any = [&](std::initializer_list<const char*> keys) {
    return std::any_of(keys.begin(), keys.end(), [&](const char* k) { return j.contains(k); });
  };
  const nlohmann::json& t = j.contains("text_config") ? j["text_config"] : j;
  switch (f) {
    case Family::wan_dit:
      return any({"ffn_dim"}) && any({"freq_dim"});
    case Family::umt5:
    case Family::t5_xxl:
      return any({"d_model", "dim_attn"});
    case Family::wan_vae:
      return any({"z_dim"}) && any({"dim_mult"}) && !any({"ffn_dim"});
    case Family::flux_dit:
      return any({"depth_single_blocks", "num_single_layers"});
    case Family::flux_ae:
      return any({"ch_mult", "block_out_channels"}) && !any({"z_dim"});
    case Family::clip_l:
      return t.is_object() && t.contains("intermediate_size") && t.contains("num_hidden_layers") &&
             !t.contains("d_model");
    case Family::unknown:
      return false;
  }
  return false;
}

ModelConfig config_from_json(Family f, const nlohmann::json& j, const std::string& what) {
  DK_CHECK(j.is_object(), what, ": expected a JSON object");
  switch (f) {
    case Family::wan_dit:
      return {f, detail::wan_dit_from_json(j, what)};
    case Family::umt5:
    case Family::t5_xxl:
      return {f, detail::t5_from_json(f, j, what)};
    case Family::wan_vae:
      return {f, detail::wan_vae_from_json(j, what)};
    case Family::flux_dit:
      return {f, detail::flux_dit_from_json(j, what)};
    case Family::flux_ae:
      return {f, detail::flux_ae_from_json(j, what)};
    case Family::clip_l:
      return {f, detail::clip_from_json(j.contains("text_config") ? j["text_config"] : j, what)};
    case Family::unknown:
      break;
  }
  fail(what, ": no config for an unknown model family");
}

ModelConfig config_from_shapes(Family f, const std::map<std::string, Shape>& s) {
  switch (f) {
    case Family::wan_dit:
      return {f, detail::wan_dit_from_shapes(s)};
    case Family::umt5:
    case Family::t5_xxl:
      return {f, detail::t5_from_shapes(f, s)};
    case Family::wan_vae:
      return {f, detail::wan_vae_from_shapes(s)};
    case Family::flux_dit:
      return {f, detail::flux_dit_from_shapes(s)};
    case Family::flux_ae:
      return {f, detail::flux_ae_from_shapes(s)};
    case Family::clip_l:
      return {f, detail::clip_from_shapes(s)};
    case Family::unknown:
      break;
  }
  fail("no config for an unknown model family");
}

NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(WanDitConfig, model_type, patch_size, text_len, in_dim, dim, ffn_dim, freq_dim,
                                   text_dim, out_dim, num_heads, num_layers, window_size, qk_norm, cross_attn_norm, eps)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(T5Config, vocab, dim, dim_attn, dim_ffn, num_heads, num_layers, num_buckets,
                                   max_distance, shared_pos, eps)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(WanVaeConfig, dim, z_dim, dim_mult, num_res_blocks, attn_scales, temperal_downsample,
                                   latent_mean, latent_std)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(FluxDitConfig, in_channels, out_channels, vec_in_dim, context_in_dim, hidden_size,
                                   mlp_ratio, num_heads, depth, depth_single_blocks, axes_dim, theta, qkv_bias,
                                   guidance_embed)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(FluxAeConfig, resolution, in_channels, ch, out_ch, ch_mult, num_res_blocks,
                                   z_channels, scale_factor, shift_factor)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(ClipTextConfig, vocab_size, hidden_size, intermediate_size, num_hidden_layers,
                                   num_attention_heads, max_position_embeddings, hidden_act, layer_norm_eps)

nlohmann::json config_to_json(const ModelConfig& c) {
  return std::visit(
      [](const auto& p) -> nlohmann::json {
        if constexpr (std::is_same_v<std::decay_t<decltype(p)>, std::monostate>)
          return nullptr;
        else
          return p;
      },
      c.params);
}

std::vector<ExpectedTensor> expected_tensors(const ModelConfig& c) {
  switch (c.family) {
    case Family::wan_dit:
      return detail::expected_wan_dit(c.as<WanDitConfig>());
    case Family::umt5:
    case Family::t5_xxl:
      return detail::expected_t5(c.family, c.as<T5Config>());
    case Family::wan_vae:
      return detail::expected_wan_vae(c.as<WanVaeConfig>());
    case Family::flux_dit:
      return detail::expected_flux_dit(c.as<FluxDitConfig>());
    case Family::flux_ae:
      return detail::expected_flux_ae(c.as<FluxAeConfig>());
    case Family::clip_l:
      return detail::expected_clip(c.as<ClipTextConfig>());
    case Family::unknown:
      break;
  }
  fail("no parameter list for an unknown model family");
}

Validation check_tensors(const ModelConfig& c, const std::map<std::string, Shape>& official) {
  Validation v;
  std::set<std::string> expected;
  for (const auto& e : expected_tensors(c)) {
    expected.insert(e.name);
    auto it = official.find(e.name);
    if (it == official.end())
      v.missing.push_back(e.name);
    else if (it->second != e.shape)
      v.mismatched.push_back(cat(e.name, ": expected ", shape_str(e.shape), ", got ", shape_str(it->second)));
  }
  for (const auto& [name, shape] : official)
    if (!expected.count(name)) v.unexpected.push_back(name);
  return v;
}

void validate(const ModelConfig& c, const std::map<std::string, Shape>& official, const std::string& what) {
  Validation v = check_tensors(c, official);
  if (v.ok()) return;
  auto list = [](const std::vector<std::string>& items) {
    std::string s;
    for (size_t i = 0; i < items.size() && i < 8; ++i) s += (i ? "; " : "") + items[i];
    if (items.size() > 8) s += cat("; ... (", items.size(), " in all)");
    return s;
  };
  std::string msg = cat(what, ": not a valid ", family_name(c.family), " checkpoint for its config:");
  if (!v.mismatched.empty()) msg += cat(" wrong shape: ", list(v.mismatched), ".");
  if (!v.missing.empty()) msg += cat(" missing ", v.missing.size(), " tensor(s): ", list(v.missing), ".");
  throw Error(msg);
}

// ---- ModelWeights ----

ModelWeights::ModelWeights(std::shared_ptr<const Checkpoint> ckpt, const Detected& d)
    : ckpt_(std::move(ckpt)), detected_(d) {
  std::map<std::string, Shape> stored;
  for (const auto& name : ckpt_->names()) stored[name] = ckpt_->info(name).shape;
  map_ = build_key_map(detected_, stored);
}

ModelWeights ModelWeights::open(const std::string& path, std::string_view family, std::string_view layout) {
  auto ckpt = std::make_shared<const Checkpoint>(Checkpoint::open(path));
  Detected d;
  try {
    d = detect(ckpt->names(), family, layout);
  } catch (const Error& e) {
    fail(path, ": ", e.what());
  }
  return ModelWeights(std::move(ckpt), d);
}

std::vector<std::string> ModelWeights::names() const {
  std::vector<std::string> out;
  for (const auto& [name, src] : map_.official) out.push_back(name);
  return out;
}

const Source& ModelWeights::source(const std::string& name) const {
  auto it = map_.official.find(name);
  DK_CHECK(it != map_.official.end(), "tensor ", name, " is not in ", ckpt_->files().empty() ? "" : ckpt_->files()[0],
           " (", family_name(detected_.family), ", ", layout_name(detected_.layout), " layout)");
  return it->second;
}

const Shape& ModelWeights::shape(const std::string& name) const { return source(name).shape; }

DType ModelWeights::dtype(const std::string& name) const { return ckpt_->info(source(name).pieces[0].key).dtype; }

std::map<std::string, Shape> ModelWeights::shapes() const {
  std::map<std::string, Shape> out;
  for (const auto& [name, src] : map_.official) out[name] = src.shape;
  return out;
}

Tensor ModelWeights::get(const std::string& name) const {
  // ComfyUI's scaled-fp8 files store W / s in fp8 with the scalar s beside it as
  // "<module>.scale_weight": hand out W itself, in bf16 (fp8's 3 mantissa bits times s fit).
  const std::string scale_name =
      name.ends_with(".weight") ? name.substr(0, name.size() - 6) + "scale_weight" : std::string();
  if (!scale_name.empty() && contains(scale_name)) {
    const Tensor scale = stored(scale_name);
    DK_CHECK(scale.numel() == 1, "tensor ", scale_name, ": expected one scale for ", name, ", got shape ",
             shape_str(scale.shape()));
    const float s = scale.to_vector()[0];
    Tensor w = stored(name).contiguous();
    std::vector<float> row(size_t(w.numel()));
    to_f32(w.dtype(), w.raw(), row.data(), w.numel());
    for (float& x : row) x *= s;
    Tensor out = Tensor::empty(w.shape(), DType::BF16);
    from_f32(row.data(), DType::BF16, out.raw(), w.numel());
    return out;
  }
  return stored(name);
}

Tensor ModelWeights::stored(const std::string& name) const {
  const Source& src = source(name);
  if (src.whole) {
    Tensor t = ckpt_->get(src.pieces[0].key);
    return t.shape() == src.shape ? t : t.reshape(src.shape);
  }
  const DType dt = dtype(name);
  Tensor out = Tensor::empty(src.shape, dt);
  if (src.shape[0] == 0) return out;
  int64_t row_numel = shape_numel(src.shape) / src.shape[0];
  const size_t row_bytes = dtype_bytes(dt, row_numel);
  char* dst = static_cast<char*>(out.raw());
  for (const Piece& p : src.pieces) {
    Tensor t = ckpt_->get(p.key);
    DK_CHECK(t.dtype() == dt, "tensor ", name, ": part ", p.key, " is ", dtype_name(t.dtype()), ", others are ",
             dtype_name(dt));
    if (!t.is_contiguous()) t = t.contiguous();
    std::memcpy(dst, static_cast<const char*>(t.raw()) + size_t(p.row_begin) * row_bytes, size_t(p.rows) * row_bytes);
    dst += size_t(p.rows) * row_bytes;
  }
  return out;
}

// ---- shape helpers ----

void detail::check_count(const std::string& what, const char* key, int64_t value) {
  DK_CHECK(value >= 0 && value <= kMaxBlocks, what, ": ", key, " = ", value, " is out of range (0..", kMaxBlocks, ")");
}

bool detail::has(const Shapes& s, const std::string& name) { return s.count(name) != 0; }

int64_t detail::shape_dim(const Shapes& s, const std::string& name, size_t i) {
  auto it = s.find(name);
  DK_CHECK(it != s.end(), "cannot infer the config: tensor ", name, " is missing");
  DK_CHECK(i < it->second.size(), "cannot infer the config: tensor ", name, " has shape ", shape_str(it->second),
           ", expected at least ", i + 1, " dimensions");
  return it->second[i];
}

int64_t detail::count_blocks(const Shapes& s, const std::string& prefix) {
  int64_t n = 0;
  for (auto it = s.lower_bound(prefix); it != s.end() && it->first.compare(0, prefix.size(), prefix) == 0; ++it) {
    const char* p = it->first.c_str() + prefix.size();
    char* end = nullptr;
    long long idx = std::strtoll(p, &end, 10);
    if (end != p && *end == '.' && idx >= 0 && idx < kMaxBlocks) n = std::max<int64_t>(n, idx + 1);
  }
  return n;
}

void detail::add_linear(std::vector<ExpectedTensor>& out, const std::string& name, Shape weight, bool bias) {
  int64_t rows = weight[0];
  out.push_back({name + ".weight", std::move(weight)});
  if (bias) out.push_back({name + ".bias", {rows}});
}

}  // namespace ditkit::weights
