#include "apps/components.h"

#include <filesystem>
#include <sstream>

#include "attention/pag.h"
#include "core/error.h"

namespace ditkit::apps {

weights::LoadedComponent load_family(const std::string& path, weights::Family family, const std::string& flag) {
  weights::ModelFolder folder = weights::find_components(path);
  std::string seen;
  for (const weights::Component& c : folder.components) {
    weights::LoadedComponent lc = weights::load_component(c);
    if (lc.detected.family == family) {
      DK_CHECK(lc.weights && lc.config.family == family, flag, " ", path, ": cannot determine the ",
               weights::family_name(family), " config (", lc.config_error, ")");
      return lc;
    }
    seen += (seen.empty() ? "" : ", ") + c.name + " (" + weights::family_name(lc.detected.family) + ")";
  }
  fail(flag, " ", path, ": no ", weights::family_name(family), " weights found",
       seen.empty() ? std::string() : " (found " + seen + ")");
}

std::string find_tokenizer(const std::string& path, const std::string& flag) {
  namespace fs = std::filesystem;
  DK_CHECK(fs::exists(path), flag, " ", path, ": no such file or folder");
  if (fs::is_regular_file(path)) return path;
  for (const char* name : {"spiece.model", "tokenizer.json"})
    if (fs::exists(fs::path(path) / name)) return path;
  weights::ModelFolder folder = weights::find_components(path);
  DK_CHECK(!folder.tokenizers.empty(), flag, " ", path, ": no tokenizer (spiece.model or tokenizer.json) found");
  fs::path found = fs::path(path) / folder.tokenizers.front();  // names are relative to the folder searched
  return fs::exists(found) ? found.string() : path;
}

void check_wan_video_size(int64_t frames, int64_t width, int64_t height) {
  DK_CHECK(frames >= 1 && (frames - 1) % 4 == 0, "--frames ", frames, ": must be 4k+1 (1, 5, ..., 81)");
  DK_CHECK(width > 0 && width % 16 == 0, "-W/--width ", width, ": must be a positive multiple of 16");
  DK_CHECK(height > 0 && height % 16 == 0, "-H/--height ", height, ": must be a positive multiple of 16");
}

std::vector<int> parse_indices(const std::string& text, const std::string& flag, int64_t count, const char* what) {
  std::vector<int> out;
  std::stringstream items(text);
  std::string item;
  while (std::getline(items, item, ',')) {
    int first = 0, last = 0;
    char dash = 0;
    std::istringstream in(item);
    const bool range = item.find('-', 1) != std::string::npos;
    const bool ok = range ? bool(in >> first >> dash >> last) && dash == '-' : bool(in >> first);
    if (!range) last = first;
    DK_CHECK(ok && in.peek() == EOF && first >= 0 && first <= last, flag, " ", text, ": expected ", what,
             " indices or ranges like 0-3, separated by commas; bad item '", item, "'");
    DK_CHECK(last < count, flag, " ", text, ": ", what, " ", last, " does not exist (the model has ", count, ")");
    for (int i = first; i <= last; ++i) out.push_back(i);
  }
  return out;
}

namespace {

std::string join(const std::vector<int>& v) {
  std::string s;
  for (int x : v) s += (s.empty() ? "" : ",") + std::to_string(x);
  return s;
}

}  // namespace

void AttentionOptions::add_to(CLI::App& cmd) {
  cmd.add_option("--attention", kind,
                 "attention kind KIND[:key=value,...]: dense, radial, neighborhood, grat or sliding-window "
                 "(FreeSwim; its dual path runs when dual_path=true, the default)")
      ->capture_default_str();
  cmd.add_option("--attention-plan", plan_file, "attention plan JSON (kinds per layer/step; replaces --attention)");
  cmd.add_option("--pag-scale", pag_scale, "perturbed-attention guidance scale w (0 = off; adds a perturbed pass)")
      ->capture_default_str();
  cmd.add_option("--pag-layers", pag_layers, "PAG layers, e.g. 10,12-14 (default: the middle block)");
  cmd.add_option("--pag-heads", pag_heads, "PAG heads, e.g. 0-3 (default: all)");
  cmd.add_option("--softpag", softpag, "SoftPAG identity weight u in [0, 1] (1 = PAG)")->capture_default_str();
}

AttentionSetup make_attention_setup(const AttentionOptions& o, int64_t num_layers, int64_t num_heads,
                                    bool cross_attention) {
  AttentionSetup s;
  if (!o.plan_file.empty()) {
    DK_CHECK(o.kind == "dense", "give either --attention or --attention-plan, not both");
    s.plan = attention::Plan::load(o.plan_file);
    s.metadata.push_back({"attention-plan", o.plan_file});
  } else {
    try {
      s.plan = attention::Plan(attention::parse_kind(o.kind));
    } catch (const Error& e) {
      fail("--attention ", o.kind, ": ", e.what());
    }
  }
  s.metadata.push_back({"attention", s.plan.to_json().dump()});

  s.dual_path = attention::DualPath::for_kind(s.plan.default_kind());
  if (s.dual_path && !cross_attention) {
    s.dual_path.reset();
    s.metadata.push_back({"freeswim-dual-path", "off (no cross-attention in this model)"});
  }
  if (s.dual_path) {
    s.hooks.insert(s.hooks.end(), s.dual_path->hooks().begin(), s.dual_path->hooks().end());
    s.metadata.push_back({"freeswim-dual-path", "cache_steps " + std::to_string(s.dual_path->cache_steps())});
  }

  DK_CHECK(o.softpag >= 0.0 && o.softpag <= 1.0, "--softpag ", o.softpag, ": expected a value in [0, 1]");
  s.pag_scale = o.pag_scale;
  if (o.pag_scale != 0.0) {
    const std::vector<int> layers = o.pag_layers.empty() ? std::vector<int>{int(num_layers / 2)}
                                                         : parse_indices(o.pag_layers, "--pag-layers", num_layers, "layer");
    const std::vector<int> heads = parse_indices(o.pag_heads, "--pag-heads", num_heads, "head");
    s.hooks.push_back(std::make_shared<attention::PerturbedAttentionHook>(layers, heads, float(o.softpag)));
    s.metadata.push_back({"pag-scale", std::to_string(o.pag_scale)});
    s.metadata.push_back({"pag-layers", join(layers)});
    s.metadata.push_back({"pag-heads", heads.empty() ? "all" : join(heads)});
    s.metadata.push_back({"softpag", std::to_string(o.softpag)});
  }
  return s;
}

samplers::VelocityFn wan_velocity(const dit::WanModel& model, const std::vector<double>& timesteps,
                                  const std::vector<Tensor>& contexts, const AttentionSetup& setup) {
  return [&model, &timesteps, &contexts, &setup](const Tensor& x, int step, attention::Pass pass) {
    const Tensor& context = contexts[pass == attention::Pass::Uncond ? 1 : 0];
    const attention::Control control = setup.control();
    // The full branch only fills the cross-attention store; its velocity is not used.
    if (setup.dual_path && setup.dual_path->full_branch_before(step, pass))
      model.forward(x, timesteps[size_t(step)], context, step, control, attention::Pass::FullBranch);
    return model.forward(x, timesteps[size_t(step)], context, step, control, pass);
  };
}

void FluxPaths::add_to(CLI::App& cmd, bool with_vae) {
  cmd.add_option("--model", model, "FLUX.1 folder (BFL flux1-*.safetensors + ae.safetensors, or diffusers)");
  cmd.add_option("--dit", dit, "FLUX DiT weights (BFL, ComfyUI, diffusers or GGUF; file or folder); overrides --model");
  if (with_vae)
    cmd.add_option("--vae", vae, "FLUX autoencoder weights (ae.safetensors or diffusers vae/); overrides --model");
  cmd.add_option("--clip-l", clip_l, "CLIP-L text encoder weights (file or folder); overrides --model");
  cmd.add_option("--t5", t5, "T5-XXL encoder weights (fp16/fp8/bf16 file, or folder); overrides --model");
  cmd.add_option("--t5-tokenizer", t5_tokenizer, "T5 spiece.model, tokenizer.json or their folder");
  cmd.add_option("--clip-tokenizer", clip_tokenizer,
                 "CLIP tokenizer folder (vocab.json + merges.txt) or bpe_simple_vocab_16e6.txt[.gz] "
                 "(default: the standard CLIP vocabulary)");
}

weights::LoadedComponent FluxPaths::load(weights::Family family) const {
  using weights::Family;
  const std::pair<const std::string*, const char*> flag = family == Family::flux_dit ? std::pair{&dit, "--dit"}
                                                          : family == Family::flux_ae ? std::pair{&vae, "--vae"}
                                                          : family == Family::clip_l  ? std::pair{&clip_l, "--clip-l"}
                                                                                      : std::pair{&t5, "--t5"};
  if (!flag.first->empty()) return load_family(*flag.first, family, flag.second);
  DK_CHECK(!model.empty(), "give --model DIR or ", flag.second);
  return load_family(model, family, "--model");
}

std::optional<weights::FluxDitConfig> FluxPaths::find_dit_config() const {
  const std::string& path = dit.empty() ? model : dit;
  if (path.empty()) return std::nullopt;
  for (const weights::Component& c : weights::find_components(path).components) {
    const weights::LoadedComponent lc = weights::load_component(c);
    if (lc.detected.family == weights::Family::flux_dit && lc.config.family == weights::Family::flux_dit)
      return lc.config.as<weights::FluxDitConfig>();
  }
  return std::nullopt;
}

namespace {

namespace fs = std::filesystem;

// The first of `names` in `dir`, or "".
std::string file_in(const fs::path& dir, std::initializer_list<const char*> names) {
  for (const char* name : names)
    if (fs::is_regular_file(dir / name)) return (dir / name).string();
  return "";
}

// `dir`/`sub` and then every tokenizer folder under `root`, for the first that holds one of `names`.
std::string find_tokenizer_file(const std::string& root, const char* sub, std::initializer_list<const char*> names) {
  if (root.empty() || !fs::is_directory(root)) return "";
  if (std::string f = file_in(fs::path(root) / sub, names); !f.empty()) return f;
  for (const std::string& dir : weights::find_components(root).tokenizers)
    if (std::string f = file_in(fs::path(root) / dir, names); !f.empty()) return f;
  return "";
}

}  // namespace

std::string FluxPaths::t5_tokenizer_path() const {
  if (!t5_tokenizer.empty()) return find_tokenizer(t5_tokenizer, "--t5-tokenizer");
  const std::initializer_list<const char*> names{"spiece.model", "tokenizer.json"};
  if (std::string f = find_tokenizer_file(model, "tokenizer_2", names); !f.empty()) return f;
  if (!t5.empty()) {
    const fs::path dir = fs::is_directory(t5) ? fs::path(t5) : fs::path(t5).parent_path();
    for (const fs::path& d : {dir, dir / "tokenizer_2", dir.parent_path() / "tokenizer_2"})
      if (std::string f = file_in(d, names); !f.empty()) return f;
  }
  fail("no T5 tokenizer (spiece.model or tokenizer.json) found", model.empty() ? "" : " under --model " + model,
       "; give --t5-tokenizer");
}

std::string FluxPaths::clip_tokenizer_path() const {
  if (!clip_tokenizer.empty()) {
    DK_CHECK(fs::exists(clip_tokenizer), "--clip-tokenizer ", clip_tokenizer, ": no such file or folder");
    return clip_tokenizer;
  }
  const std::string vocab = find_tokenizer_file(model, "tokenizer", {"vocab.json"});
  return vocab.empty() || !fs::exists(fs::path(vocab).parent_path() / "merges.txt")
             ? std::string()
             : fs::path(vocab).parent_path().string();
}

int64_t flux_default_text_len(bool guidance_embed) { return guidance_embed ? 512 : 256; }

samplers::VelocityFn flux_velocity(const dit::FluxModel& model, const std::vector<double>& timesteps,
                                   const FluxConditioning& cond, const AttentionSetup& setup) {
  return [&model, &timesteps, &cond, &setup](const Tensor& x, int step, attention::Pass pass) {
    return model.forward(x, cond.img_ids, cond.txt, cond.txt_ids, timesteps[size_t(step)], cond.vec, cond.guidance,
                         step, setup.control(), pass);
  };
}

}  // namespace ditkit::apps
