#include "core/device.h"

#include <charconv>

#include "core/error.h"

namespace ditkit {

Device Device::parse(std::string_view text) {
  if (text == "cpu") return cpu();
  if (text == "cuda") return cuda(0);
  if (text.starts_with("cuda:")) {
    std::string_view num = text.substr(5);
    int idx = -1;
    auto [p, ec] = std::from_chars(num.data(), num.data() + num.size(), idx);
    if (ec == std::errc() && p == num.data() + num.size() && idx >= 0) return cuda(idx);
  }
  fail("unknown device '", text, "' (expected cpu, cuda or cuda:N)");
}

std::string Device::str() const { return is_cpu() ? "cpu" : "cuda:" + std::to_string(index); }

#ifndef DITKIT_WITH_CUDA
int cuda_device_count() { return 0; }
#endif

}  // namespace ditkit
