// Caching allocators: freed blocks are kept in size classes and reused, so a denoising step
// does not reach malloc/cudaMalloc per op.
#pragma once
#include <cstddef>
#include <memory>

#include "core/device.h"

namespace ditkit {

struct AllocatorStats {
  size_t in_use = 0;      // bytes handed out now
  size_t peak = 0;        // most bytes handed out at once
  size_t cached = 0;      // bytes held in free lists
  size_t allocations = 0; // requests served
  size_t misses = 0;      // requests that reached the system allocator
};

// Returns memory of at least `bytes` (64-byte aligned on the host, 256 on CUDA); the
// shared_ptr's deleter returns the block to the cache.
std::shared_ptr<void> device_alloc(Device device, size_t bytes);
AllocatorStats allocator_stats(Device device);
void allocator_reset_peak(Device device);
// Releases every cached free block to the system.
void allocator_release_cached(Device device);

}  // namespace ditkit
