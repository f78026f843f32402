// Devices: the host CPU or a CUDA GPU by index.
#pragma once
#include <string>
#include <string_view>

namespace ditkit {

struct Device {
  enum class Kind { CPU, CUDA };
  Kind kind = Kind::CPU;
  int index = 0;

  static Device cpu() { return {}; }
  static Device cuda(int i = 0) { return {Kind::CUDA, i}; }
  // "cpu", "cuda", "cuda:1"; throws naming the text otherwise.
  static Device parse(std::string_view text);

  bool is_cpu() const { return kind == Kind::CPU; }
  bool is_cuda() const { return kind == Kind::CUDA; }
  std::string str() const;
  bool operator==(const Device&) const = default;
};

// Number of usable CUDA GPUs; 0 when built without CUDA or when none is present.
int cuda_device_count();
inline bool cuda_available() { return cuda_device_count() > 0; }

}  // namespace ditkit
