// Normalisation, softmax and reduction kernels: f32 statistics with warp/block reductions.
#include "core/cuda/common.cuh"

namespace ditkit::cuda {
namespace {

// Threads for a block that walks rows of `n` elements: a warp multiple, at most 256.
int row_threads(int64_t n) {
  int64_t t = (n + 31) / 32 * 32;
  return int(t < 32 ? 32 : t > 256 ? 256 : t);
}

// One block per row; statistics in two passes over the row (mean, then centred variance) to
// avoid the cancellation of E[x^2] - E[x]^2.
__global__ void row_norm_kernel(Indexer<1> rows, RowNormArgs a) {
  __shared__ float shared[32];
  int64_t row = blockIdx.x;
  int64_t off[1];
  rows.offsets(row, off);
  const int64_t base = off[0];
  float mean = 0.0f;
  if (!a.rms) {
    float sum = 0.0f;
    for (int64_t j = threadIdx.x; j < a.D; j += blockDim.x) sum += load(a.x, base + j * a.x_step, a.xt);
    mean = block_reduce(sum, Combine::Sum, shared) / float(a.D);
  }
  float sq = 0.0f;
  for (int64_t j = threadIdx.x; j < a.D; j += blockDim.x) {
    float v = load(a.x, base + j * a.x_step, a.xt) - mean;
    sq += v * v;
  }
  float rstd = rsqrtf(block_reduce(sq, Combine::Sum, shared) / float(a.D) + a.eps);
  for (int64_t j = threadIdx.x; j < a.D; j += blockDim.x) {
    float v = (load(a.x, base + j * a.x_step, a.xt) - mean) * rstd;
    if (a.weight) v *= load(a.weight, j, a.wt);
    if (a.bias) v += load(a.bias, j, a.bt);
    store(a.out, row * a.D + j, a.xt, v);
  }
}

constexpr int kGroupChunk = 16384;  // elements per block of the group statistics

// partial[g * chunks + c] = sum over chunk c of group g of x (mean == null) or of (x - mean[g])^2.
__global__ void group_partial_kernel(const void* x, DType xt, int64_t group_elems, int64_t chunks,
                                     const float* mean, float* partial) {
  __shared__ float shared[32];
  int64_t g = blockIdx.y, c = blockIdx.x;
  int64_t begin = c * kGroupChunk, end = min(group_elems, begin + kGroupChunk);
  float m = mean ? mean[g] : 0.0f, acc = 0.0f;
  for (int64_t i = begin + threadIdx.x; i < end; i += blockDim.x) {
    float v = load(x, g * group_elems + i, xt) - m;
    acc += mean ? v * v : v;
  }
  acc = block_reduce(acc, Combine::Sum, shared);
  if (threadIdx.x == 0) partial[g * chunks + c] = acc;
}

// stat[g] = sum of the group's partials / count, turned into rstd when `eps` applies.
__global__ void group_finish_kernel(const float* partial, int64_t chunks, int64_t group_elems, bool to_rstd,
                                    float eps, float* stat) {
  __shared__ float shared[32];
  float acc = 0.0f;
  for (int64_t c = threadIdx.x; c < chunks; c += blockDim.x) acc += partial[blockIdx.x * chunks + c];
  acc = block_reduce(acc, Combine::Sum, shared) / float(group_elems);
  if (threadIdx.x == 0) stat[blockIdx.x] = to_rstd ? rsqrtf(acc + eps) : acc;
}

__global__ void group_apply_kernel(const void* x, DType xt, int64_t C, int64_t S, int64_t channels_per_group,
                                   const float* mean, const float* rstd, const void* w, DType wt, const void* b,
                                   DType bt, void* out, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    int64_t nc = i / S, c = nc % C, g = (nc / C) * (C / channels_per_group) + c / channels_per_group;
    float v = (load(x, i, xt) - mean[g]) * rstd[g];
    if (w) v *= load(w, c, wt);
    if (b) v += load(b, c, bt);
    store(out, i, xt, v);
  }
}

__global__ void softmax_kernel(Indexer<2> rows, const void* x, DType xt, int64_t x_step, void* out, int64_t out_step,
                               int64_t D) {
  __shared__ float shared[32];
  int64_t off[2];
  rows.offsets(blockIdx.x, off);
  float mx = -INFINITY;
  for (int64_t j = threadIdx.x; j < D; j += blockDim.x) mx = fmaxf(mx, load(x, off[0] + j * x_step, xt));
  mx = block_reduce(mx, Combine::Max, shared);
  float sum = 0.0f;
  for (int64_t j = threadIdx.x; j < D; j += blockDim.x) sum += expf(load(x, off[0] + j * x_step, xt) - mx);
  float inv = 1.0f / block_reduce(sum, Combine::Sum, shared);
  for (int64_t j = threadIdx.x; j < D; j += blockDim.x)
    store(out, off[1] + j * out_step, xt, expf(load(x, off[0] + j * x_step, xt) - mx) * inv);
}

__global__ void reduce_kernel(ReduceOp op, Indexer<1> outer, Indexer<1> inner, int64_t R, const void* x, DType xt,
                              void* out, DType ot) {
  __shared__ float shared[32];
  int64_t o = blockIdx.x, base[1], in[1];
  outer.offsets(o, base);
  Combine c = op == ReduceOp::Max ? Combine::Max : op == ReduceOp::Min ? Combine::Min : Combine::Sum;
  float acc = c == Combine::Sum ? 0.0f : c == Combine::Max ? -INFINITY : INFINITY;
  for (int64_t j = threadIdx.x; j < R; j += blockDim.x) {
    inner.offsets(j, in);
    float v = load(x, base[0] + in[0], xt);
    acc = combine(acc, v, c);
  }
  acc = block_reduce(acc, c, shared);
  if (threadIdx.x == 0) store(out, o, ot, op == ReduceOp::Mean ? acc / float(R) : acc);
}

}  // namespace

void launch_row_norm(const Indexer<1>& rows, const RowNormArgs& a, cudaStream_t s) {
  row_norm_kernel<<<unsigned(a.rows), row_threads(a.D), 0, s>>>(rows, a);
  check_launch("row_norm_kernel");
}

int64_t group_norm_chunks(int64_t group_elems) { return (group_elems + kGroupChunk - 1) / kGroupChunk; }

void launch_group_norm(const void* x, DType xt, int64_t N, int64_t C, int64_t S, int64_t G, const void* weight,
                       DType wt, const void* bias, DType bt, float eps, void* out, float* scratch, cudaStream_t s) {
  int64_t groups = N * G, group_elems = C / G * S, chunks = group_norm_chunks(group_elems);
  float* partial = scratch;
  float* mean = scratch + groups * chunks;
  float* rstd = mean + groups;
  dim3 grid{unsigned(chunks), unsigned(groups)};
  group_partial_kernel<<<grid, 256, 0, s>>>(x, xt, group_elems, chunks, nullptr, partial);
  group_finish_kernel<<<unsigned(groups), 256, 0, s>>>(partial, chunks, group_elems, false, eps, mean);
  group_partial_kernel<<<grid, 256, 0, s>>>(x, xt, group_elems, chunks, mean, partial);
  group_finish_kernel<<<unsigned(groups), 256, 0, s>>>(partial, chunks, group_elems, true, eps, rstd);
  int64_t n = N * C * S;
  group_apply_kernel<<<grid_for(n), 256, 0, s>>>(x, xt, C, S, C / G, mean, rstd, weight, wt, bias, bt, out, n);
  check_launch("group_norm kernels");
}

void launch_softmax(const Indexer<2>& rows, int64_t nrows, const void* x, DType xt, int64_t x_step, void* out,
                    int64_t out_step, int64_t D, cudaStream_t s) {
  softmax_kernel<<<unsigned(nrows), row_threads(D), 0, s>>>(rows, x, xt, x_step, out, out_step, D);
  check_launch("softmax_kernel");
}

void launch_reduce(ReduceOp op, const Indexer<1>& outer, int64_t nout, const Indexer<1>& inner, int64_t R,
                   const void* x, DType xt, void* out, DType ot, cudaStream_t s) {
  reduce_kernel<<<unsigned(nout), row_threads(R), 0, s>>>(op, outer, inner, R, x, xt, out, ot);
  check_launch("reduce_kernel");
}

}  // namespace ditkit::cuda
