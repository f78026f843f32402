#include "weights/mmap_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "core/error.h"

namespace ditkit::weights {

std::shared_ptr<MappedFile> MappedFile::open(const std::string& path) {
  std::shared_ptr<MappedFile> file(new MappedFile(path));
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  DK_CHECK(fd >= 0, "'", path, "': cannot open (", std::strerror(errno), ")");
  struct stat st {};
  const bool is_file = ::fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
  int map_errno = 0;
  if (is_file && st.st_size > 0) {
    // MAP_PRIVATE + PROT_READ: pages come from the page cache and are never written back.
    void* p = ::mmap(nullptr, size_t(st.st_size), PROT_READ, MAP_PRIVATE, fd, 0);
    if (p != MAP_FAILED) {
      file->data_ = static_cast<const uint8_t*>(p);
      file->size_ = uint64_t(st.st_size);
    } else {
      map_errno = errno;
    }
  }
  ::close(fd);
  DK_CHECK(is_file, "'", path, "': not a regular file");
  DK_CHECK(file->size_ == uint64_t(st.st_size), "'", path, "': cannot map ", st.st_size, " bytes (",
           std::strerror(map_errno), ")");
  return file;
}

MappedFile::~MappedFile() {
  if (size_ > 0) ::munmap(const_cast<uint8_t*>(data_), size_);
}

Tensor mapped_tensor(const std::shared_ptr<MappedFile>& file, uint64_t offset, const Shape& shape, DType dtype) {
  const uint64_t bytes = dtype_bytes(dtype, shape_numel(shape));
  DK_CHECK(offset <= file->size() && bytes <= file->size() - offset, "'", file->path(), "': ", bytes,
           " bytes at offset ", offset, " lie beyond the end of the file (", file->size(), " bytes)");
  const uint8_t* src = file->data() + offset;
  // Q8_0 blocks start with an f16 scale.
  const size_t align = dtype == DType::Q8_0 ? 2 : dtype_size(dtype);
  if (reinterpret_cast<uintptr_t>(src) % align == 0)
    return Tensor::from_blob(const_cast<uint8_t*>(src), shape, dtype, Device::cpu(), file, bytes);
  Tensor copy = Tensor::empty(shape, dtype);
  std::memcpy(copy.raw(), src, bytes);
  return copy;
}

void check_disjoint(const std::vector<TensorInfo>& tensors, const std::string& path) {
  std::vector<const TensorInfo*> sorted;
  for (const TensorInfo& t : tensors)
    if (t.bytes > 0) sorted.push_back(&t);
  std::sort(sorted.begin(), sorted.end(), [](const TensorInfo* a, const TensorInfo* b) { return a->offset < b->offset; });
  for (size_t i = 1; i < sorted.size(); ++i) {
    const TensorInfo& a = *sorted[i - 1];
    const TensorInfo& b = *sorted[i];
    DK_CHECK(b.offset >= a.offset + a.bytes, "'", path, "': data of tensor '", b.name, "' (bytes ", b.offset, "..",
             b.offset + b.bytes, ") overlaps tensor '", a.name, "' (bytes ", a.offset, "..", a.offset + a.bytes, ")");
  }
}

std::optional<int64_t> checked_numel(const Shape& shape) {
  int64_t n = 1;
  for (int64_t d : shape)
    if (d < 0 || __builtin_mul_overflow(n, d, &n)) return std::nullopt;
  return n;
}

}  // namespace ditkit::weights
