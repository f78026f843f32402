#include "core/allocator.h"

#include <cstdlib>

#include "core/backend.h"
#include "core/block_cache.h"
#include "core/error.h"

namespace ditkit {
namespace {

// Host cache: 64-byte multiples up to 4 KiB, then 1/8 steps of the next power of two (see
// core/block_cache.h), 64-byte aligned.
class HostCache {
 public:
  std::shared_ptr<void> alloc(size_t bytes) {
    return blocks_.alloc(
        bytes,
        [&](size_t size) {
          void* p = std::aligned_alloc(64, size);
          if (!p) {
            release_cached();
            p = std::aligned_alloc(64, size);
          }
          DK_CHECK(p, "out of host memory allocating ", bytes, " bytes");
          return p;
        },
        [](void* p) { std::free(p); });
  }

  void release_cached() {
    for (void* p : blocks_.take_all()) std::free(p);
  }

  AllocatorStats stats() { return blocks_.stats(); }
  void reset_peak() { blocks_.reset_peak(); }

 private:
  // Huge blocks go straight back: keeping them would pin memory the OS could use.
  BlockCache blocks_{64, 4096, size_t(1) << 30};
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
