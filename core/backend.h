// Backend declarations: the same op set in ditkit::cpu and ditkit::cuda.
#pragma once
#include <memory>

#include "core/allocator.h"
#include "core/ops.h"

namespace ditkit::cpu {
#include "core/backend_ops.inc"
}  // namespace ditkit::cpu

#ifdef DITKIT_WITH_CUDA
namespace ditkit::cuda {
#include "core/backend_ops.inc"
// Host <-> device copies of contiguous bytes on the current stream.
void memcpy_h2d(void* dst, const void* src, size_t bytes);
void memcpy_d2h(void* dst, const void* src, size_t bytes);
void synchronize();
// Caching device allocator (see core/allocator.h).
std::shared_ptr<void> alloc(int device, size_t bytes);
AllocatorStats allocator_stats(int device);
void allocator_reset_peak(int device);
void allocator_release_cached(int device);
}  // namespace ditkit::cuda
#endif
