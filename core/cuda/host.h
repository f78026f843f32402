// Tensor-level helpers of the CUDA backend's host files.
#pragma once
#include "core/backend.h"
#include "core/cuda/kernels.h"

namespace ditkit::cuda {

// The stream of the tensor's device (made current).
inline cudaStream_t stream(const Tensor& t) { return stream(t.device().index); }

// Strides of t broadcast to `shape` (right-aligned; 0 where t has size 1 or is missing).
inline Shape broadcast_strides(const Tensor& t, const Shape& shape) {
  Shape out(shape.size(), 0);
  size_t lead = shape.size() - size_t(t.ndim());
  for (size_t i = 0; i < size_t(t.ndim()); ++i)
    if (t.shape()[i] != 1) out[lead + i] = t.strides()[i];
  return out;
}

// Pointer and dtype of an optional tensor made dense (null when undefined); `keep` holds the
// dense copy alive until the kernel is queued.
inline const void* dense_or_null(const Tensor& t, Tensor& keep) {
  if (!t.defined()) return nullptr;
  keep = t.contiguous();
  return keep.raw();
}

}  // namespace ditkit::cuda
