// Host side of CUDA block-sparse attention: the schedule's one-time upload (kept in
// BlockSchedule::device_copy), operand strides, then the kernels of block_sparse_cuda.cu on the
// device's stream.
#ifdef DITKIT_WITH_CUDA
#include <climits>
#include <cstdint>
#include <mutex>
#include <numbers>

#include "attention/block_sparse.h"
#include "attention/block_sparse_cuda.h"
#include "core/cuda/host.h"

namespace ditkit::attention {
namespace {

// What BlockSchedule::device_copy holds: the arrays on one device, alive as long as the schedule.
struct DeviceSchedule {
  int device = -1;
  std::vector<std::shared_ptr<void>> memory;
  DeviceScheduleView view;
};

template <typename T>
const T* upload(const std::vector<T>& host, DeviceSchedule& ds) {
  if (host.empty()) return nullptr;
  std::shared_ptr<void> mem = cuda::alloc(ds.device, host.size() * sizeof(T));
  cuda::memcpy_h2d(mem.get(), host.data(), host.size() * sizeof(T));
  ds.memory.push_back(mem);
  return static_cast<const T*>(mem.get());
}

// Checks what the kernels index with (a bad schedule must fail here, not read out of bounds).
void check_schedule(const BlockSchedule& s) {
  DK_CHECK(s.q_block > 0 && s.k_block > 0, "block_sparse_attention (CUDA): schedule blocks must be positive, got ",
           s.q_block, " x ", s.k_block);
  DK_CHECK(s.row_ptr.size() == size_t(s.q_blocks()) + 1 && s.row_ptr.front() == 0 &&
               s.row_ptr.back() == s.entries() && s.mask_offset.size() == s.cols.size(),
           "block_sparse_attention (CUDA): schedule CSR arrays are inconsistent (", s.row_ptr.size(), " row pointers for ",
           s.q_blocks(), " query blocks, ", s.cols.size(), " cols, ", s.mask_offset.size(), " mask offsets)");
  for (size_t qb = 0; qb + 1 < s.row_ptr.size(); ++qb)
    DK_CHECK(s.row_ptr[qb] <= s.row_ptr[qb + 1], "block_sparse_attention (CUDA): schedule row_ptr decreases at query block ",
             qb);
  DK_CHECK(s.q_order.empty() ? s.q_len == s.q_tokens : int64_t(s.q_order.size()) == s.q_len,
           "block_sparse_attention (CUDA): schedule q_order has ", s.q_order.size(), " positions, q_len is ", s.q_len);
  DK_CHECK(s.k_order.empty() ? s.k_len == s.k_tokens : int64_t(s.k_order.size()) == s.k_len,
           "block_sparse_attention (CUDA): schedule k_order has ", s.k_order.size(), " positions, k_len is ", s.k_len);
  for (int64_t p : s.q_order)
    DK_CHECK(p >= -1 && p < s.q_tokens, "block_sparse_attention (CUDA): schedule q_order holds ", p, ", not a query in [0, ",
             s.q_tokens, ") or -1");
  for (int64_t p : s.k_order)
    DK_CHECK(p >= -1 && p < s.k_tokens, "block_sparse_attention (CUDA): schedule k_order holds ", p, ", not a key in [0, ",
             s.k_tokens, ") or -1");
  const int64_t mask_size = s.q_block * s.mask_words();
  for (size_t e = 0; e < s.cols.size(); ++e) {
    DK_CHECK(s.cols[e] >= 0 && s.cols[e] < s.k_blocks(), "block_sparse_attention (CUDA): schedule entry ", e,
             " names key block ", s.cols[e], " of ", s.k_blocks());
    const int64_t off = s.mask_offset[e];
    DK_CHECK(off == -1 || (off >= 0 && off + mask_size <= int64_t(s.bits.size())), "block_sparse_attention (CUDA): schedule entry ",
             e, " has mask offset ", off, " outside its ", s.bits.size(), " mask words");
  }
}

// The schedule's arrays on `device`, uploaded on first use. A schedule may be shared between
// threads (plans cache them), so the upload is serialised.
const DeviceScheduleView& device_schedule(const BlockSchedule& s, int device) {
  static std::mutex mu;
  std::lock_guard<std::mutex> lock(mu);
  auto ds = std::static_pointer_cast<DeviceSchedule>(s.device_copy);
  if (!ds || ds->device != device) {
    check_schedule(s);
    ds = std::make_shared<DeviceSchedule>();
    ds->device = device;
    DeviceScheduleView& v = ds->view;
    v.row_ptr = upload(s.row_ptr, *ds);
    v.cols = upload(s.cols, *ds);
    v.mask_offset = upload(s.mask_offset, *ds);
    v.bits = upload(s.bits, *ds);
    v.q_order = upload(s.q_order, *ds);
    v.k_order = upload(s.k_order, *ds);
    v.q_len = s.q_len;
    v.k_len = s.k_len;
    v.q_block = s.q_block;
    v.k_block = s.k_block;
    v.mask_words = s.mask_words();
    v.q_blocks = s.q_blocks();
    s.device_copy = ds;
  }
  return ds->view;
}

DenseOperand operand(const Tensor& t) {
  const Shape& st = t.strides();
  return {t.raw(), t.dtype(), st[0], st[1], st[2], st[3]};
}

// The tensor-core kernel copies rows in 16-byte pieces: unit head_dim stride, the other strides
// whole pieces, aligned data. Anything else is copied into a fresh contiguous tensor first.
bool mma_loadable(const Tensor& t) {
  const Shape& st = t.strides();
  return st[3] == 1 && st[0] % 8 == 0 && st[1] % 8 == 0 && st[2] % 8 == 0 &&
         reinterpret_cast<uintptr_t>(t.raw()) % 16 == 0;
}

}  // namespace

Tensor block_sparse_attention_cuda(const Tensor& q, const Tensor& k, const Tensor& v, const BlockSchedule& schedule,
                                   float scale, Tensor* lse) {
  const int64_t B = q.dim(0), Lq = q.dim(1), H = q.dim(2), D = q.dim(3);
  DK_CHECK(D <= kCudaMaxHeadDim, "block_sparse_attention (CUDA): head_dim up to ", kCudaMaxHeadDim, ", got q ", q.str());
  DK_CHECK(B <= 65535 && H <= 65535, "block_sparse_attention (CUDA): batch and heads up to 65535 each, got q ", q.str());
  const int device = q.device().index;
  Tensor out = Tensor::empty(q.shape(), q.dtype(), q.device());
  if (lse) *lse = Tensor::empty({B, H, Lq}, DType::F32, q.device());
  if (q.numel() == 0) return out;

  BlockSparseArgs a;
  a.s = device_schedule(schedule, device);
  DK_CHECK(a.s.q_blocks * ((a.s.q_block + kCudaSparseRows - 1) / kCudaSparseRows) <= INT_MAX,
           "block_sparse_attention (CUDA): too many query blocks (", a.s.q_blocks, " of ", a.s.q_block, ")");
  Tensor qc = q, kc = k, vc = v;  // operands as the kernel reads them
  a.q = operand(q);
  a.k = operand(k);
  a.v = operand(v);
  if (block_sparse_uses_mma(a)) {
    DK_CHECK(D % 8 == 0, "block_sparse_attention (CUDA): F16/BF16 head_dim must be a multiple of 8, got q ", q.str());
    for (Tensor* t : {&qc, &kc, &vc})
      if (!mma_loadable(*t)) *t = t->clone();
    a.q = operand(qc);
    a.k = operand(kc);
    a.v = operand(vc);
  }
  a.out = out.raw();
  a.out_dtype = out.dtype();
  a.lse = lse ? lse->data<float>() : nullptr;
  a.B = B;
  a.H = H;
  a.D = D;
  a.q_tokens = Lq;
  a.scale_log2 = scale * std::numbers::log2e_v<float>;

  int optin = 0;
  DK_CUDA(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
  DK_CHECK(block_sparse_smem_bytes(a) <= optin, "block_sparse_attention (CUDA): head_dim ", D, " in ",
           dtype_name(q.dtype()), " needs ", block_sparse_smem_bytes(a), " bytes of shared memory, cuda:", device,
           " has ", optin);
  launch_block_sparse_attention(a, cuda::stream(q));
  return out;
}

}  // namespace ditkit::attention
#endif
