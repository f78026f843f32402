// Checkpoints: named tensors read lazily from safetensors (single or sharded), PyTorch
// .pth/.pt zip-pickles and GGUF files. Tensors come back in their stored dtype, as views of
// the mmap'd file when the bytes can be used as they are (no copy, no conversion).
#pragma once
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace ditkit::weights {

struct TensorInfo {
  std::string name;
  DType dtype = DType::F32;
  Shape shape;
  std::string file;     // the file holding it (a shard for sharded checkpoints)
  uint64_t offset = 0;  // byte offset of its data in that file
  uint64_t bytes = 0;
};

// One file's tensors. Implementations: safetensors, pth (zip + restricted unpickler), gguf.
class TensorFile {
 public:
  virtual ~TensorFile() = default;
  virtual const std::string& path() const = 0;
  virtual const std::vector<TensorInfo>& tensors() const = 0;
  // String metadata: safetensors __metadata__, GGUF key/values rendered as text.
  virtual const std::map<std::string, std::string>& metadata() const = 0;
  // CPU tensor with the data of `info` (zero-copy view of the mapping where possible).
  virtual Tensor load(const TensorInfo& info) const = 0;
  // "safetensors", "pth", "gguf".
  virtual const char* format() const = 0;
};

std::unique_ptr<TensorFile> open_safetensors(const std::string& path);
std::unique_ptr<TensorFile> open_pth(const std::string& path);
std::unique_ptr<TensorFile> open_gguf(const std::string& path);

// All tensors of a checkpoint: one file, a sharded `*.safetensors.index.json`, or several
// files merged (a name present twice is an error naming both files).
class Checkpoint {
 public:
  // Picks the reader by content (magic bytes), not only by extension; errors name the path.
  static Checkpoint open(const std::string& path);
  static Checkpoint open_files(const std::vector<std::string>& paths);
  // Tensors already in memory (generated weights, tests); get() returns them as they are.
  static Checkpoint from_tensors(std::map<std::string, Tensor> tensors);

  std::vector<std::string> names() const;  // sorted
  bool contains(const std::string& name) const;
  const TensorInfo& info(const std::string& name) const;  // throws naming the tensor and file(s)
  Tensor get(const std::string& name) const;
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  const std::vector<std::string>& files() const { return files_; }
  size_t size() const { return index_.size(); }

 private:
  std::vector<std::shared_ptr<TensorFile>> readers_;
  std::map<std::string, std::pair<size_t, size_t>> index_;  // name -> (reader, tensor)
  std::map<std::string, std::string> metadata_;
  std::vector<std::string> files_;
};

// Writes tensors (any device, any dtype but Q8_0) and string metadata as safetensors,
// atomically (temporary file, then rename).
void save_safetensors(const std::string& path, const std::map<std::string, Tensor>& tensors,
                      const std::map<std::string, std::string>& metadata = {});

}  // namespace ditkit::weights
