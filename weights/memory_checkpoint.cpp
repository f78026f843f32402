// Checkpoint::from_tensors: a Checkpoint over tensors held in memory, so that ModelWeights (and
// every model built on it) works over generated weights exactly as over a file.
#include "weights/checkpoint.h"

namespace ditkit::weights {
namespace {

class MemoryTensorFile : public TensorFile {
 public:
  explicit MemoryTensorFile(std::map<std::string, Tensor> tensors) : tensors_(std::move(tensors)) {
    for (const auto& [name, t] : tensors_) {
      DK_CHECK(t.defined(), "in-memory checkpoint: tensor '", name, "' is undefined");
      infos_.push_back({name, t.dtype(), t.shape(), path_, 0, t.nbytes()});
    }
  }
  const std::string& path() const override { return path_; }
  const std::vector<TensorInfo>& tensors() const override { return infos_; }
  const std::map<std::string, std::string>& metadata() const override { return metadata_; }
  Tensor load(const TensorInfo& info) const override { return tensors_.at(info.name); }
  const char* format() const override { return "memory"; }

 private:
  std::string path_ = "<memory>";
  std::map<std::string, Tensor> tensors_;
  std::vector<TensorInfo> infos_;
  std::map<std::string, std::string> metadata_;
};

}  // namespace

Checkpoint Checkpoint::from_tensors(std::map<std::string, Tensor> tensors) {
  Checkpoint ck;
  auto reader = std::make_shared<MemoryTensorFile>(std::move(tensors));
  const auto& infos = reader->tensors();
  for (size_t t = 0; t < infos.size(); ++t) ck.index_.emplace(infos[t].name, std::make_pair(size_t(0), t));
  ck.files_ = {reader->path()};
  ck.readers_.push_back(std::move(reader));
  return ck;
}

}  // namespace ditkit::weights
