// GGUF (versions 2 and 3, little-endian): "GGUF", u32 version, u64 tensor count, u64 key/value
// count, the key/values, the tensor infos (name, u32 n_dims, u64 dims fastest-first, u32 ggml
// type, u64 offset), then the data block at the next multiple of general.alignment.
#include <cstring>
#include <set>

#include <nlohmann/json.hpp>

#include "weights/checkpoint.h"
#include "weights/mmap_file.h"

namespace ditkit::weights {
namespace {

using nlohmann::json;

enum ValueType : uint32_t {
  UINT8 = 0, INT8 = 1, UINT16 = 2, INT16 = 3, UINT32 = 4, INT32 = 5, FLOAT32 = 6, BOOL = 7,
  STRING = 8, ARRAY = 9, UINT64 = 10, INT64 = 11, FLOAT64 = 12,
};

// ggml_type numbers of the storage types DType can hold.
std::optional<DType> ggml_dtype(uint32_t type) {
  switch (type) {
    case 0: return DType::F32;
    case 1: return DType::F16;
    case 8: return DType::Q8_0;
    case 24: return DType::I8;
    case 25: return DType::I16;
    case 26: return DType::I32;
    case 27: return DType::I64;
    case 28: return DType::F64;
    case 30: return DType::BF16;
    default: return std::nullopt;
  }
}

constexpr uint32_t kMaxDims = 4;         // GGML_MAX_DIMS
constexpr int kMaxArrayNesting = 8;      // arrays of arrays; bounds the recursion
constexpr uint64_t kDefaultAlignment = 32;

// Bounds-checked little-endian cursor over the mapping; errors name the file and what was read.
class Cursor {
 public:
  explicit Cursor(const MappedFile& file) : file_(file) {}

  uint64_t pos() const { return pos_; }
  uint64_t remaining() const { return file_.size() - pos_; }

  void need(uint64_t bytes, const std::string& what) const {
    DK_CHECK(bytes <= remaining(), "'", file_.path(), "': GGUF file truncated: ", what, " needs ", bytes,
             " bytes at offset ", pos_, " but only ", remaining(), " remain");
  }
  template <typename T>
  T read(const std::string& what) {
    need(sizeof(T), what);
    T v;
    std::memcpy(&v, file_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }
  std::string string(const std::string& what) {
    const uint64_t len = read<uint64_t>(what + " length");
    need(len, cat(what, " (string of ", len, " bytes)"));
    std::string s(reinterpret_cast<const char*>(file_.data() + pos_), len);
    pos_ += len;
    return s;
  }

 private:
  const MappedFile& file_;
  uint64_t pos_ = 0;
};

// Smallest encoding of one value of `type`, to bound array counts by the bytes left.
uint64_t min_value_bytes(uint32_t type) {
  switch (type) {
    case UINT8: case INT8: case BOOL: return 1;
    case UINT16: case INT16: return 2;
    case UINT32: case INT32: case FLOAT32: return 4;
    case STRING: return 8;
    case ARRAY: return 12;
    default: return 8;
  }
}

json read_value(Cursor& in, uint32_t type, const std::string& key, const std::string& path, int depth) {
  const std::string what = cat("value of '", key, "'");
  switch (type) {
    case UINT8: return in.read<uint8_t>(what);
    case INT8: return in.read<int8_t>(what);
    case UINT16: return in.read<uint16_t>(what);
    case INT16: return in.read<int16_t>(what);
    case UINT32: return in.read<uint32_t>(what);
    case INT32: return in.read<int32_t>(what);
    case FLOAT32: return in.read<float>(what);
    case UINT64: return in.read<uint64_t>(what);
    case INT64: return in.read<int64_t>(what);
    case FLOAT64: return in.read<double>(what);
    case BOOL: return in.read<uint8_t>(what) != 0;
    case STRING: return in.string(what);
    case ARRAY: {
      DK_CHECK(depth < kMaxArrayNesting, "'", path, "': GGUF metadata '", key, "' nests arrays deeper than ",
               kMaxArrayNesting);
      const uint32_t elem_type = in.read<uint32_t>(what + " array type");
      DK_CHECK(elem_type <= FLOAT64, "'", path, "': GGUF metadata '", key, "' has unknown array element type ",
               elem_type);
      const uint64_t count = in.read<uint64_t>(what + " array length");
      DK_CHECK(count <= in.remaining() / min_value_bytes(elem_type), "'", path, "': GGUF metadata '", key,
               "' array length ", count, " exceeds the file size");
      json items = json::array();
      for (uint64_t i = 0; i < count; ++i) items.push_back(read_value(in, elem_type, key, path, depth + 1));
      return items;
    }
    default: fail("'", path, "': GGUF metadata '", key, "' has unknown value type ", type);
  }
}

// Strings as they are, everything else as JSON text (numbers, true/false, [arrays]).
std::string render(const json& value) {
  if (value.is_string()) return value.get<std::string>();
  return value.dump(-1, ' ', false, json::error_handler_t::replace);
}

class GgufFile : public TensorFile {
 public:
  explicit GgufFile(const std::string& path) : file_(MappedFile::open(path)) { parse(); }

  const std::string& path() const override { return file_->path(); }
  const std::vector<TensorInfo>& tensors() const override { return tensors_; }
  const std::map<std::string, std::string>& metadata() const override { return metadata_; }
  const char* format() const override { return "gguf"; }
  Tensor load(const TensorInfo& info) const override {
    return mapped_tensor(file_, info.offset, info.shape, info.dtype);
  }

 private:
  void parse() {
    const std::string& p = path();
    Cursor in(*file_);
    DK_CHECK(file_->size() >= 4 && std::memcmp(file_->data(), "GGUF", 4) == 0, "'", p,
             "': not a GGUF file (bad magic)");
    in.read<uint32_t>("magic");
    const uint32_t version = in.read<uint32_t>("version");
    DK_CHECK(version == 2 || version == 3, "'", p, "': unsupported GGUF version ", version,
             " (supported: 2 and 3, little-endian)");
    const uint64_t n_tensors = in.read<uint64_t>("tensor count");
    const uint64_t n_kv = in.read<uint64_t>("metadata count");
    // A key/value takes at least 8 + 4 + 1 bytes, a tensor info 8 + 4 + 4 + 8.
    DK_CHECK(n_kv <= in.remaining() / 13, "'", p, "': GGUF metadata count ", n_kv, " exceeds the file size");
    DK_CHECK(n_tensors <= in.remaining() / 24, "'", p, "': GGUF tensor count ", n_tensors, " exceeds the file size");

    uint64_t alignment = kDefaultAlignment;
    for (uint64_t i = 0; i < n_kv; ++i) {
      const std::string key = in.string(cat("metadata key #", i));
      const uint32_t type = in.read<uint32_t>(cat("type of '", key, "'"));
      const json value = read_value(in, type, key, p, 0);
      if (key == "general.alignment") {
        DK_CHECK(value.is_number_unsigned() && value.get<uint64_t>() > 0 &&
                     (value.get<uint64_t>() & (value.get<uint64_t>() - 1)) == 0,
                 "'", p, "': general.alignment must be a power of two, got ", render(value));
        alignment = value.get<uint64_t>();
      }
      DK_CHECK(metadata_.emplace(key, render(value)).second, "'", p, "': duplicate GGUF metadata key '", key, "'");
    }

    std::set<std::string> names;
    for (uint64_t i = 0; i < n_tensors; ++i) {
      TensorInfo info;
      info.file = p;
      info.name = in.string(cat("name of tensor #", i));
      const std::string where = cat("'", p, "': tensor '", info.name, "'");
      DK_CHECK(names.insert(info.name).second, where, ": duplicate tensor name");
      const uint32_t n_dims = in.read<uint32_t>(where + " n_dims");
      DK_CHECK(n_dims <= kMaxDims, where, ": ", n_dims, " dimensions (at most ", kMaxDims, ")");
      for (uint32_t d = 0; d < n_dims; ++d) {
        const uint64_t dim = in.read<uint64_t>(where + " dims");
        DK_CHECK(dim <= uint64_t(INT64_MAX), where, ": dimension ", dim, " is too large");
        info.shape.insert(info.shape.begin(), int64_t(dim));  // stored fastest-first
      }
      const uint32_t type = in.read<uint32_t>(where + " type");
      const std::optional<DType> dtype = ggml_dtype(type);
      DK_CHECK(dtype.has_value(), where, ": unsupported ggml type ", type,
               " (supported: F32, F16, BF16, Q8_0, I8, I16, I32, I64, F64)");
      info.dtype = *dtype;
      info.offset = in.read<uint64_t>(where + " offset");  // relative to the data block for now
      DK_CHECK(info.offset % alignment == 0, where, ": data offset ", info.offset, " is not a multiple of the alignment ",
               alignment);
      const std::optional<int64_t> numel = checked_numel(info.shape);
      DK_CHECK(numel && uint64_t(*numel) <= file_->size(), where, ": shape ", shape_str(info.shape),
               " is larger than the file");
      DK_CHECK(info.dtype != DType::Q8_0 || (!info.shape.empty() && info.shape.back() % kQ8_0Block == 0), where,
               ": Q8_0 rows of ", info.shape.empty() ? 1 : info.shape.back(), " values are not a multiple of ",
               kQ8_0Block);
      info.bytes = dtype_bytes(info.dtype, *numel);
      tensors_.push_back(std::move(info));
    }

    const uint64_t data_start = (in.pos() + alignment - 1) / alignment * alignment;
    const uint64_t data_size = data_start <= file_->size() ? file_->size() - data_start : 0;
    for (TensorInfo& info : tensors_) {
      DK_CHECK(info.offset <= data_size && info.bytes <= data_size - info.offset, "'", p, "': tensor '", info.name,
               "': data (", info.bytes, " bytes at offset ", info.offset, ") lies beyond the end of the file (data block of ",
               data_size, " bytes)");
      info.offset += data_start;
    }
    check_disjoint(tensors_, p);
  }

  std::shared_ptr<MappedFile> file_;
  std::vector<TensorInfo> tensors_;
  std::map<std::string, std::string> metadata_;
};

}  // namespace

std::unique_ptr<TensorFile> open_gguf(const std::string& path) { return std::make_unique<GgufFile>(path); }

}  // namespace ditkit::weights
