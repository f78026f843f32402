// Elementwise kernels: strided copy with dtype conversion, fill, pointwise math, rope.
#include "core/cuda/common.cuh"

namespace ditkit::cuda {
namespace {

#define DK_GRID_STRIDE(i, n) \
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < (n); i += int64_t(gridDim.x) * blockDim.x)

// Same dtype: moves raw elements, no conversion.
template <typename Word>
__global__ void copy_raw_kernel(Indexer<2> ix, Word* dst, const Word* src, int64_t n) {
  DK_GRID_STRIDE(i, n) {
    int64_t off[2];
    ix.offsets(i, off);
    dst[off[0]] = src[off[1]];
  }
}

// Converting copy; integer pairs go through int64 so large ids stay exact.
template <bool kInt>
__global__ void convert_kernel(Indexer<2> ix, void* dst, DType dt, const void* src, DType st, int64_t n) {
  DK_GRID_STRIDE(i, n) {
    int64_t off[2];
    ix.offsets(i, off);
    if (kInt) {
      store_int(dst, off[0], dt, load_int(src, off[1], st));
    } else {
      store(dst, off[0], dt, load(src, off[1], st));
    }
  }
}

__global__ void fill_kernel(Indexer<1> ix, void* dst, DType dt, float value, int64_t n) {
  DK_GRID_STRIDE(i, n) {
    int64_t off[1];
    ix.offsets(i, off);
    store(dst, off[0], dt, value);
  }
}

__device__ __forceinline__ float sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }

__device__ float unary_op(UnaryOp op, float x) {
  switch (op) {
    case UnaryOp::Neg: return -x;
    case UnaryOp::Abs: return fabsf(x);
    case UnaryOp::Exp: return expf(x);
    case UnaryOp::Log: return logf(x);
    case UnaryOp::Sqrt: return sqrtf(x);
    case UnaryOp::Rsqrt: return 1.0f / sqrtf(x);  // rsqrtf is approximate
    case UnaryOp::Square: return x * x;
    case UnaryOp::Sin: return sinf(x);
    case UnaryOp::Cos: return cosf(x);
    case UnaryOp::Tanh: return tanhf(x);
    case UnaryOp::Sigmoid: return sigmoid(x);
    case UnaryOp::Relu: return x > 0.0f ? x : 0.0f;
    case UnaryOp::Silu: return x * sigmoid(x);
    case UnaryOp::GeluErf: return x * 0.5f * (1.0f + erff(x * 0.70710678118654752f));
    case UnaryOp::GeluTanh: return x * 0.5f * (1.0f + tanhf(0.79788456080286536f * (x + 0.044715f * x * x * x)));
    case UnaryOp::QuickGelu: return x * sigmoid(1.702f * x);
  }
  return x;
}

__device__ float binary_op(BinaryOp op, float a, float b) {
  switch (op) {
    case BinaryOp::Add: return a + b;
    case BinaryOp::Sub: return a - b;
    case BinaryOp::Mul: return a * b;
    case BinaryOp::Div: return a / b;
    // NaN propagates, as in torch.maximum/minimum.
    case BinaryOp::Max: return isnan(a) || isnan(b) ? a + b : fmaxf(a, b);
    case BinaryOp::Min: return isnan(a) || isnan(b) ? a + b : fminf(a, b);
    case BinaryOp::Pow: return powf(a, b);
  }
  return a;
}

template <int N>
__global__ void pointwise_kernel(Indexer<N> ix, PointwiseArgs a, int64_t n) {
  DK_GRID_STRIDE(i, n) {
    int64_t off[N];
    ix.offsets(i, off);
    float v[3] = {0.0f, 0.0f, 0.0f};
#pragma unroll
    for (int k = 0; k < N; ++k) v[k] = load(a.in[k], off[k], a.in_t[k]);
    float r = v[0];
    switch (a.kind) {
      case PointwiseKind::Unary: r = unary_op(a.unary, v[0]); break;
      case PointwiseKind::Binary: r = binary_op(a.binary, v[0], v[1]); break;
      case PointwiseKind::Affine: r = v[0] * a.scale + a.shift; break;
      case PointwiseKind::Modulate: r = v[0] * (1.0f + v[1]) + v[2]; break;
    }
    store(a.out, i, a.out_t, r);
  }
}

// One thread per (even, odd) pair of the last dim.
__global__ void rope_kernel(Indexer<3> ix, const void* x, DType xt, int64_t x_step, const void* cos_, DType ct,
                            const void* sin_, DType snt, void* out, int64_t pairs) {
  DK_GRID_STRIDE(p, pairs) {
    int64_t off[3];
    ix.offsets(p, off);
    float x0 = load(x, off[0], xt), x1 = load(x, off[0] + x_step, xt);
    float c = load(cos_, off[1], ct), s = load(sin_, off[2], snt);
    store(out, 2 * p, xt, x0 * c - x1 * s);
    store(out, 2 * p + 1, xt, x0 * s + x1 * c);
  }
}

bool is_int(DType t) { return !is_floating(t); }

}  // namespace

void launch_copy(const Indexer<2>& ix, void* dst, DType dt, const void* src, DType st, int64_t n, cudaStream_t s) {
  if (dt == st) {
    switch (dtype_size(dt)) {
      case 1: copy_raw_kernel<<<grid_for(n), 256, 0, s>>>(ix, (uint8_t*)dst, (const uint8_t*)src, n); break;
      case 2: copy_raw_kernel<<<grid_for(n), 256, 0, s>>>(ix, (uint16_t*)dst, (const uint16_t*)src, n); break;
      case 4: copy_raw_kernel<<<grid_for(n), 256, 0, s>>>(ix, (uint32_t*)dst, (const uint32_t*)src, n); break;
      default: copy_raw_kernel<<<grid_for(n), 256, 0, s>>>(ix, (uint64_t*)dst, (const uint64_t*)src, n); break;
    }
    check_launch("copy_raw_kernel");
  } else if (is_int(dt) && is_int(st)) {
    convert_kernel<true><<<grid_for(n), 256, 0, s>>>(ix, dst, dt, src, st, n);
    check_launch("convert_kernel");
  } else {
    convert_kernel<false><<<grid_for(n), 256, 0, s>>>(ix, dst, dt, src, st, n);
    check_launch("convert_kernel");
  }
}

void launch_fill(const Indexer<1>& ix, void* dst, DType dt, float value, int64_t n, cudaStream_t s) {
  fill_kernel<<<grid_for(n), 256, 0, s>>>(ix, dst, dt, value, n);
  check_launch("fill_kernel");
}

template <int N>
void launch_pointwise(const Indexer<N>& ix, const PointwiseArgs& a, int64_t n, cudaStream_t s) {
  pointwise_kernel<N><<<grid_for(n), 256, 0, s>>>(ix, a, n);
  check_launch("pointwise_kernel");
}
template void launch_pointwise<1>(const Indexer<1>&, const PointwiseArgs&, int64_t, cudaStream_t);
template void launch_pointwise<2>(const Indexer<2>&, const PointwiseArgs&, int64_t, cudaStream_t);
template void launch_pointwise<3>(const Indexer<3>&, const PointwiseArgs&, int64_t, cudaStream_t);

void launch_rope(const Indexer<3>& ix, const void* x, DType xt, int64_t x_step, const void* cos, DType ct,
                 const void* sin, DType snt, void* out, int64_t pairs, cudaStream_t s) {
  rope_kernel<<<grid_for(pairs), 256, 0, s>>>(ix, x, xt, x_step, cos, ct, sin, snt, out, pairs);
  check_launch("rope_kernel");
}

}  // namespace ditkit::cuda
