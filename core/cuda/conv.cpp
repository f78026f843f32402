// conv2d/conv3d: cuDNN's convolution forward (NCHW / NCDHW, f32 accumulation), or im2col +
// cuBLASLt GEMM when the build has no cuDNN or cuDNN has no algorithm for the case.
// Asymmetric (causal) padding is applied to the input explicitly; the symmetric part goes to
// the convolution.
#ifdef DITKIT_WITH_CUDNN
#include <cudnn.h>

#include <map>
#include <mutex>
#include <optional>
#endif

#include <algorithm>

#include "core/cuda/host.h"

namespace ditkit::cuda {
namespace {

// Spatial parameters of a 2-D (nsp = 2) or 3-D (nsp = 3) convolution.
struct ConvParams {
  int nsp = 2;
  int64_t stride[3] = {1, 1, 1}, pad[3] = {0, 0, 0}, dilation[3] = {1, 1, 1}, groups = 1;
};

Shape conv_out_shape(const Tensor& x, const Tensor& w, const ConvParams& p) {
  Shape out = {x.dim(0), w.dim(0)};
  for (int d = 0; d < p.nsp; ++d) {
    int64_t span = p.dilation[d] * (w.dim(2 + d) - 1) + 1, padded = x.dim(2 + d) + 2 * p.pad[d];
    DK_CHECK(p.stride[d] > 0 && p.dilation[d] > 0, "conv: stride and dilation must be positive");
    DK_CHECK(padded >= span, "conv: padded input size ", padded, " is smaller than the kernel extent ", span,
             " (input ", x.str(), ", weight ", w.str(), ")");
    out.push_back((padded - span) / p.stride[d] + 1);
  }
  return out;
}

// Per image, group and chunk of output positions: cols = im2col(x[n, group]) [C/g * k, chunk];
// out[n, group, :, chunk] = w[group] @ cols.
void im2col_forward(const Tensor& x, const Tensor& w, Tensor& out, const ConvParams& p) {
  int64_t N = x.dim(0), C = x.dim(1), O = w.dim(0), G = p.groups, Cg = C / G, Og = O / G;
  Im2ColArgs a;
  a.C = Cg;
  int first = 3 - p.nsp;  // 2-D convs use a depth of 1
  for (int d = 0; d < 3; ++d) {
    bool used = d >= first;
    a.in[d] = used ? x.dim(2 + d - first) : 1;
    a.k[d] = used ? w.dim(2 + d - first) : 1;
    a.out[d] = used ? out.dim(2 + d - first) : 1;
    a.stride[d] = used ? p.stride[d - first] : 1;
    a.pad[d] = used ? p.pad[d - first] : 0;
    a.dilation[d] = used ? p.dilation[d - first] : 1;
  }
  int64_t K = Cg * a.k[0] * a.k[1] * a.k[2], L = a.out[0] * a.out[1] * a.out[2];
  // Output positions in chunks, so the unfolded columns stay within ~64M elements.
  int64_t chunk = std::clamp<int64_t>((int64_t(1) << 26) / K, 1, L);
  Tensor cols = Tensor::empty({K, chunk}, x.dtype(), x.device());
  Tensor w2 = w.reshape({G, Og, K});
  Tensor out3 = out.reshape({N, G, Og, L});
  for (int64_t n = 0; n < N; ++n) {
    for (int64_t g = 0; g < G; ++g) {
      Tensor image = x.select(0, n).narrow(0, g * Cg, Cg);
      for (a.first = 0; a.first < L; a.first += chunk) {
        a.count = std::min(chunk, L - a.first);
        // A dense [K, count] view of the scratch.
        Tensor part_cols = Tensor::from_blob(cols.raw(), {K, a.count}, x.dtype(), x.device(), cols.storage()->owner);
        launch_im2col(a, image.raw(), x.dtype(), part_cols.raw(), stream(x));
        Tensor part = out3.select(0, n).select(0, g).narrow(1, a.first, a.count);
        copy_(part, matmul(w2.select(0, g), part_cols, false, false));
      }
    }
  }
}

#ifdef DITKIT_WITH_CUDNN

void check_cudnn(cudnnStatus_t st, const char* call) {
  DK_CHECK(st == CUDNN_STATUS_SUCCESS, "cuDNN call ", call, " failed: ", cudnnGetErrorString(st));
}
#define DK_CUDNN(call) check_cudnn((call), #call)

cudnnHandle_t cudnn_handle(int device) {
  static std::mutex mu;
  static std::map<int, cudnnHandle_t> handles;
  std::lock_guard<std::mutex> lock(mu);
  cudnnHandle_t& h = handles[device];
  if (!h) {
    stream(device);  // makes it current
    DK_CUDNN(cudnnCreate(&h));
  }
  return h;
}

cudnnDataType_t cudnn_type(DType t) {
  return t == DType::F32 ? CUDNN_DATA_FLOAT : t == DType::F16 ? CUDNN_DATA_HALF : CUDNN_DATA_BFLOAT16;
}

std::vector<int> int_dims(const Shape& s, const char* what) {
  std::vector<int> out;
  for (int64_t v : s) {
    DK_CHECK(v <= INT32_MAX, "cuDNN conv: ", what, " dim ", v, " exceeds int32");
    out.push_back(int(v));
  }
  return out;
}

// RAII holders of the cuDNN descriptors of one call.
struct Descriptors {
  cudnnTensorDescriptor_t x = nullptr, y = nullptr;
  cudnnFilterDescriptor_t w = nullptr;
  cudnnConvolutionDescriptor_t conv = nullptr;
  Descriptors() {
    DK_CUDNN(cudnnCreateTensorDescriptor(&x));
    DK_CUDNN(cudnnCreateTensorDescriptor(&y));
    DK_CUDNN(cudnnCreateFilterDescriptor(&w));
    DK_CUDNN(cudnnCreateConvolutionDescriptor(&conv));
  }
  ~Descriptors() {
    cudnnDestroyTensorDescriptor(x);
    cudnnDestroyTensorDescriptor(y);
    cudnnDestroyFilterDescriptor(w);
    cudnnDestroyConvolutionDescriptor(conv);
  }
  Descriptors(const Descriptors&) = delete;
  Descriptors& operator=(const Descriptors&) = delete;
};

// Algorithms needing more scratch than this are passed over (FFT variants can ask for GiBs).
constexpr size_t kMaxWorkspace = size_t(1) << 30;

struct AlgoChoice {
  cudnnConvolutionFwdAlgo_t algo;
  cudnnMathType_t math;
};

// x, w dense in dtype t; out dense. Returns false (having done nothing) when cuDNN has no
// algorithm for the case.
bool cudnn_forward(const Tensor& x, const Tensor& w, Tensor& out, const ConvParams& p) {
  int device = x.device().index;
  cudnnHandle_t h = cudnn_handle(device);
  DK_CUDNN(cudnnSetStream(h, stream(device)));
  cudnnDataType_t t = cudnn_type(x.dtype());
  Descriptors d;
  std::vector<int> xd = int_dims(x.shape(), "input"), xs = int_dims(x.strides(), "input");
  std::vector<int> yd = int_dims(out.shape(), "output"), ys = int_dims(out.strides(), "output");
  std::vector<int> wd = int_dims(w.shape(), "weight");
  DK_CUDNN(cudnnSetTensorNdDescriptor(d.x, t, int(xd.size()), xd.data(), xs.data()));
  DK_CUDNN(cudnnSetTensorNdDescriptor(d.y, t, int(yd.size()), yd.data(), ys.data()));
  DK_CUDNN(cudnnSetFilterNdDescriptor(d.w, t, CUDNN_TENSOR_NCHW, int(wd.size()), wd.data()));
  int pad[3], stride[3], dil[3];
  for (int i = 0; i < p.nsp; ++i) {
    pad[i] = int(p.pad[i]);
    stride[i] = int(p.stride[i]);
    dil[i] = int(p.dilation[i]);
  }
  DK_CUDNN(cudnnSetConvolutionNdDescriptor(d.conv, p.nsp, pad, stride, dil, CUDNN_CROSS_CORRELATION,
                                           CUDNN_DATA_FLOAT));
  DK_CUDNN(cudnnSetConvolutionGroupCount(d.conv, int(p.groups)));
  // f32 stays f32 (FMA only, no TF32) to match the CPU reference; 16-bit types use tensor cores.
  cudnnMathType_t math = x.dtype() == DType::F32 ? CUDNN_FMA_MATH : CUDNN_TENSOR_OP_MATH;
  DK_CUDNN(cudnnSetConvolutionMathType(d.conv, math));

  // The heuristic's choice is cached per shape and parameters.
  std::vector<int64_t> key = {device, int64_t(x.dtype()), p.nsp, p.groups};
  for (const Shape* s : {&x.shape(), &w.shape()}) key.insert(key.end(), s->begin(), s->end());
  for (int i = 0; i < p.nsp; ++i) key.insert(key.end(), {p.pad[i], p.stride[i], p.dilation[i]});
  static std::mutex mu;
  static std::map<std::vector<int64_t>, std::optional<AlgoChoice>> cache;
  std::optional<AlgoChoice> choice;
  bool known = false;
  {
    std::lock_guard<std::mutex> lock(mu);
    if (auto it = cache.find(key); it != cache.end()) {
      known = true;
      choice = it->second;
    }
  }
  if (!known) {
    cudnnConvolutionFwdAlgoPerf_t perf[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
    int found = 0;
    DK_CUDNN(cudnnGetConvolutionForwardAlgorithm_v7(h, d.x, d.w, d.conv, d.y, CUDNN_CONVOLUTION_FWD_ALGO_COUNT,
                                                    &found, perf));
    for (int i = 0; i < found && !choice; ++i) {
      if (perf[i].status != CUDNN_STATUS_SUCCESS || perf[i].memory > kMaxWorkspace) continue;
      if (x.dtype() == DType::F32 && perf[i].mathType != CUDNN_FMA_MATH && perf[i].mathType != CUDNN_DEFAULT_MATH)
        continue;
      choice = AlgoChoice{perf[i].algo, x.dtype() == DType::F32 ? CUDNN_FMA_MATH : perf[i].mathType};
    }
    std::lock_guard<std::mutex> lock(mu);
    cache[key] = choice;
  }
  if (!choice) return false;
  DK_CUDNN(cudnnSetConvolutionMathType(d.conv, choice->math));
  size_t ws = 0;
  DK_CUDNN(cudnnGetConvolutionForwardWorkspaceSize(h, d.x, d.w, d.conv, d.y, choice->algo, &ws));
  std::shared_ptr<void> workspace = ws ? alloc(device, ws) : nullptr;
  const float alpha = 1.0f, beta = 0.0f;
  cudnnStatus_t st = cudnnConvolutionForward(h, &alpha, d.x, x.raw(), d.w, w.raw(), d.conv, choice->algo,
                                             workspace.get(), ws, &beta, d.y, out.raw());
  if (st == CUDNN_STATUS_NOT_SUPPORTED) {
    // The heuristic offered an algorithm that then declined the case: use the fallback from now on.
    std::lock_guard<std::mutex> lock(mu);
    cache[key] = std::nullopt;
    return false;
  }
  check_cudnn(st, "cudnnConvolutionForward");
  return true;
}

#endif

void conv_forward(const Tensor& x, const Tensor& w, Tensor& out, const ConvParams& p) {
#ifdef DITKIT_WITH_CUDNN
  if (cudnn_forward(x, w, out, p)) return;
#endif
  im2col_forward(x, w, out, p);
}

Tensor conv_nd(const Tensor& x_in, const Tensor& w_in, const Tensor& bias, ConvParams p,
               const std::vector<int64_t>& extra_pads) {
  DType t = x_in.dtype();
  DK_CHECK(t == DType::F32 || t == DType::F16 || t == DType::BF16, "CUDA conv: input must be F32/F16/BF16, got ",
           x_in.str());
  Tensor x = x_in;
  if (std::any_of(extra_pads.begin(), extra_pads.end(), [](int64_t v) { return v > 0; }))
    x = cuda::pad(x, extra_pads, 0.0f);
  x = x.contiguous();
  Tensor w = (w_in.dtype() == t ? w_in : ops::cast(w_in, t)).contiguous();
  Tensor out = Tensor::empty(conv_out_shape(x, w, p), t, x.device());
  if (out.numel() == 0) return out;
  if (x.numel() == 0 || w.numel() == 0) {
    fill_(out, 0.0f);
  } else {
    conv_forward(x, w, out, p);
  }
  if (!bias.defined()) return out;
  Shape bshape(size_t(out.ndim()), 1);
  bshape[1] = bias.numel();
  return cuda::binary(ops::Binary::Add, out, bias.reshape(bshape));
}

}  // namespace

Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor& bias, std::array<int64_t, 2> stride,
              std::array<int64_t, 2> padding, std::array<int64_t, 2> dilation, int64_t groups) {
  ConvParams p;
  p.nsp = 2;
  p.groups = groups;
  for (int d = 0; d < 2; ++d) {
    DK_CHECK(padding[size_t(d)] >= 0, "conv2d: negative padding");
    p.stride[d] = stride[size_t(d)];
    p.pad[d] = padding[size_t(d)];
    p.dilation[d] = dilation[size_t(d)];
  }
  return conv_nd(x, w, bias, p, {});
}

Tensor conv3d(const Tensor& x, const Tensor& w, const Tensor& bias, std::array<int64_t, 3> stride,
              std::array<int64_t, 6> padding) {
  ConvParams p;
  p.nsp = 3;
  // F.pad order: last dim first, (before, after) pairs.
  std::vector<int64_t> extra(6, 0);
  for (int d = 0; d < 3; ++d) {
    int64_t before = padding[size_t(2 * d)], after = padding[size_t(2 * d + 1)];
    DK_CHECK(before >= 0 && after >= 0, "conv3d: negative padding");
    p.stride[d] = stride[size_t(d)];
    p.pad[d] = std::min(before, after);
    extra[size_t(2 * (2 - d))] = before - p.pad[d];
    extra[size_t(2 * (2 - d) + 1)] = after - p.pad[d];
  }
  return conv_nd(x, w, bias, p, extra);
}

}  // namespace ditkit::cuda
