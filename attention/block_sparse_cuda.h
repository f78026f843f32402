// Interface between the host side of CUDA block-sparse attention (block_sparse_cuda.cpp, C++20,
// Tensors and BlockSchedule) and its kernels (block_sparse_cuda.cu, C++17, raw pointers).
#pragma once
#include <cstdint>

#include "attention/dense_cuda.h"

namespace ditkit::attention {

// Query rows one CTA owns and keys per step of its loop. Schedules of any block shape run: a
// larger query block is split over several CTAs, a smaller one leaves rows idle, and a key block
// is walked in steps of 64 keys, one mask word each. 64 x 64 schedules waste nothing.
constexpr int64_t kCudaSparseRows = 64;
constexpr int64_t kCudaSparseKeys = 64;

// A BlockSchedule's arrays on the device (same meaning as there); a null order is the identity.
struct DeviceScheduleView {
  const int64_t* row_ptr = nullptr;
  const int32_t* cols = nullptr;
  const int64_t* mask_offset = nullptr;
  const uint64_t* bits = nullptr;
  const int64_t* q_order = nullptr;
  const int64_t* k_order = nullptr;
  int64_t q_len = 0, k_len = 0, q_block = 0, k_block = 0, mask_words = 0, q_blocks = 0;
};

struct BlockSparseArgs {
  // [B, tokens, H, D] in canonical token order. The tensor-core path (q, k and v all F16 or all
  // BF16) needs sd == 1, sb/sl/sh multiples of 8 and 16-byte aligned data; F32 takes any strides.
  DenseOperand q, k, v;
  void* out = nullptr;  // contiguous [B, q_tokens, H, D] in out_dtype
  DType out_dtype = DType::F32;
  float* lse = nullptr;  // contiguous [B, H, q_tokens], or null
  int64_t B = 0, H = 0, D = 0, q_tokens = 0;
  float scale_log2 = 0.0f;  // softmax scale times log2(e)
  DeviceScheduleView s;
};

// Whether the launch takes the tensor-core path, and the dynamic shared memory it needs.
bool block_sparse_uses_mma(const BlockSparseArgs& a);
int64_t block_sparse_smem_bytes(const BlockSparseArgs& a);
void launch_block_sparse_attention(const BlockSparseArgs& a, cudaStream_t s);

}  // namespace ditkit::attention
