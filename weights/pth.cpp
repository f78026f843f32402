// PyTorch checkpoints written by torch.save (zip format, PyTorch >= 1.6): `<archive>/data.pkl`
// pickles a dict of name -> torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)
// whose storages are persistent ids ('storage', torch.<Type>Storage, key, location, numel)
// naming the stored entries `<archive>/data/<key>`.
#include <algorithm>
#include <cstring>
#include <map>
#include <optional>
#include <set>

#include "weights/checkpoint.h"
#include "weights/mmap_file.h"
#include "weights/pickle.h"
#include "weights/zip.h"

namespace ditkit::weights {
namespace {

using pickle::Value;

std::optional<DType> storage_dtype(const std::string& type) {
  static const std::map<std::string, DType> types = {
      {"torch.DoubleStorage", DType::F64},          {"torch.FloatStorage", DType::F32},
      {"torch.HalfStorage", DType::F16},            {"torch.BFloat16Storage", DType::BF16},
      {"torch.Float8_e4m3fnStorage", DType::F8_E4M3}, {"torch.Float8_e5m2Storage", DType::F8_E5M2},
      {"torch.LongStorage", DType::I64},            {"torch.IntStorage", DType::I32},
      {"torch.ShortStorage", DType::I16},           {"torch.CharStorage", DType::I8},
      {"torch.ByteStorage", DType::U8},             {"torch.BoolStorage", DType::BOOL},
  };
  auto it = types.find(type);
  return it == types.end() ? std::nullopt : std::optional(it->second);
}

const std::set<std::string> kTensorBuilders = {
    "torch._utils._rebuild_tensor", "torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_parameter",
    "torch._utils._rebuild_parameter_with_state"};

// The globals a weights file may name. Storage classes of any type are inert values, so all are
// allowed and an unsupported one is reported by name with its tensor.
bool allowed_global(const std::string& name) {
  static const std::set<std::string> names = {
      "collections.OrderedDict", "torch.Size", "torch.float32", "torch.float", "torch.float64", "torch.double",
      "torch.float16", "torch.half", "torch.bfloat16", "torch.float8_e4m3fn", "torch.float8_e5m2", "torch.int64",
      "torch.long", "torch.int32", "torch.int", "torch.int16", "torch.short", "torch.int8", "torch.uint8",
      "torch.bool"};
  const std::string_view storage_prefix = "torch.", storage_suffix = "Storage";
  const bool storage_type = name.size() > storage_prefix.size() + storage_suffix.size() &&
                            name.starts_with(storage_prefix) && name.ends_with(storage_suffix) &&
                            name.find('.', storage_prefix.size()) == std::string::npos;
  return storage_type || names.count(name) || kTensorBuilders.count(name);
}

// Row-major layout without gaps (strides of size-1 dimensions do not matter).
bool dense(const Shape& size, const Shape& stride) {
  int64_t expected = 1;
  for (size_t d = size.size(); d-- > 0;) {
    if (size[d] != 1 && stride[d] != expected) return false;
    expected *= size[d];
  }
  return true;
}

bool is_tensor(const Value* v) {
  return v->kind == Value::Kind::Call && v->callable->kind == Value::Kind::Global &&
         kTensorBuilders.count(v->callable->text);
}

// A stored tensor: where its storage is and how it is laid out in it (in elements).
struct Layout {
  DType dtype = DType::F32;
  const ZipEntry* storage = nullptr;
  int64_t offset = 0;
  Shape size, stride;
};

class PthFile final : public TensorFile {
 public:
  explicit PthFile(const std::string& path)
      : file_(MappedFile::open(path)), zip_(file_->data(), file_->size(), path) {
    const ZipEntry& pkl = zip_.stored(find_pickle());
    check_byteorder();
    const pickle::Pickle pk =
        pickle::unpickle(zip_.data(pkl), pkl.size, allowed_global, cat(path, " (", pkl.name, ")"));
    DK_CHECK(pk.root->kind == Value::Kind::Dict, path, ": data.pkl holds a ", pickle::kind_name(pk.root->kind),
             ", not a dict of tensors");
    collect(pk.root, "", 0);
    DK_CHECK(!tensors_.empty(), path, ": no tensors found in data.pkl");
  }

  const std::string& path() const override { return file_->path(); }
  const std::vector<TensorInfo>& tensors() const override { return tensors_; }
  const std::map<std::string, std::string>& metadata() const override { return metadata_; }
  const char* format() const override { return "pth"; }

  Tensor load(const TensorInfo& info) const override {
    auto it = index_.find(info.name);
    DK_CHECK(it != index_.end(), path(), ": no tensor '", info.name, "'");
    const TensorInfo& t = tensors_[it->second];
    const Layout& layout = layouts_[it->second];
    if (t.bytes == 0) return Tensor::empty(t.shape, t.dtype);
    const uint8_t* src = file_->data() + t.offset;
    const size_t elsize = dtype_size(t.dtype);
    const bool contiguous = dense(t.shape, layout.stride);
    if (contiguous && reinterpret_cast<uintptr_t>(src) % elsize == 0)
      return Tensor::from_blob(const_cast<uint8_t*>(src), t.shape, t.dtype, Device::cpu(), file_, t.bytes);
    Tensor out = Tensor::empty(t.shape, t.dtype);
    if (contiguous)
      gather(src, {shape_numel(t.shape)}, {1}, elsize, static_cast<uint8_t*>(out.raw()));
    else
      gather(src, t.shape, layout.stride, elsize, static_cast<uint8_t*>(out.raw()));
    return out;
  }

 private:
  // Copies a strided tensor into contiguous `dst`, one innermost row at a time.
  static void gather(const uint8_t* src, const Shape& size, const Shape& stride, size_t elsize, uint8_t* dst) {
    const int64_t numel = shape_numel(size);
    if (numel == 0) return;
    if (size.empty()) {
      std::memcpy(dst, src, elsize);
      return;
    }
    const size_t outer = size.size() - 1;
    const int64_t row = size[outer], step = stride[outer];
    std::vector<int64_t> index(outer, 0);
    for (int64_t r = 0; r < numel / row; ++r) {
      int64_t base = 0;
      for (size_t d = 0; d < outer; ++d) base += index[d] * stride[d];
      const uint8_t* p = src + base * int64_t(elsize);
      if (step == 1) {
        std::memcpy(dst, p, row * elsize);
      } else {
        for (int64_t i = 0; i < row; ++i) std::memcpy(dst + i * elsize, p + i * step * int64_t(elsize), elsize);
      }
      dst += row * elsize;
      for (size_t d = outer; d-- > 0;) {
        if (++index[d] < size[d]) break;
        index[d] = 0;
      }
    }
  }

  // The archive's "<archive>/data.pkl"; sets prefix_ to "<archive>/".
  std::string find_pickle() {
    for (const ZipEntry& e : zip_.entries()) {
      const size_t slash = e.name.find('/');
      if (slash != std::string::npos && e.name.compare(slash + 1, std::string::npos, "data.pkl") == 0) {
        prefix_ = e.name.substr(0, slash + 1);
        return e.name;
      }
    }
    fail(path(), ": no <archive>/data.pkl in the zip archive (not a torch.save checkpoint)");
  }

  void check_byteorder() const {
    const std::string name = prefix_ + "byteorder";
    if (!zip_.find(name)) return;  // absent in files from older torch: little-endian
    const ZipEntry& e = zip_.stored(name);
    const std::string order(reinterpret_cast<const char*>(zip_.data(e)), std::min<uint64_t>(e.size, 16));
    DK_CHECK(order == "little", path(), ": byteorder is '", order,
             "'; only little-endian checkpoints are supported");
  }

  // Tensors of a dict; nested dicts ({'state_dict': {...}}) are flattened with '.'-joined names
  // only when the dict itself holds no tensor.
  void collect(const Value* dict, const std::string& prefix, int depth) {
    DK_CHECK(depth < 32, path(), ": data.pkl nests dicts deeper than 32 levels at '", prefix, "'");
    bool has_tensor = false;
    for (const auto& [key, value] : dict->entries) has_tensor = has_tensor || is_tensor(value);
    for (const auto& [key, value] : dict->entries) {
      if (!is_tensor(value) && (has_tensor || value->kind != Value::Kind::Dict)) continue;
      DK_CHECK(key->kind == Value::Kind::String, path(), ": data.pkl has a ", pickle::kind_name(key->kind),
               " key under '", prefix, "'; names must be strings");
      const std::string name = prefix + key->text;
      if (has_tensor)
        add(name, value);
      else
        collect(value, name + ".", depth + 1);
    }
  }

  void add(const std::string& name, const Value* v) {
    Layout layout = parse_tensor(name, v);
    const size_t elsize = dtype_size(layout.dtype);
    const int64_t numel = checked_numel(name, layout.size);
    // Elements from the start of the storage up to the tensor's last one.
    int64_t span = 0;
    if (numel > 0) {
      bool overflow = __builtin_add_overflow(layout.offset, 1, &span);
      for (size_t d = 0; d < layout.size.size(); ++d) {
        int64_t extent = 0;
        overflow = overflow || __builtin_mul_overflow(layout.size[d] - 1, layout.stride[d], &extent) ||
                   __builtin_add_overflow(span, extent, &span);
      }
      DK_CHECK(!overflow, path(), ": tensor '", name, "' has an offset or strides that overflow");
    }
    uint64_t needed = 0;
    DK_CHECK(!__builtin_mul_overflow(uint64_t(span), uint64_t(elsize), &needed) && needed <= layout.storage->size,
             path(), ": tensor '", name, "' ", shape_str(layout.size), " ", dtype_name(layout.dtype),
             " needs ", needed, " bytes of storage '", layout.storage->name, "' but the archive holds ",
             layout.storage->size);

    TensorInfo info;
    info.name = name;
    info.dtype = layout.dtype;
    info.shape = layout.size;
    info.file = path();
    info.offset = layout.storage->data_offset + (numel > 0 ? uint64_t(layout.offset) * elsize : 0);
    info.bytes = uint64_t(numel) * elsize;
    auto [it, added] = index_.emplace(name, tensors_.size());
    if (added) {
      tensors_.push_back(std::move(info));
      layouts_.push_back(std::move(layout));
    } else {  // a key set twice: the last value wins, as in Python
      tensors_[it->second] = std::move(info);
      layouts_[it->second] = std::move(layout);
    }
  }

  int64_t checked_numel(const std::string& name, const Shape& size) const {
    int64_t numel = 1;
    for (int64_t s : size)
      DK_CHECK(!__builtin_mul_overflow(numel, s, &numel), path(), ": tensor '", name, "' is too large");
    return numel;
  }

  // _rebuild_parameter(data, ...) wraps _rebuild_tensor_v2(storage, storage_offset, size, stride, ...).
  Layout parse_tensor(const std::string& name, const Value* v) const {
    const std::string where = cat(path(), ": tensor '", name, "'");
    const std::string& builder = v->callable->text;
    if (builder == "torch._utils._rebuild_parameter" || builder == "torch._utils._rebuild_parameter_with_state") {
      DK_CHECK(!v->items.empty() && v->items[0]->kind == Value::Kind::Call &&
                   v->items[0]->callable->text.starts_with("torch._utils._rebuild_tensor"),
               where, ": ", builder, " does not wrap a tensor");
      v = v->items[0];
    }
    DK_CHECK(v->items.size() >= 4, where, ": ", v->callable->text, " has ", v->items.size(),
             " arguments, expected at least 4");
    Layout layout;
    const Value* storage = v->items[0];
    DK_CHECK(storage->kind == Value::Kind::Persistent, where, ": storage is a ",
             pickle::kind_name(storage->kind), ", expected a persistent id");
    const Value* pid = storage->items[0];
    DK_CHECK(pid->kind == Value::Kind::Tuple && pid->items.size() >= 3 &&
                 pid->items[0]->kind == Value::Kind::String && pid->items[0]->text == "storage" &&
                 pid->items[1]->kind == Value::Kind::Global && pid->items[2]->kind == Value::Kind::String,
             where, ": storage id is not ('storage', type, key, ...)");
    const std::string& type = pid->items[1]->text;
    const std::optional<DType> dtype = storage_dtype(type);
    DK_CHECK(dtype, where, ": storage type ", type, " is not supported");
    layout.dtype = *dtype;
    layout.storage = &zip_.stored(prefix_ + "data/" + pid->items[2]->text);
    layout.offset = as_int(v->items[1], where, "storage offset");
    layout.size = as_ints(v->items[2], where, "size");
    layout.stride = as_ints(v->items[3], where, "stride");
    DK_CHECK(layout.size.size() == layout.stride.size(), where, ": size ", shape_str(layout.size),
             " and stride ", shape_str(layout.stride), " differ in rank");
    return layout;
  }

  static int64_t as_int(const Value* v, const std::string& where, const char* what) {
    DK_CHECK(v->kind == Value::Kind::Int && v->integer >= 0, where, ": ", what, " is not a non-negative int");
    return v->integer;
  }
  // A tuple of ints, or torch.Size(tuple).
  static Shape as_ints(const Value* v, const std::string& where, const char* what) {
    if (v->is_call_to("torch.Size") && v->items.size() == 1) v = v->items[0];
    DK_CHECK(v->kind == Value::Kind::Tuple || v->kind == Value::Kind::List, where, ": ", what, " is a ",
             pickle::kind_name(v->kind), ", expected a tuple of ints");
    Shape out;
    for (const Value* item : v->items) out.push_back(as_int(item, where, what));
    return out;
  }

  std::shared_ptr<MappedFile> file_;
  ZipArchive zip_;
  std::string prefix_;  // "<archive>/"
  std::vector<TensorInfo> tensors_;
  std::vector<Layout> layouts_;
  std::map<std::string, size_t> index_;
  std::map<std::string, std::string> metadata_;
};

}  // namespace

std::unique_ptr<TensorFile> open_pth(const std::string& path) { return std::make_unique<PthFile>(path); }

}  // namespace ditkit::weights
