// Checkpoint: picks a reader by the file's first bytes and merges the tensors of several files
// (shards of a `*.safetensors.index.json`, or files named by the user) into one name index.
#include "weights/checkpoint.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>

#include <nlohmann/json.hpp>

#include "weights/mmap_file.h"

namespace ditkit::weights {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using Readers = std::vector<std::shared_ptr<TensorFile>>;

bool starts_with(const std::string& bytes, std::string_view magic) { return bytes.compare(0, magic.size(), magic) == 0; }

// A safetensors file also starts with a byte that may be '{' (header length 123 mod 256), so
// it is recognised by its header length fitting the file and its JSON header opening.
bool looks_like_safetensors(const std::string& head, uint64_t file_size) {
  if (head.size() < 9) return false;
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = header_len << 8 | uint8_t(head[i]);
  return header_len <= file_size - 8 && head[8] == '{';
}

bool looks_like_json(const std::string& head) {
  const size_t first = head.find_first_not_of(" \t\r\n");
  return first != std::string::npos && head[first] == '{';
}

// `*.safetensors.index.json`: {"metadata": {...}, "weight_map": {tensor: shard file}} with shard
// names relative to the index's folder. Every shard is opened (headers only: the data stays
// mapped, unread) so that a tensor missing from its shard is reported now, not mid-run.
Readers open_index(const std::string& path, uint64_t size) {
  // Real indexes are kilobytes; a big file that merely starts with '{' is not read into memory.
  constexpr uint64_t kMaxIndexBytes = 64ull << 20;
  DK_CHECK(size <= kMaxIndexBytes, "'", path, "': neither a safetensors file nor a checkpoint index (", size,
           " bytes of JSON-like text)");
  std::ifstream in(path, std::ios::binary);
  const std::string text{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  const json index = json::parse(text, nullptr, /*allow_exceptions=*/false);
  DK_CHECK(!index.is_discarded() && index.is_object(), "'", path, "': checkpoint index is not a valid JSON object");
  DK_CHECK(index.contains("weight_map") && index["weight_map"].is_object(), "'", path,
           "': checkpoint index has no \"weight_map\" object");

  const fs::path folder = fs::path(path).parent_path();
  std::map<std::string, std::shared_ptr<TensorFile>> shards;
  Readers readers;
  for (const auto& [name, shard] : index["weight_map"].items()) {
    DK_CHECK(shard.is_string(), "'", path, "': weight_map entry of tensor '", name, "' is not a file name");
    const std::string shard_name = shard.get<std::string>();
    auto it = shards.find(shard_name);
    if (it == shards.end()) {
      const fs::path shard_path = folder / shard_name;
      DK_CHECK(fs::is_regular_file(shard_path), "'", path, "': shard '", shard_name, "' of tensor '", name,
               "' not found (", shard_path.string(), ")");
      it = shards.emplace(shard_name, open_safetensors(shard_path.string())).first;
      readers.push_back(it->second);
    }
    const auto& infos = it->second->tensors();
    DK_CHECK(std::any_of(infos.begin(), infos.end(), [&](const TensorInfo& i) { return i.name == name; }), "'", path,
             "': tensor '", name, "' is listed in weight_map but absent from shard '", it->second->path(), "'");
  }
  DK_CHECK(!readers.empty(), "'", path, "': checkpoint index lists no tensors");
  return readers;
}

Readers open_readers(const std::string& path) {
  std::error_code ec;
  DK_CHECK(!fs::is_directory(path, ec), "'", path,
           "' is a directory; Checkpoint::open takes a checkpoint file (.safetensors, .safetensors.index.json, "
           ".pth, .gguf)");
  DK_CHECK(fs::exists(path, ec), "'", path, "': checkpoint file not found");
  const uint64_t size = fs::file_size(path, ec);
  DK_CHECK(!ec, "'", path, "': cannot read the file size (", ec.message(), ")");
  std::string head(16, '\0');
  std::ifstream in(path, std::ios::binary);
  in.read(head.data(), std::streamsize(head.size()));
  head.resize(size_t(in.gcount()));

  if (starts_with(head, "PK\x03\x04")) return {open_pth(path)};
  if (starts_with(head, "GGUF")) return {open_gguf(path)};
  if (!looks_like_safetensors(head, size) && looks_like_json(head)) return open_index(path, size);
  return {open_safetensors(path)};
}

// Up to three names close to `name` (by edit distance), for "did you mean" hints.
std::vector<std::string> similar_names(const std::string& name, const std::map<std::string, std::pair<size_t, size_t>>& index) {
  auto distance = [](const std::string& a, const std::string& b) {
    std::vector<size_t> row(b.size() + 1);
    for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
    for (size_t i = 1; i <= a.size(); ++i) {
      size_t diag = row[0];
      row[0] = i;
      for (size_t j = 1; j <= b.size(); ++j) {
        const size_t up = row[j];
        row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] != b[j - 1])});
        diag = up;
      }
    }
    return row[b.size()];
  };
  const size_t limit = std::max<size_t>(3, name.size() / 4);
  std::vector<std::pair<size_t, std::string>> close;
  for (const auto& entry : index) {
    const size_t d = distance(name, entry.first);
    if (d <= limit) close.emplace_back(d, entry.first);
  }
  std::sort(close.begin(), close.end());
  std::vector<std::string> out;
  for (size_t i = 0; i < close.size() && i < 3; ++i) out.push_back(close[i].second);
  return out;
}

}  // namespace

Checkpoint Checkpoint::open(const std::string& path) { return open_files({path}); }

Checkpoint Checkpoint::open_files(const std::vector<std::string>& paths) {
  DK_CHECK(!paths.empty(), "Checkpoint::open_files: no files given");
  Checkpoint ck;
  ck.files_ = paths;
  for (const std::string& path : paths)
    for (auto& reader : open_readers(path)) ck.readers_.push_back(std::move(reader));
  for (size_t r = 0; r < ck.readers_.size(); ++r) {
    const TensorFile& reader = *ck.readers_[r];
    const auto& infos = reader.tensors();
    for (size_t t = 0; t < infos.size(); ++t) {
      const auto [it, inserted] = ck.index_.emplace(infos[t].name, std::make_pair(r, t));
      DK_CHECK(inserted, "tensor '", infos[t].name, "' is present in both '", ck.readers_[it->second.first]->path(),
               "' and '", reader.path(), "'");
    }
    // The first file's value wins for a key present in several files (shards repeat them).
    ck.metadata_.insert(reader.metadata().begin(), reader.metadata().end());
  }
  return ck;
}

std::vector<std::string> Checkpoint::names() const {
  std::vector<std::string> out;
  out.reserve(index_.size());
  for (const auto& entry : index_) out.push_back(entry.first);
  return out;
}

bool Checkpoint::contains(const std::string& name) const { return index_.count(name) > 0; }

const TensorInfo& Checkpoint::info(const std::string& name) const {
  const auto it = index_.find(name);
  if (it == index_.end()) {
    std::string sources;
    for (const std::string& f : files_) sources += (sources.empty() ? "'" : ", '") + f + "'";
    std::string hint;
    for (const std::string& s : similar_names(name, index_)) hint += (hint.empty() ? " (similar: " : ", ") + s;
    fail("tensor '", name, "' not found in ", sources, hint.empty() ? "" : hint + ")");
  }
  return readers_[it->second.first]->tensors()[it->second.second];
}

Tensor Checkpoint::get(const std::string& name) const {
  const TensorInfo& i = info(name);
  return readers_[index_.at(name).first]->load(i);
}

}  // namespace ditkit::weights
