// Tensor: a strided view of typed memory on one device. Views (slice, permute, reshape
// of contiguous data, expand) share storage; nothing is copied unless asked for.
#pragma once
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "core/device.h"
#include "core/dtype.h"
#include "core/error.h"

namespace ditkit {

using Shape = std::vector<int64_t>;

std::string shape_str(const Shape& s);
int64_t shape_numel(const Shape& s);
Shape contiguous_strides(const Shape& s);

// Owned or borrowed memory. `owner` keeps it alive: an allocator block, an mmap'd file, a vector.
struct Storage {
  void* data = nullptr;
  size_t bytes = 0;
  Device device;
  std::shared_ptr<void> owner;
};

class Tensor {
 public:
  Tensor() = default;

  // Uninitialised memory from the device's caching allocator.
  static Tensor empty(const Shape& shape, DType dtype, Device device = Device::cpu());
  static Tensor zeros(const Shape& shape, DType dtype, Device device = Device::cpu());
  static Tensor full(const Shape& shape, float value, DType dtype = DType::F32, Device device = Device::cpu());
  // Copies host values into a new CPU tensor of the given dtype (converted from f32).
  static Tensor from_vector(const std::vector<float>& values, const Shape& shape, DType dtype = DType::F32);
  // Wraps memory without copying; `owner` keeps it alive (may be null for caller-managed memory).
  static Tensor from_blob(void* data, const Shape& shape, DType dtype, Device device,
                          std::shared_ptr<void> owner, size_t bytes = 0);

  bool defined() const { return storage_ != nullptr; }
  const Shape& shape() const { return shape_; }
  const Shape& strides() const { return strides_; }
  int64_t dim(int64_t i) const;  // negative i counts from the end
  int64_t ndim() const { return int64_t(shape_.size()); }
  int64_t numel() const { return shape_numel(shape_); }
  size_t nbytes() const { return dtype_bytes(dtype_, numel()); }
  DType dtype() const { return dtype_; }
  Device device() const { return storage_ ? storage_->device : Device::cpu(); }
  bool is_contiguous() const;
  std::string str() const;  // "[2, 3] F32 cpu"

  // Raw pointer to the first element (byte offset applied).
  void* raw() const { return static_cast<char*>(storage_->data) + offset_; }
  template <typename T>
  T* data() const { return static_cast<T*>(raw()); }
  const std::shared_ptr<Storage>& storage() const { return storage_; }
  size_t byte_offset() const { return offset_; }

  // Views.
  Tensor slice(int64_t dim, int64_t start, int64_t end, int64_t step = 1) const;
  Tensor select(int64_t dim, int64_t index) const;  // removes the dimension
  Tensor narrow(int64_t dim, int64_t start, int64_t length) const { return slice(dim, start, start + length); }
  Tensor permute(const std::vector<int64_t>& dims) const;
  Tensor transpose(int64_t a, int64_t b) const;
  Tensor unsqueeze(int64_t dim) const;
  Tensor squeeze(int64_t dim) const;
  Tensor expand(const Shape& shape) const;  // broadcast with stride 0
  // View when the layout allows it, else a contiguous copy; one dimension may be -1.
  Tensor reshape(const Shape& shape) const;
  Tensor flatten(int64_t start = 0, int64_t end = -1) const;

  // Copies (through ops, so they run on the tensor's device).
  Tensor contiguous() const;
  Tensor clone() const;
  Tensor to(DType dtype) const;
  Tensor to(Device device) const;
  // Host copy of all values as f32, row-major (any dtype, any device).
  std::vector<float> to_vector() const;
  float item() const;

 private:
  std::shared_ptr<Storage> storage_;
  size_t offset_ = 0;  // in bytes
  Shape shape_, strides_;  // strides in elements
  DType dtype_ = DType::F32;
};

// Throws naming `what` unless t has the expected shape (-1 matches any size).
void expect_shape(const Tensor& t, const Shape& expected, const std::string& what);

}  // namespace ditkit
