// Device count, per-device streams, host <-> device copies.
#include "core/cuda/runtime.h"

#include <algorithm>
#include <array>
#include <mutex>

#include "core/backend.h"

namespace ditkit {

int cuda_device_count() {
  // A missing driver or GPU is not an error here: the answer is simply 0.
  static const int count = [] {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
      cudaGetLastError();  // reset the error state so later calls start clean
      return 0;
    }
    return n;
  }();
  return count;
}

namespace cuda {

namespace {
std::mutex g_stream_mu;
std::array<cudaStream_t, kMaxDevices> g_streams{};

// Device of a device (or managed) pointer; the current device for host pointers.
int device_of(const void* p) {
  cudaPointerAttributes attr{};
  DK_CUDA(cudaPointerGetAttributes(&attr, p));
  if (attr.type == cudaMemoryTypeDevice || attr.type == cudaMemoryTypeManaged) return attr.device;
  int dev = 0;
  DK_CUDA(cudaGetDevice(&dev));
  return dev;
}
}  // namespace

void check(cudaError_t err, const char* call) {
  if (err == cudaSuccess) return;
  cudaGetLastError();
  fail("CUDA call ", call, " failed: ", cudaGetErrorName(err), " (", cudaGetErrorString(err), ")");
}

void check_device(int device) {
  DK_CHECK(device >= 0 && device < std::min(cuda_device_count(), kMaxDevices), "device cuda:", device,
           " does not exist (", cuda_device_count(), " CUDA devices)");
}

cudaStream_t stream(int device) {
  check_device(device);
  DK_CUDA(cudaSetDevice(device));
  std::lock_guard<std::mutex> lock(g_stream_mu);
  cudaStream_t& s = g_streams[size_t(device)];
  if (!s) DK_CUDA(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  return s;
}

void memcpy_h2d(void* dst, const void* src, size_t bytes) {
  if (bytes == 0) return;
  // From pageable memory the call returns once `src` is staged, so the caller may free it.
  DK_CUDA(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream(device_of(dst))));
}

void memcpy_d2h(void* dst, const void* src, size_t bytes) {
  if (bytes == 0) return;
  cudaStream_t s = stream(device_of(src));
  DK_CUDA(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, s));
  DK_CUDA(cudaStreamSynchronize(s));  // the host reads dst right after
}

void synchronize() {
  std::lock_guard<std::mutex> lock(g_stream_mu);
  for (int d = 0; d < kMaxDevices; ++d) {
    if (!g_streams[size_t(d)]) continue;
    DK_CUDA(cudaSetDevice(d));
    DK_CUDA(cudaStreamSynchronize(g_streams[size_t(d)]));
  }
}

}  // namespace cuda
}  // namespace ditkit
