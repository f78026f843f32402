#include "core/allocator.h"

#include <cstdlib>
#include <map>
#include <mutex>

#include "core/backend.h"
#include "core/error.h"

namespace ditkit {
namespace {

// Host cache: blocks rounded up to a size class, kept in a multimap by size after release.
// A request takes the smallest cached block that fits and is at most twice its size.
class HostCache {
 public:
  std::shared_ptr<void> alloc(size_t bytes) {
    size_t size = round_up(bytes);
    void* p = nullptr;
    {
      std::lock_guard<std::mutex> lock(mu_);
      ++stats_.allocations;
      auto it = free_.lower_bound(size);
      if (it != free_.end() && it->first <= 2 * size) {
        size = it->first;
        p = it->second;
        free_.erase(it);
        stats_.cached -= size;
      }
    }
    if (!p) {
      p = std::aligned_alloc(64, size);
      if (!p) {
        release_cached();
        p = std::aligned_alloc(64, size);
      }
      DK_CHECK(p, "out of host memory allocating ", bytes, " bytes");
      std::lock_guard<std::mutex> lock(mu_);
      ++stats_.misses;
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      stats_.in_use += size;
      stats_.peak = std::max(stats_.peak, stats_.in_use);
    }
    return std::shared_ptr<void>(p, [this, size](void* q) { release(q, size); });
  }

  void release(void* p, size_t size) {
    std::lock_guard<std::mutex> lock(mu_);
    stats_.in_use -= size;
    // Huge blocks go straight back: keeping them would pin memory the OS could use.
    if (size > (size_t(1) << 30)) {
      std::free(p);
      return;
    }
    free_.emplace(size, p);
    stats_.cached += size;
  }

  void release_cached() {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& [size, p] : free_) std::free(p);
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
  // Size classes: 64-byte multiples up to 4 KiB, then 1/8 steps of the next power of two.
  static size_t round_up(size_t n) {
    if (n <= 4096) return std::max<size_t>(64, (n + 63) & ~size_t(63));
    size_t p = 4096;
    while (p < n) p <<= 1;
    size_t step = p / 8;
    return (n + step - 1) / step * step;
  }

  std::mutex mu_;
  std::multimap<size_t, void*> free_;
  AllocatorStats stats_;
};

HostCache& host_cache() {
  static HostCache* cache = new HostCache;  // never destroyed: tensors may outlive static teardown
  return *cache;
}

}  // namespace

std::shared_ptr<void> device_alloc(Device device, size_t bytes) {
#ifdef DITKIT_WITH_CUDA
  if (device.is_cuda()) return cuda::alloc(device.index, bytes);
#endif
  DK_CHECK(device.is_cpu(), "device ", device.str(), ": this build has no CUDA");
  return host_cache().alloc(bytes);
}

AllocatorStats allocator_stats([[maybe_unused]] Device device) {
#ifdef DITKIT_WITH_CUDA
  if (device.is_cuda()) return cuda::allocator_stats(device.index);
#endif
  return host_cache().stats();
}

void allocator_reset_peak([[maybe_unused]] Device device) {
#ifdef DITKIT_WITH_CUDA
  if (device.is_cuda()) return cuda::allocator_reset_peak(device.index);
#endif
  host_cache().reset_peak();
}

void allocator_release_cached([[maybe_unused]] Device device) {
#ifdef DITKIT_WITH_CUDA
  if (device.is_cuda()) return cuda::allocator_release_cached(device.index);
#endif
  host_cache().release_cached();
}

}  // namespace ditkit
