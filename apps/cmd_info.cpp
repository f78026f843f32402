// ditkit info PATH: what a weights file or model folder holds (per component: files, format,
// family and layout, tensor and parameter counts, dtypes, config, memory, shape validation).
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>

#include "apps/commands.h"
#include "core/error.h"
#include "weights/model_files.h"

namespace ditkit::apps {

namespace {

using nlohmann::json;
using namespace ditkit::weights;

struct InfoOptions {
  std::string path, family, layout;
  bool as_json = false;
};

std::string human_bytes(double b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (b >= 1024 && u < 4) b /= 1024, ++u;
  char buf[32];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.2f %s", b, units[u]);
  return buf;
}

json describe(const Component& c, const InfoOptions& opt) {
  LoadedComponent lc = load_component(c, opt.family, opt.layout);
  const Checkpoint& ckpt = *lc.checkpoint;
  json out;
  out["component"] = c.name;
  out["files"] = ckpt.files().empty() ? c.files : ckpt.files();
  out["format"] = file_format(c.files[0]);
  out["family"] = family_name(lc.detected.family);
  if (lc.detected.family != Family::unknown) {
    out["layout"] = layout_name(lc.detected.layout);
    if (!lc.detected.prefix.empty()) out["prefix"] = lc.detected.prefix;
  }
  int64_t params = 0;
  uint64_t bytes = 0;
  std::map<std::string, std::pair<int64_t, uint64_t>> dtypes;  // name -> (tensors, bytes)
  for (const auto& name : ckpt.names()) {
    const TensorInfo& ti = ckpt.info(name);
    params += shape_numel(ti.shape);
    bytes += ti.bytes;
    auto& d = dtypes[dtype_name(ti.dtype)];
    d.first += 1;
    d.second += ti.bytes;
  }
  out["tensors"] = ckpt.size();
  out["parameters"] = params;
  for (const auto& [name, d] : dtypes) out["dtypes"][name] = {{"tensors", d.first}, {"bytes", d.second}};
  out["memory"] = {{"stored_bytes", bytes}, {"f32_bytes", uint64_t(params) * 4}};
  if (!lc.weights) return out;
  const KeyMap& map = lc.weights->key_map();
  out["official_tensors"] = map.official.size();
  if (!map.unmapped.empty()) out["unmapped"] = map.unmapped;
  if (!map.ignored.empty()) out["ignored"] = map.ignored.size();
  if (!lc.config_error.empty()) {
    out["config_error"] = lc.config_error;
    return out;
  }
  out["config"] = config_to_json(lc.config);
  out["config_source"] = lc.config_source;
  try {
    Validation v = check_tensors(lc.config, lc.weights->shapes());
    out["validation"] = {
        {"ok", v.ok()}, {"missing", v.missing}, {"mismatched", v.mismatched}, {"unexpected", v.unexpected}};
  } catch (const Error& e) {
    out["config_error"] = e.what();
  }
  return out;
}

void print_list(const char* what, const json& items) {
  if (items.empty()) return;
  std::printf("    %s (%zu):", what, items.size());
  for (size_t i = 0; i < items.size() && i < 5; ++i)
    std::printf("%s %s", i ? ";" : "", items[i].get<std::string>().c_str());
  std::printf("%s\n", items.size() > 5 ? "; ..." : "");
}

void print_text(const json& c) {
  std::printf("%s\n", c["component"].get<std::string>().c_str());
  for (const auto& f : c["files"]) std::printf("  file: %s\n", f.get<std::string>().c_str());
  std::printf("  format: %s\n", c["format"].get<std::string>().c_str());
  std::printf("  family: %s\n", c["family"].get<std::string>().c_str());
  if (c.contains("layout")) {
    std::printf("  layout: %s", c["layout"].get<std::string>().c_str());
    if (c.contains("prefix")) std::printf(" (prefix %s)", c["prefix"].get<std::string>().c_str());
    std::printf("\n");
  }
  std::printf("  tensors: %lld\n", c["tensors"].get<long long>());
  const double params = c["parameters"].get<double>();
  std::printf("  parameters: %.0f (%.3f M)\n", params, params / 1e6);
  for (const auto& [name, d] : c["dtypes"].items())
    std::printf("  dtype %s: %lld tensors, %s\n", name.c_str(), d["tensors"].get<long long>(),
                human_bytes(d["bytes"].get<double>()).c_str());
  std::printf("  memory: %s as stored, %s as f32\n", human_bytes(c["memory"]["stored_bytes"].get<double>()).c_str(),
              human_bytes(c["memory"]["f32_bytes"].get<double>()).c_str());
  if (c.contains("official_tensors"))
    std::printf("  official tensors: %zu (%zu stored tensors not used: tied copies, buffers)\n",
                c["official_tensors"].get<size_t>(), c.value("ignored", size_t(0)));
  if (c.contains("unmapped")) print_list("unmapped tensors", c["unmapped"]);
  if (c.contains("config")) {
    std::printf("  config (from %s):\n", c["config_source"].get<std::string>().c_str());
    for (const auto& [k, v] : c["config"].items()) std::printf("    %s: %s\n", k.c_str(), v.dump().c_str());
  }
  if (c.contains("config_error")) std::printf("  config: unusable: %s\n", c["config_error"].get<std::string>().c_str());
  if (c.contains("validation")) {
    const json& v = c["validation"];
    std::printf("  validation: %s\n", v["ok"].get<bool>() ? "ok" : "FAILED");
    print_list("wrong shape", v["mismatched"]);
    print_list("missing", v["missing"]);
    print_list("unexpected", v["unexpected"]);
  }
}

void run_info(const InfoOptions& opt) {
  ModelFolder folder = find_components(opt.path);
  json components = json::array();
  for (const auto& c : folder.components) {
    try {
      components.push_back(describe(c, opt));
    } catch (const Error& e) {
      const std::string msg = e.what();
      // Reader errors usually name the file already.
      if (msg.find(c.files[0]) != std::string::npos) throw;
      fail(c.files[0], ": ", msg);
    }
  }
  if (opt.as_json) {
    json out = {{"path", opt.path}, {"components", components}, {"tokenizers", folder.tokenizers}};
    std::printf("%s\n", out.dump(2).c_str());
    return;
  }
  for (size_t i = 0; i < components.size(); ++i) {
    if (i) std::printf("\n");
    print_text(components[i]);
  }
  for (const auto& t : folder.tokenizers) std::printf("\ntokenizer: %s\n", t.c_str());
}

}  // namespace

void register_info(CLI::App& app, const GlobalOptions& global) {
  auto* cmd = app.add_subcommand("info", "describe a checkpoint file or model folder");
  auto opt = std::make_shared<InfoOptions>();
  cmd->add_option("path", opt->path, "weights file (.safetensors, index .json, .pth, .gguf) or model folder")
      ->required();
  cmd->add_flag("--json", opt->as_json, "print JSON");
  cmd->add_option("--family", opt->family,
                  "wan_dit, umt5, wan_vae, flux_dit, flux_ae, clip_l or t5_xxl (default: detect)");
  cmd->add_option("--layout", opt->layout, "official, comfyui, diffusers or hf (default: detect)");
  cmd->callback([opt, &global] {
    apply_global_options(global);
    run_info(*opt);
  });
}

}  // namespace ditkit::apps
