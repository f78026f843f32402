// Interface between the host side of CUDA dense attention (dense_cuda.cpp, C++20, Tensors)
// and its kernel (dense_cuda.cu, C++17, pointers and element strides).
#pragma once
#include <cstdint>

#include "core/cuda/runtime.h"
#include "core/dtype.h"

namespace ditkit::attention {

// Largest head_dim the kernel takes (each thread keeps head_dim / 8 outputs in registers).
constexpr int64_t kCudaMaxHeadDim = 256;

// One [B, L, H, D] operand: element (b, l, h, d) at data + b sb + l sl + h sh + d sd elements.
struct DenseOperand {
  const void* data = nullptr;
  DType dtype = DType::F32;
  int64_t sb = 0, sl = 0, sh = 0, sd = 0;
};

struct DenseArgs {
  DenseOperand q, k, v;
  void* out = nullptr;  // contiguous [B, Lq, H, D] in out_dtype
  DType out_dtype = DType::F32;
  int64_t B = 0, Lq = 0, H = 0, D = 0;
  int64_t keys = 0;          // keys 0..keys-1 are attended
  float scale_log2 = 0.0f;   // softmax scale times log2(e)
};

// Bytes of dynamic shared memory the launch needs for head_dim D.
int64_t dense_attention_smem_bytes(int64_t D);
void launch_dense_attention(const DenseArgs& a, cudaStream_t s);

}  // namespace ditkit::attention
