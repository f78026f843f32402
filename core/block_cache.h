// The bookkeeping shared by the host and the CUDA caching allocators: size classes, the free
// list of released blocks and the statistics. Getting memory from the system and giving it back
// (aligned_alloc/free, cudaMalloc/cudaFree) stays with each allocator.
#pragma once
#include <algorithm>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <utility>
#include <vector>

#include "core/allocator.h"

namespace ditkit {

class BlockCache {
 public:
  // Size classes: multiples of `granule` up to `linear_limit`, then 1/8 steps of the next power
  // of two, so a reused block wastes at most 1/8 of itself. Released blocks larger than
  // `max_kept` are not cached but given back to the system at once.
  BlockCache(size_t granule, size_t linear_limit, size_t max_kept = SIZE_MAX)
      : granule_(granule), linear_limit_(linear_limit), max_kept_(max_kept) {}

  size_t round_up(size_t n) const {
    if (n <= linear_limit_) return std::max(granule_, (n + granule_ - 1) / granule_ * granule_);
    size_t p = linear_limit_;
    while (p < n) p <<= 1;
    const size_t step = p / 8;
    return (n + step - 1) / step * step;
  }

  // A block of at least `bytes`: the smallest cached one that fits and is at most twice the size
  // class, else `system_alloc(size)`, which returns a block of `size` bytes or throws. The
  // shared_ptr's deleter returns the block to the cache, or passes it to `system_free` when it
  // is larger than max_kept; the deleter never throws.
  template <typename SystemAlloc, typename SystemFree>
  std::shared_ptr<void> alloc(size_t bytes, SystemAlloc&& system_alloc, SystemFree system_free) {
    size_t size = round_up(bytes);
    void* p = take(size);
    const bool miss = !p;
    if (miss) p = system_alloc(size);
    {
      std::lock_guard<std::mutex> lock(mu_);
      stats_.misses += miss;
      stats_.in_use += size;
      stats_.peak = std::max(stats_.peak, stats_.in_use);
    }
    return std::shared_ptr<void>(p, [this, size, system_free](void* q) {
      if (!give_back(q, size)) system_free(q);
    });
  }

  // Empties the free list; the caller gives the returned blocks back to the system.
  std::vector<void*> take_all() {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<void*> blocks;
    blocks.reserve(free_.size());
    for (const auto& [size, p] : free_) blocks.push_back(p);
    free_.clear();
    stats_.cached = 0;
    return blocks;
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
  // Counts a request; takes the smallest cached block of at least `size` and at most twice it
  // (setting `size` to its size), or returns null.
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

  // A handed-out block comes back; false when it is too large to keep.
  bool give_back(void* p, size_t size) {
    std::lock_guard<std::mutex> lock(mu_);
    stats_.in_use -= size;
    if (size > max_kept_) return false;
    free_.emplace(size, p);
    stats_.cached += size;
    return true;
  }

  const size_t granule_, linear_limit_, max_kept_;
  std::mutex mu_;
  std::multimap<size_t, void*> free_;
  AllocatorStats stats_;
};

}  // namespace ditkit
