// Read-only mapping of a whole file, shared by the checkpoint readers and kept alive by the
// tensors that view it (Tensor::from_blob owner), so 28 GB checkpoints are paged in lazily.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "weights/checkpoint.h"

namespace ditkit::weights {

class MappedFile {
 public:
  // Throws ditkit::Error naming the path when it cannot be opened, is not a regular file or
  // cannot be mapped. An empty file maps to size() == 0 with a non-null data().
  static std::shared_ptr<MappedFile> open(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  uint64_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  explicit MappedFile(std::string path) : path_(std::move(path)) {}
  static constexpr uint8_t kEmpty = 0;
  const uint8_t* data_ = &kEmpty;
  uint64_t size_ = 0;
  std::string path_;
};

// CPU tensor of the bytes at `offset` of the mapping: a zero-copy view that keeps the mapping
// alive, or an aligned copy (same dtype) when the address does not suit the element type.
// The view is read-only memory: callers copy before writing in place.
Tensor mapped_tensor(const std::shared_ptr<MappedFile>& file, uint64_t offset, const Shape& shape, DType dtype);

// Throws naming the file and both tensors when two non-empty [offset, offset + bytes) ranges overlap.
void check_disjoint(const std::vector<TensorInfo>& tensors, const std::string& path);

// numel of dims read from a file, or nullopt when a dimension is negative or the product overflows.
std::optional<int64_t> checked_numel(const Shape& shape);

}  // namespace ditkit::weights
