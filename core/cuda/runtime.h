// CUDA runtime helpers shared by the backend's host files (.cpp, C++20) and kernel files
// (.cu, compiled as C++17, so this header stays free of the C++20 core headers):
// error checking, the per-device stream, launch sizes.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "core/error.h"

namespace ditkit::cuda {

// Devices this backend keeps streams and caches for.
constexpr int kMaxDevices = 64;

// Throws ditkit::Error naming the failed call and CUDA's error string.
void check(cudaError_t err, const char* call);
#define DK_CUDA(call) ::ditkit::cuda::check((call), #call)

// Throws naming the device unless cuda:<device> exists.
void check_device(int device);

// Makes `device` current and returns its stream. Every op on the device runs on this one
// non-blocking stream, so blocks returned to the caching allocator are reused in stream order.
cudaStream_t stream(int device);
// Checks the last kernel launch.
inline void check_launch(const char* kernel) { check(cudaGetLastError(), kernel); }

// Blocks for a launch covering n elements with `threads` threads each (grid-stride loops
// take the rest).
inline unsigned grid_for(int64_t n, int threads = 256) {
  int64_t blocks = (n + threads - 1) / threads;
  return unsigned(blocks < 1 ? 1 : (blocks > (int64_t(1) << 20) ? (int64_t(1) << 20) : blocks));
}

}  // namespace ditkit::cuda
