// Caching device allocator: one cache per GPU. Freed blocks go to a free list keyed by size
// and are handed out again without cudaFree/cudaMalloc. All ops on a device run on its one
// stream, so a block freed on the host may be reused at once: later work is stream-ordered
// after the work that last used it.
#include <array>
#include <mutex>
#include <vector>

#include "core/backend.h"
#include "core/block_cache.h"
#include "core/cuda/runtime.h"

namespace ditkit::cuda {
namespace {

// Size classes of 512-byte multiples up to 1 MiB, then 1/8 steps of the next power of two (see
// core/block_cache.h).
class DeviceCache {
 public:
  explicit DeviceCache(int device) : device_(device) {}

  std::shared_ptr<void> alloc(size_t bytes) {
    return blocks_.alloc(
        bytes,
        [&](size_t size) {
          void* p = nullptr;
          stream(device_);  // makes the device current
          cudaError_t err = cudaMalloc(&p, size);
          if (err == cudaErrorMemoryAllocation) {
            cudaGetLastError();
            // Cached blocks may be in use by queued work: wait for it before returning them.
            DK_CUDA(cudaStreamSynchronize(stream(device_)));
            release_cached();
            err = cudaMalloc(&p, size);
          }
          if (err != cudaSuccess) {
            cudaGetLastError();
            fail("out of memory on cuda:", device_, " allocating ", bytes, " bytes (", stats().in_use,
                 " bytes in use): ", cudaGetErrorString(err));
          }
          return p;
        },
        [](void* p) { cudaFree(p); });  // not called: every block is kept
  }

  void release_cached() {
    const std::vector<void*> blocks = blocks_.take_all();
    if (blocks.empty()) return;
    cudaSetDevice(device_);
    for (void* p : blocks) cudaFree(p);
  }

  AllocatorStats stats() { return blocks_.stats(); }
  void reset_peak() { blocks_.reset_peak(); }

 private:
  int device_;
  BlockCache blocks_{512, size_t(1) << 20};
};

DeviceCache& cache(int device) {
  static std::mutex mu;
  static std::array<DeviceCache*, kMaxDevices> caches{};  // never destroyed: tensors may outlive static teardown
  check_device(device);
  std::lock_guard<std::mutex> lock(mu);
  if (!caches[size_t(device)]) caches[size_t(device)] = new DeviceCache(device);
  return *caches[size_t(device)];
}

}  // namespace

std::shared_ptr<void> alloc(int device, size_t bytes) { return cache(device).alloc(bytes); }
AllocatorStats allocator_stats(int device) { return cache(device).stats(); }
void allocator_reset_peak(int device) { cache(device).reset_peak(); }
void allocator_release_cached(int device) {
  // Freed blocks may still be read by queued kernels; cudaFree would wait anyway, but be explicit.
  DK_CUDA(cudaStreamSynchronize(stream(device)));
  cache(device).release_cached();
}

}  // namespace ditkit::cuda
