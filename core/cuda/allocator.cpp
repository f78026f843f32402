// Caching device allocator: one cache per GPU. Freed blocks go to a free list keyed by size
// and are handed out again without cudaFree/cudaMalloc. All ops on a device run on its one
// stream, so a block freed on the host may be reused at once: later work is stream-ordered
// after the work that last used it.
#include <algorithm>
#include <array>
#include <map>
#include <mutex>

#include "core/backend.h"
#include "core/cuda/runtime.h"

namespace ditkit::cuda {
namespace {

class DeviceCache {
 public:
  explicit DeviceCache(int device) : device_(device) {}

  std::shared_ptr<void> alloc(size_t bytes) {
    size_t size = round_up(bytes);
    void* p = take(size);
    if (!p) {
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
      std::lock_guard<std::mutex> lock(mu_);
      ++stats_.misses;
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      stats_.in_use += size;
      stats_.peak = std::max(stats_.peak, stats_.in_use);
    }
    return std::shared_ptr<void>(p, [this, size](void* q) { give_back(q, size); });
  }

  void release_cached() {
    std::lock_guard<std::mutex> lock(mu_);
    if (free_.empty()) return;
    cudaSetDevice(device_);
    for (auto& [size, p] : free_) cudaFree(p);
    free_.clear();
    stats_.cached = 0;
  }

  AllocatorStats stats() {
    std::lock_guard<std::mutex> lock(mu_);
    return stats_;
  }

  void reset_peak() {
    std::lock_guard<std::mutex> lock(mu_);
    stats_.peak = stats_.in_use;
  }

 private:
  // Size classes: 512-byte multiples up to 1 MiB, then 1/8 steps of the next power of two,
  // so a reused block wastes at most 1/8 of itself.
  static size_t round_up(size_t n) {
    if (n <= (size_t(1) << 20)) return std::max<size_t>(512, (n + 511) & ~size_t(511));
    size_t p = size_t(1) << 20;
    while (p < n) p <<= 1;
    size_t step = p / 8;
    return (n + step - 1) / step * step;
  }

  // Smallest cached block of at least `size` and at most twice it, or null.
  void* take(size_t& size) {
    std::lock_guard<std::mutex> lock(mu_);
    ++stats_.allocations;
    auto it = free_.lower_bound(size);
    if (it == free_.end() || it->first > 2 * size) return nullptr;
    size = it->first;
    void* p = it->second;
    free_.erase(it);
    stats_.cached -= size;
    return p;
  }

  // Deleter of handed-out blocks: never throws.
  void give_back(void* p, size_t size) {
    std::lock_guard<std::mutex> lock(mu_);
    stats_.in_use -= size;
    free_.emplace(size, p);
    stats_.cached += size;
  }

  int device_;
  std::mutex mu_;
  std::multimap<size_t, void*> free_;
  AllocatorStats stats_;
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
