// safetensors: u64 little-endian header length, a JSON header {name: {dtype, shape,
// data_offsets: [begin, end)}, "__metadata__": {string: string}}, then the data block that
// the offsets index. Read through an mmap; every header field is validated against the file.
#include <algorithm>
#include <fstream>
#include <set>

#include <nlohmann/json.hpp>

#include "core/atomic_file.h"
#include "weights/checkpoint.h"
#include "weights/mmap_file.h"

namespace ditkit::weights {
namespace {

using nlohmann::json;

// The reference implementation's limit; anything bigger is a damaged or hostile file.
constexpr uint64_t kMaxHeaderBytes = 100ull << 20;

class SafetensorsFile : public TensorFile {
 public:
  explicit SafetensorsFile(const std::string& path) : file_(MappedFile::open(path)) { parse(); }

  const std::string& path() const override { return file_->path(); }
  const std::vector<TensorInfo>& tensors() const override { return tensors_; }
  const std::map<std::string, std::string>& metadata() const override { return metadata_; }
  const char* format() const override { return "safetensors"; }
  Tensor load(const TensorInfo& info) const override {
    return mapped_tensor(file_, info.offset, info.shape, info.dtype);
  }

 private:
  void parse() {
    const std::string& p = path();
    const uint64_t size = file_->size();
    DK_CHECK(size >= 8, "'", p, "': not a safetensors file: ", size, " bytes is shorter than the 8-byte header length");
    uint64_t header_len = 0;
    for (int i = 7; i >= 0; --i) header_len = header_len << 8 | file_->data()[i];
    DK_CHECK(header_len <= size - 8, "'", p, "': not a safetensors file: header length ", header_len,
             " exceeds the file size (", size, " bytes)");
    DK_CHECK(header_len <= kMaxHeaderBytes, "'", p, "': safetensors header length ", header_len,
             " is larger than the limit of ", kMaxHeaderBytes, " bytes");

    // nlohmann keeps the last of repeated keys; the callback sees every top-level key.
    std::string duplicate;
    std::set<std::string> keys;
    auto on_event = [&](int depth, json::parse_event_t event, json& parsed) {
      if (event == json::parse_event_t::key && depth == 1 && !keys.insert(parsed.get<std::string>()).second &&
          duplicate.empty())
        duplicate = parsed.get<std::string>();
      return true;
    };
    const char* begin = reinterpret_cast<const char*>(file_->data() + 8);
    const json header = json::parse(begin, begin + header_len, on_event, /*allow_exceptions=*/false);
    DK_CHECK(!header.is_discarded(), "'", p, "': safetensors header is not valid JSON");
    DK_CHECK(header.is_object(), "'", p, "': safetensors header is not a JSON object");
    DK_CHECK(duplicate.empty(), "'", p, "': duplicate tensor name '", duplicate, "' in the safetensors header");

    const uint64_t data_start = 8 + header_len;
    const uint64_t data_size = size - data_start;
    for (const auto& [name, entry] : header.items()) {
      if (name == "__metadata__") {
        read_metadata(entry);
        continue;
      }
      tensors_.push_back(read_entry(name, entry, data_start, data_size));
    }
    check_disjoint(tensors_, p);
  }

  void read_metadata(const json& entry) {
    DK_CHECK(entry.is_object(), "'", path(), "': __metadata__ must be an object of strings");
    for (const auto& [key, value] : entry.items()) {
      DK_CHECK(value.is_string(), "'", path(), "': __metadata__ entry '", key, "' is not a string");
      metadata_[key] = value.get<std::string>();
    }
  }

  TensorInfo read_entry(const std::string& name, const json& entry, uint64_t data_start, uint64_t data_size) const {
    const std::string where = cat("'", path(), "': tensor '", name, "'");
    DK_CHECK(entry.is_object(), where, ": header entry is not an object");
    for (const char* field : {"dtype", "shape", "data_offsets"})
      DK_CHECK(entry.contains(field), where, ": header entry has no '", field, "'");

    TensorInfo info;
    info.name = name;
    info.file = path();
    const json& dtype = entry["dtype"];
    DK_CHECK(dtype.is_string(), where, ": dtype is not a string");
    const std::optional<DType> type = dtype_from_name(dtype.get<std::string>());
    DK_CHECK(type && *type != DType::Q8_0, where, ": unknown dtype '", dtype.get<std::string>(), "'");
    info.dtype = *type;

    const json& shape = entry["shape"];
    DK_CHECK(shape.is_array(), where, ": shape is not an array");
    for (const json& d : shape) {
      DK_CHECK(d.is_number_unsigned() && d.get<uint64_t>() <= uint64_t(INT64_MAX), where,
               ": shape must hold non-negative integers, got ", shape.dump());
      info.shape.push_back(d.get<int64_t>());
    }
    const std::optional<int64_t> numel = checked_numel(info.shape);
    DK_CHECK(numel.has_value(), where, ": shape ", shape.dump(), " has too many elements");

    const json& offsets = entry["data_offsets"];
    DK_CHECK(offsets.is_array() && offsets.size() == 2 && offsets[0].is_number_unsigned() &&
                 offsets[1].is_number_unsigned(),
             where, ": data_offsets must be two non-negative integers, got ", offsets.dump());
    const uint64_t begin = offsets[0].get<uint64_t>();
    const uint64_t end = offsets[1].get<uint64_t>();
    DK_CHECK(begin <= end, where, ": data_offsets end ", end, " is before begin ", begin);
    DK_CHECK(end <= data_size, where, ": data_offsets [", begin, ", ", end, "] lie beyond the data block (", data_size,
             " bytes)");
    // Every dtype here takes at least one byte per element, so this bounds dtype_bytes.
    DK_CHECK(uint64_t(*numel) <= end - begin && dtype_bytes(info.dtype, *numel) == end - begin, where, ": shape ",
             shape_str(info.shape), " of ", dtype_name(info.dtype), " does not match data_offsets length ", end - begin);
    info.offset = data_start + begin;
    info.bytes = end - begin;
    return info;
  }

  std::shared_ptr<MappedFile> file_;
  std::vector<TensorInfo> tensors_;
  std::map<std::string, std::string> metadata_;
};

}  // namespace

std::unique_ptr<TensorFile> open_safetensors(const std::string& path) {
  return std::make_unique<SafetensorsFile>(path);
}

void save_safetensors(const std::string& path, const std::map<std::string, Tensor>& tensors,
                      const std::map<std::string, std::string>& metadata) {
  // Data block order: by element size, largest first, then by name (as the reference writer
  // does). Tensors are packed without gaps, so this keeps every tensor aligned to its element
  // size (the header is padded to 8) and loadable zero-copy.
  std::vector<std::pair<std::string, Tensor>> order(tensors.begin(), tensors.end());
  for (const auto& [name, tensor] : order) {
    DK_CHECK(tensor.defined(), "save_safetensors '", path, "': tensor '", name, "' is undefined");
    DK_CHECK(name != "__metadata__", "save_safetensors '", path, "': '__metadata__' is reserved, not a tensor name");
    DK_CHECK(tensor.dtype() != DType::Q8_0, "save_safetensors '", path, "': tensor '", name,
             "' is Q8_0, which safetensors cannot store");
  }
  std::stable_sort(order.begin(), order.end(), [](const auto& a, const auto& b) {
    return dtype_size(a.second.dtype()) > dtype_size(b.second.dtype());
  });
  std::vector<Tensor> host;
  json header = json::object();
  uint64_t offset = 0;
  for (const auto& [name, tensor] : order) {
    host.push_back(tensor.to(Device::cpu()).contiguous());
    const uint64_t bytes = host.back().nbytes();
    header[name] = {{"dtype", dtype_name(tensor.dtype())}, {"shape", tensor.shape()},
                    {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  if (!metadata.empty()) header["__metadata__"] = metadata;

  std::string text;
  try {
    text = header.dump();
  } catch (const json::exception& e) {
    fail("save_safetensors '", path, "': a tensor name or metadata string is not valid UTF-8 (", e.what(), ")");
  }
  // Padding keeps the data block 8-byte aligned in the file, so every dtype maps zero-copy.
  text.append((8 - text.size() % 8) % 8, ' ');

  write_atomically(path, [&](const std::string& tmp) {
    std::ofstream out(tmp, std::ios::binary);
    uint8_t len[8];
    for (int i = 0; i < 8; ++i) len[i] = uint8_t(uint64_t(text.size()) >> (8 * i));
    out.write(reinterpret_cast<const char*>(len), 8);
    out.write(text.data(), std::streamsize(text.size()));
    for (const Tensor& t : host) out.write(static_cast<const char*>(t.raw()), std::streamsize(t.nbytes()));
    out.flush();
    DK_CHECK(out.good(), "save_safetensors: cannot write '", tmp, "' for '", path, "'");
  });
}

}  // namespace ditkit::weights
