// Gather and resampling kernels: embedding lookup, resize, im2col.
#include "core/cuda/common.cuh"

namespace ditkit::cuda {
namespace {

#define DK_GRID_STRIDE(i, n) \
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < (n); i += int64_t(gridDim.x) * blockDim.x)

__global__ void embedding_kernel(const void* table, DType tt, int64_t t_row, int64_t t_col, int64_t V, int64_t D,
                                 const void* ids, DType it, void* out, DType ot, int64_t n,
                                 unsigned long long* bad) {
  DK_GRID_STRIDE(i, n) {
    int64_t m = i / D, d = i % D, id = load_int(ids, m, it);
    if (id < 0 || id >= V) {
      atomicMin(bad, (unsigned long long)m);
      store(out, i, ot, 0.0f);
    } else {
      store(out, i, ot, load(table, id * t_row + d * t_col, tt));
    }
  }
}

// Source rows/columns exactly as torch's upsample kernels compute them (float scale in/out).
__device__ __forceinline__ int64_t nearest_src(ResizeMode mode, int64_t dst, int64_t in, float scale) {
  float pos = mode == ResizeMode::NearestExact ? (float(dst) + 0.5f) * scale : float(dst) * scale;
  int64_t src = int64_t(floorf(pos));
  return src < in - 1 ? src : in - 1;
}

__device__ __forceinline__ void linear_src(int64_t dst, int64_t in, float scale, int64_t& i0, int64_t& i1,
                                           float& l1) {
  float src = scale * (float(dst) + 0.5f) - 0.5f;
  if (src < 0.0f) src = 0.0f;
  i0 = int64_t(src);
  i1 = i0 + (i0 < in - 1 ? 1 : 0);
  l1 = src - float(i0);
}

struct ResizeShape {
  int64_t shape[4], xs[4], oh, ow;
};

__global__ void resize_kernel(ResizeMode mode, const void* x, DType xt, ResizeShape r, void* out, int64_t n) {
  const int64_t H = r.shape[2], W = r.shape[3];
  const float sh = float(H) / float(r.oh), sw = float(W) / float(r.ow);
  DK_GRID_STRIDE(i, n) {
    int64_t ox = i % r.ow, oy = (i / r.ow) % r.oh, nc = i / (r.ow * r.oh);
    int64_t base = (nc / r.shape[1]) * r.xs[0] + (nc % r.shape[1]) * r.xs[1];
    float v;
    if (mode == ResizeMode::Bilinear) {
      int64_t y0, y1, x0, x1;
      float ly, lx;
      linear_src(oy, H, sh, y0, y1, ly);
      linear_src(ox, W, sw, x0, x1, lx);
      auto at = [&](int64_t y, int64_t xx) { return load(x, base + y * r.xs[2] + xx * r.xs[3], xt); };
      v = (1.0f - ly) * ((1.0f - lx) * at(y0, x0) + lx * at(y0, x1)) +
          ly * ((1.0f - lx) * at(y1, x0) + lx * at(y1, x1));
    } else {
      v = load(x, base + nearest_src(mode, oy, H, sh) * r.xs[2] + nearest_src(mode, ox, W, sw) * r.xs[3], xt);
    }
    store(out, i, xt, v);
  }
}

__global__ void im2col_kernel(Im2ColArgs a, const void* x, DType xt, void* cols, int64_t n) {
  const int64_t K = a.k[0] * a.k[1] * a.k[2];
  DK_GRID_STRIDE(i, n) {
    int64_t col = a.first + i % a.count, row = i / a.count;
    int64_t c = row / K, kk = row % K;
    int64_t kpos[3] = {kk / (a.k[1] * a.k[2]), (kk / a.k[2]) % a.k[1], kk % a.k[2]};
    int64_t opos[3] = {col / (a.out[1] * a.out[2]), (col / a.out[2]) % a.out[1], col % a.out[2]};
    int64_t src = c, inside = 1;
    for (int d = 0; d < 3; ++d) {
      int64_t p = opos[d] * a.stride[d] - a.pad[d] + kpos[d] * a.dilation[d];
      inside &= p >= 0 && p < a.in[d];
      src = src * a.in[d] + p;
    }
    store(cols, i, xt, inside ? load(x, src, xt) : 0.0f);
  }
}

}  // namespace

void launch_embedding(const void* table, DType tt, int64_t t_row, int64_t t_col, int64_t V, int64_t D,
                      const void* ids, DType it, int64_t M, void* out, DType ot, long long* bad, cudaStream_t s) {
  int64_t n = M * D;
  embedding_kernel<<<grid_for(n), 256, 0, s>>>(table, tt, t_row, t_col, V, D, ids, it, out, ot, n,
                                               reinterpret_cast<unsigned long long*>(bad));
  check_launch("embedding_kernel");
}

void launch_resize(ResizeMode mode, const void* x, DType xt, const int64_t (&shape)[4], const int64_t (&xs)[4],
                   int64_t oh, int64_t ow, void* out, cudaStream_t s) {
  ResizeShape r{};
  for (int d = 0; d < 4; ++d) {
    r.shape[d] = shape[d];
    r.xs[d] = xs[d];
  }
  r.oh = oh;
  r.ow = ow;
  int64_t n = shape[0] * shape[1] * oh * ow;
  resize_kernel<<<grid_for(n), 256, 0, s>>>(mode, x, xt, r, out, n);
  check_launch("resize_kernel");
}

void launch_im2col(const Im2ColArgs& a, const void* x, DType xt, void* cols, cudaStream_t s) {
  int64_t n = a.C * a.k[0] * a.k[1] * a.k[2] * a.count;
  im2col_kernel<<<grid_for(n), 256, 0, s>>>(a, x, xt, cols, n);
  check_launch("im2col_kernel");
}

}  // namespace ditkit::cuda
