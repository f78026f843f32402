#include "weights/model_files.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>

namespace ditkit::weights {

namespace fs = std::filesystem;

namespace {

constexpr const char* kIndexSuffix = ".safetensors.index.json";
constexpr int kMaxDepth = 3;

bool ends_with(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

bool is_weights_name(const std::string& name) {
  for (const char* ext : {".safetensors", ".sft", ".pth", ".pt", ".ckpt", ".bin", ".gguf", kIndexSuffix})
    if (ends_with(name, ext)) return true;
  return false;
}

bool is_tokenizer_name(const std::string& name) {
  return name == "spiece.model" || name == "tokenizer.json" || name == "tokenizer_config.json" ||
         name == "vocab.json" || name == "merges.txt" || ends_with(name, ".model") ||
         ends_with(name, "vocab_16e6.txt.gz");
}

std::string display_name(const fs::path& p, const fs::path& root) {
  std::string r = p.lexically_relative(root).generic_string();
  return r.empty() || r == "." ? p.filename().string() : r;
}

// Shard names as written by transformers / diffusers: "<stem>-00001-of-00003.safetensors".
const std::regex& shard_pattern() {
  static const std::regex re(R"((.*)-\d{5}-of-\d{5}(\.[A-Za-z0-9_]+)$)");
  return re;
}

// Files of one folder grouped into components: an index covers the shards it names; shards
// without an index are grouped by their stem; other files stand alone.
void add_folder_components(const fs::path& dir, const fs::path& root, ModelFolder& out) {
  std::vector<std::string> files;
  bool tokenizer = false;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    if (!e.is_regular_file(ec)) continue;
    std::string name = e.path().filename().string();
    if (is_weights_name(name)) files.push_back(name);
    tokenizer = tokenizer || is_tokenizer_name(name);
  }
  if (tokenizer && files.empty()) out.tokenizers.push_back(display_name(dir, root));
  if (files.empty()) return;
  // transformers / diffusers folders often hold the same weights as .safetensors and .bin.
  const bool has_safetensors = std::any_of(files.begin(), files.end(), [](const std::string& f) {
    return ends_with(f, ".safetensors") || ends_with(f, kIndexSuffix);
  });
  if (has_safetensors) std::erase_if(files, [](const std::string& f) { return ends_with(f, ".bin"); });
  std::sort(files.begin(), files.end());
  const std::string config = fs::exists(dir / "config.json") ? (dir / "config.json").string() : "";
  std::set<std::string> covered;
  for (const auto& f : files) {
    if (!ends_with(f, kIndexSuffix)) continue;
    out.components.push_back({display_name(dir / f, root), {(dir / f).string()}, config});
    std::ifstream in(dir / f);
    try {
      auto j = nlohmann::json::parse(in);
      for (auto& [name, file] : j.at("weight_map").items())
        if (file.is_string()) covered.insert(file.get<std::string>());
    } catch (const nlohmann::json::exception& e) {
      fail((dir / f).string(), ": not a valid safetensors index (", e.what(), ")");
    }
  }
  std::map<std::string, std::vector<std::string>> shards;
  for (const auto& f : files) {
    if (ends_with(f, kIndexSuffix) || covered.count(f)) continue;
    std::smatch m;
    if (std::regex_match(f, m, shard_pattern()))
      shards[m[1].str() + m[2].str()].push_back((dir / f).string());
    else
      out.components.push_back({display_name(dir / f, root), {(dir / f).string()}, config});
  }
  for (auto& [stem, list] : shards) out.components.push_back({display_name(dir / stem, root), list, config});
}

void scan(const fs::path& dir, const fs::path& root, int depth, ModelFolder& out) {
  add_folder_components(dir, root, out);
  if (depth >= kMaxDepth) return;
  std::vector<fs::path> subdirs;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec))
    if (e.is_directory(ec) && e.path().filename().string()[0] != '.') subdirs.push_back(e.path());
  std::sort(subdirs.begin(), subdirs.end());
  for (const auto& d : subdirs) scan(d, root, depth + 1, out);
}

}  // namespace

ModelFolder find_components(const std::string& path) {
  std::error_code ec;
  fs::file_status st = fs::status(path, ec);
  DK_CHECK(!ec && fs::exists(st), path, ": no such file or folder");
  ModelFolder out;
  if (fs::is_directory(st)) {
    scan(path, path, 1, out);
    DK_CHECK(!out.components.empty(), path, ": no weights files (.safetensors, index .json, .pth, .pt, .gguf) found");
    return out;
  }
  DK_CHECK(fs::is_regular_file(st), path, ": not a regular file");
  fs::path p(path);
  fs::path config = p.parent_path() / "config.json";
  out.components.push_back({p.filename().string(), {path}, fs::exists(config) ? config.string() : ""});
  return out;
}

std::string file_format(const std::string& path) {
  if (ends_with(path, ".json")) return "safetensors index";
  std::ifstream in(path, std::ios::binary);
  unsigned char head[9] = {};
  in.read(reinterpret_cast<char*>(head), sizeof head);
  if (in.gcount() >= 4 && std::memcmp(head, "PK\x03\x04", 4) == 0) return "pth";
  if (in.gcount() >= 4 && std::memcmp(head, "GGUF", 4) == 0) return "gguf";
  if (in.gcount() == 9 && head[8] == '{') return "safetensors";
  return "unknown";
}

LoadedComponent load_component(const Component& c, std::string_view family, std::string_view layout) {
  DK_CHECK(!c.files.empty(), c.name, ": no files");
  LoadedComponent out;
  out.checkpoint = std::make_shared<const Checkpoint>(c.files.size() == 1 ? Checkpoint::open(c.files[0])
                                                                          : Checkpoint::open_files(c.files));
  const std::vector<std::string> names = out.checkpoint->names();
  try {
    out.detected = family.empty() && layout.empty() ? try_detect(names) : detect(names, family, layout);
  } catch (const Error& e) {
    fail(c.files[0], ": ", e.what());
  }
  if (out.detected.family == Family::unknown) return out;
  out.weights = std::make_unique<ModelWeights>(out.checkpoint, out.detected);
  const Family f = out.detected.family;
  if (!c.config.empty()) {
    std::ifstream in(c.config);
    nlohmann::json j = nlohmann::json::parse(in, nullptr, false);
    DK_CHECK(!j.is_discarded(), c.config, ": not valid JSON");
    if (config_json_fits(f, j)) {
      out.config = config_from_json(f, j, c.config);
      out.config_source = c.config;
      return out;
    }
  }
  try {
    out.config = config_from_shapes(f, out.weights->shapes());
    out.config_source = "tensor shapes";
  } catch (const Error& e) {
    out.config_error = e.what();
  }
  return out;
}

}  // namespace ditkit::weights
