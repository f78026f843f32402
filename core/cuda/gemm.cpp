// linear and matmul through cuBLASLt: f32 accumulation (CUBLAS_COMPUTE_32F), tensor cores for
// f16/bf16, strided batches with stride 0 for broadcast batch dims.
//
// Dtypes: the GEMM runs in the activation's dtype G (f32, f16 or bf16); a weight or second
// operand of another dtype (fp8, Q8_0, the other 16-bit type) is converted to G into a
// scratch tensor per call. f32 activations thus get a true f32 GEMM (no TF32): slower than
// the bf16 path, but it matches the CPU reference to f32 rounding, which is what f32
// activations are for here; the fast path is bf16 activations with bf16 weights.
#include <cublasLt.h>

#include <algorithm>
#include <map>
#include <mutex>
#include <optional>
#include <vector>

#include "core/cuda/gemm_plan.h"
#include "core/cuda/host.h"

namespace ditkit::cuda {
namespace {

void check_lt(cublasStatus_t st, const char* call) {
  DK_CHECK(st == CUBLAS_STATUS_SUCCESS, "cuBLASLt call ", call, " failed: ", cublasLtGetStatusString(st));
}
#define DK_LT(call) check_lt((call), #call)

constexpr size_t kWorkspaceBytes = size_t(32) << 20;

struct DeviceGemm {
  cublasLtHandle_t handle = nullptr;
  std::shared_ptr<void> workspace;
};

// Handle and workspace per device, created on first use and kept for the process.
DeviceGemm& device_gemm(int device) {
  static std::mutex mu;
  static std::map<int, DeviceGemm> all;
  std::lock_guard<std::mutex> lock(mu);
  DeviceGemm& g = all[device];
  if (!g.handle) {
    stream(device);  // makes it current
    DK_LT(cublasLtCreate(&g.handle));
    g.workspace = alloc(device, kWorkspaceBytes);
  }
  return g;
}

cudaDataType_t cuda_type(DType t) {
  switch (t) {
    case DType::F32: return CUDA_R_32F;
    case DType::F16: return CUDA_R_16F;
    case DType::BF16: return CUDA_R_16BF;
    default: fail("CUDA GEMM: unsupported dtype ", dtype_name(t));
  }
}

// Largest power of two (up to 256) dividing the address and every batch step of an operand.
uint32_t alignment(const void* p, int64_t batch_stride_bytes) {
  uint64_t v = uint64_t(reinterpret_cast<uintptr_t>(p)) | uint64_t(batch_stride_bytes) | 256u;
  return uint32_t(v & (~v + 1));
}

struct LtDeleter {
  void operator()(cublasLtMatmulDescOpaque_t* p) const { cublasLtMatmulDescDestroy(p); }
  void operator()(cublasLtMatrixLayoutOpaque_t* p) const { cublasLtMatrixLayoutDestroy(p); }
  void operator()(cublasLtMatmulPreferenceOpaque_t* p) const { cublasLtMatmulPreferenceDestroy(p); }
};
using MatmulDesc = std::unique_ptr<cublasLtMatmulDescOpaque_t, LtDeleter>;
using Layout = std::unique_ptr<cublasLtMatrixLayoutOpaque_t, LtDeleter>;
using Preference = std::unique_ptr<cublasLtMatmulPreferenceOpaque_t, LtDeleter>;

Layout make_layout(cudaDataType_t t, int64_t rows, int64_t cols, int64_t ld, int64_t batch, int64_t stride) {
  cublasLtMatrixLayout_t l = nullptr;
  DK_LT(cublasLtMatrixLayoutCreate(&l, t, uint64_t(rows), uint64_t(cols), ld));
  Layout out(l);
  if (batch > 1) {
    int32_t count = int32_t(batch);
    DK_LT(cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &count, sizeof(count)));
    DK_LT(cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &stride, sizeof(stride)));
  }
  return out;
}

// Runs g on the device's stream; returns false (having done nothing) when cuBLASLt has no
// algorithm with the bias epilogue, so the caller adds the bias itself.
bool run_gemm(const GemmCall& g, int device) {
  DK_CHECK(g.batch <= INT32_MAX, "CUDA GEMM: batch count ", g.batch, " too large");
  DeviceGemm& dg = device_gemm(device);
  cudaStream_t s = stream(device);
  cudaDataType_t t = cuda_type(g.type);
  size_t es = dtype_size(g.type);

  cublasLtMatmulDesc_t raw_desc = nullptr;
  DK_LT(cublasLtMatmulDescCreate(&raw_desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  MatmulDesc desc(raw_desc);
  cublasOperation_t op_a = g.a.transpose ? CUBLAS_OP_T : CUBLAS_OP_N, op_b = g.b.transpose ? CUBLAS_OP_T : CUBLAS_OP_N;
  DK_LT(cublasLtMatmulDescSetAttribute(raw_desc, CUBLASLT_MATMUL_DESC_TRANSA, &op_a, sizeof(op_a)));
  DK_LT(cublasLtMatmulDescSetAttribute(raw_desc, CUBLASLT_MATMUL_DESC_TRANSB, &op_b, sizeof(op_b)));
  if (g.bias) {
    cublasLtEpilogue_t epi = CUBLASLT_EPILOGUE_BIAS;
    DK_LT(cublasLtMatmulDescSetAttribute(raw_desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof(epi)));
    DK_LT(cublasLtMatmulDescSetAttribute(raw_desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &g.bias, sizeof(g.bias)));
  }
  Layout la = make_layout(t, g.a.rows, g.a.cols, g.a.ld, g.batch, g.a.batch_stride);
  Layout lb = make_layout(t, g.b.rows, g.b.cols, g.b.ld, g.batch, g.b.batch_stride);
  Layout ld = make_layout(t, g.m, g.n, g.m, g.batch, g.d_stride);

  uint32_t align_a = alignment(g.a.ptr, g.a.batch_stride * int64_t(es));
  uint32_t align_b = alignment(g.b.ptr, g.b.batch_stride * int64_t(es));
  uint32_t align_d = alignment(g.d, g.d_stride * int64_t(es));
  // Heuristic results are cached: the query costs more than a small GEMM.
  const std::vector<int64_t> key = {int64_t(g.type), device, g.m, g.n, g.k, g.batch, int64_t(g.a.transpose), g.a.ld,
                                    g.a.batch_stride, int64_t(g.b.transpose), g.b.ld, g.b.batch_stride, g.d_stride,
                                    int64_t(g.bias != nullptr), align_a, align_b, align_d};
  static std::mutex mu;
  static std::map<std::vector<int64_t>, std::optional<cublasLtMatmulAlgo_t>> algos;
  std::optional<cublasLtMatmulAlgo_t> algo;
  bool cached = false;
  {
    std::lock_guard<std::mutex> lock(mu);
    auto it = algos.find(key);
    cached = it != algos.end();
    if (cached) algo = it->second;
  }
  if (!cached) {
    cublasLtMatmulPreference_t raw_pref = nullptr;
    DK_LT(cublasLtMatmulPreferenceCreate(&raw_pref));
    Preference pref(raw_pref);
    uint64_t ws = kWorkspaceBytes;
    DK_LT(cublasLtMatmulPreferenceSetAttribute(raw_pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof(ws)));
    DK_LT(cublasLtMatmulPreferenceSetAttribute(raw_pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &align_a,
                                               sizeof(align_a)));
    DK_LT(cublasLtMatmulPreferenceSetAttribute(raw_pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &align_b,
                                               sizeof(align_b)));
    DK_LT(cublasLtMatmulPreferenceSetAttribute(raw_pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &align_d,
                                               sizeof(align_d)));
    DK_LT(cublasLtMatmulPreferenceSetAttribute(raw_pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &align_d,
                                               sizeof(align_d)));
    cublasLtMatmulHeuristicResult_t result{};
    int found = 0;
    cublasStatus_t st = cublasLtMatmulAlgoGetHeuristic(dg.handle, raw_desc, la.get(), lb.get(), ld.get(), ld.get(),
                                                       raw_pref, 1, &result, &found);
    if (st == CUBLAS_STATUS_SUCCESS && found > 0) algo = result.algo;
    std::lock_guard<std::mutex> lock(mu);
    algos[key] = algo;
  }
  if (!algo) {
    if (g.bias) return false;
    fail("cuBLASLt has no algorithm for a ", dtype_name(g.type), " GEMM m=", g.m, " n=", g.n, " k=", g.k,
         " batch=", g.batch);
  }
  const float alpha = 1.0f, beta = 0.0f;
  DK_LT(cublasLtMatmul(dg.handle, raw_desc, &alpha, g.a.ptr, la.get(), g.b.ptr, lb.get(), &beta, g.d, ld.get(), g.d,
                       ld.get(), &*algo, dg.workspace.get(), kWorkspaceBytes, s));
  return true;
}

// Runs g, adding the bias tensor `bias` (already dtype g.type, dense) afterwards when the
// epilogue is unavailable. `out` is the tensor g.d points into.
void gemm_with_bias(GemmCall g, Tensor& out, const Tensor& bias, int device) {
  g.bias = bias.defined() ? bias.raw() : nullptr;
  if (run_gemm(g, device)) return;
  g.bias = nullptr;
  run_gemm(g, device);
  Shape bshape(size_t(out.ndim()), 1);
  bshape.back() = bias.numel();
  Tensor with_bias = cuda::binary(ops::Binary::Add, out, bias.reshape(bshape));
  copy_(out, with_bias);
}

DType gemm_type(const Tensor& x, const char* op) {
  DType t = x.dtype();
  DK_CHECK(t == DType::F32 || t == DType::F16 || t == DType::BF16, "CUDA ", op,
           ": activations must be F32/F16/BF16, got ", x.str());
  return t;
}

}  // namespace

std::optional<int64_t> merged_stride(const Shape& shape, const Shape& strides, size_t begin, size_t end) {
  std::optional<int64_t> inner;
  int64_t span = 0;
  for (size_t i = end; i-- > begin;) {
    if (shape[i] == 1) continue;
    if (inner && strides[i] != span) return std::nullopt;
    if (!inner) inner = strides[i];
    span = strides[i] * shape[i];
  }
  return inner.value_or(0);
}

namespace {

// cuBLAS operand for L^T, where L is a logical R x C matrix at element strides (sr, sc).
// None when neither stride is 1 (or the leading dim would be too small).
std::optional<GemmOperand> transposed(const void* ptr, int64_t R, int64_t C, int64_t sr, int64_t sc) {
  if (sc == 1 || C == 1) {
    // L^T(c, r) at c + r * sr: column-major C x R.
    int64_t ld = R == 1 ? C : sr;
    if (ld >= std::max<int64_t>(C, 1)) return GemmOperand{ptr, false, C, R, ld, 0};
  }
  if (sr == 1 || R == 1) {
    // L^T(c, r) at r + c * sc: column-major R x C, transposed.
    int64_t ld = C == 1 ? R : sc;
    if (ld >= std::max<int64_t>(R, 1)) return GemmOperand{ptr, true, R, C, ld, 0};
  }
  return std::nullopt;
}

}  // namespace

std::optional<std::vector<GemmCall>> plan_gemm(DType t, const Shape& batch, const MatrixBatch& a, const MatrixBatch& b,
                                               void* out) {
  const int64_t M = a.rows, K = a.cols, N = b.cols;
  const size_t nb = batch.size(), es = dtype_size(t);
  size_t split = nb;
  while (split > 0 && merged_stride(batch, a.batch_strides, split - 1, nb) &&
         merged_stride(batch, b.batch_strides, split - 1, nb))
    --split;
  int64_t inner_batch = 1;
  for (size_t i = split; i < nb; ++i) inner_batch *= batch[i];
  const Shape outer(batch.begin(), batch.begin() + int64_t(split));
  const int64_t a_bs = *merged_stride(batch, a.batch_strides, split, nb);
  const int64_t b_bs = *merged_stride(batch, b.batch_strides, split, nb);
  std::vector<GemmCall> calls;
  for (int64_t o = 0; o < shape_numel(outer); ++o) {
    int64_t a_off = 0, b_off = 0, rem = o;
    for (size_t i = split; i-- > 0;) {
      int64_t idx = rem % outer[i];
      rem /= outer[i];
      a_off += idx * a.batch_strides[i];
      b_off += idx * b.batch_strides[i];
    }
    // out^T [N, M] = b^T [N, K] @ a^T [K, M].
    std::optional<GemmOperand> ca = transposed(static_cast<const char*>(b.ptr) + b_off * int64_t(es), K, N, b.sr, b.sc);
    std::optional<GemmOperand> cb = transposed(static_cast<const char*>(a.ptr) + a_off * int64_t(es), M, K, a.sr, a.sc);
    if (!ca || !cb) return std::nullopt;
    ca->batch_stride = b_bs;
    cb->batch_stride = a_bs;
    void* d = static_cast<char*>(out) + o * inner_batch * M * N * int64_t(es);
    calls.push_back(GemmCall{t, N, M, K, inner_batch, *ca, *cb, d, M * N, nullptr});
  }
  return calls;
}

Tensor linear(const Tensor& x, const Tensor& w, const Tensor& bias) {
  DType t = gemm_type(x, "linear");
  int64_t K = x.dim(-1), N = w.dim(0), M = x.numel() / std::max<int64_t>(K, 1);
  Shape out_shape = x.shape();
  out_shape.back() = N;
  Tensor out = Tensor::empty(out_shape, t, x.device());
  if (out.numel() == 0) return out;
  if (K == 0) {
    fill_(out, 0.0f);
    return bias.defined() ? cuda::binary(ops::Binary::Add, out, bias) : out;
  }
  // out = x [M, K] @ w^T [K, N] on the strided operands; where a layout has no unit stride (or
  // x's leading dims do not merge into rows) the operands are made dense and planned again.
  Tensor xr = x, wg = w.dtype() == t ? w : ops::cast(w, t);
  Tensor bg = bias.defined() ? bias.to(t).contiguous() : Tensor();
  auto plan_for = [&]() -> std::optional<std::vector<GemmCall>> {
    std::optional<int64_t> row_stride = merged_stride(xr.shape(), xr.strides(), 0, size_t(xr.ndim() - 1));
    if (!row_stride) return std::nullopt;
    MatrixBatch a{xr.raw(), {}, M, K, *row_stride, xr.strides().back()};
    MatrixBatch b{wg.raw(), {}, K, N, wg.strides()[1], wg.strides()[0]};
    return plan_gemm(t, {}, a, b, out.raw());
  };
  std::optional<std::vector<GemmCall>> plan = plan_for();
  if (!plan) {
    xr = xr.contiguous();
    wg = wg.contiguous();
    plan = plan_for();
  }
  DK_CHECK(plan && plan->size() == 1, "CUDA linear: unsupported layout of ", x.str(), " x ", w.str());
  GemmCall g = plan->front();
  gemm_with_bias(g, out, bg, x.device().index);
  return out;
}

Tensor matmul(const Tensor& a_in, const Tensor& b_in, bool ta, bool tb) {
  DType t = gemm_type(a_in, "matmul");
  Tensor a = a_in, b = b_in.dtype() == t ? b_in : ops::cast(b_in, t);
  int64_t M = ta ? a.dim(-1) : a.dim(-2), K = ta ? a.dim(-2) : a.dim(-1), N = tb ? b.dim(-2) : b.dim(-1);
  Shape batch = ops::broadcast_shapes(Shape(a.shape().begin(), a.shape().end() - 2),
                                      Shape(b.shape().begin(), b.shape().end() - 2));
  Shape out_shape = batch;
  out_shape.push_back(M);
  out_shape.push_back(N);
  Tensor out = Tensor::empty(out_shape, t, a.device());
  if (out.numel() == 0) return out;
  if (K == 0) {
    fill_(out, 0.0f);
    return out;
  }
  // Logical op(x) of an operand broadcast to the batch shape.
  auto batch_of = [&](const Tensor& x, bool trans) {
    Shape s = batch;
    s.push_back(x.dim(-2));
    s.push_back(x.dim(-1));
    Tensor e = x.expand(s);
    size_t nb = batch.size();
    MatrixBatch m{e.raw(), Shape(e.strides().begin(), e.strides().begin() + int64_t(nb)), e.dim(-2), e.dim(-1),
                  e.strides()[nb], e.strides()[nb + 1]};
    if (trans) {
      std::swap(m.rows, m.cols);
      std::swap(m.sr, m.sc);
    }
    return m;
  };
  // Matrices without a unit stride are made dense and planned again.
  std::optional<std::vector<GemmCall>> plan = plan_gemm(t, batch, batch_of(a, ta), batch_of(b, tb), out.raw());
  if (!plan) {
    a = a.contiguous();
    b = b.contiguous();
    plan = plan_gemm(t, batch, batch_of(a, ta), batch_of(b, tb), out.raw());
  }
  DK_CHECK(plan, "CUDA matmul: unsupported layout of ", a_in.str(), " x ", b_in.str());
  for (const GemmCall& g : *plan) run_gemm(g, a.device().index);
  return out;
}

}  // namespace ditkit::cuda
