// Dispatch: checks arguments once, then runs the backend of the inputs' device.
#include "core/ops.h"

#include <algorithm>

#include "core/backend.h"

namespace ditkit::ops {
namespace {

Device common_device(std::initializer_list<const Tensor*> ts, const char* op) {
  const Tensor* first = nullptr;
  for (const Tensor* t : ts) {
    if (!t->defined()) continue;
    if (!first) first = t;
    DK_CHECK(t->device() == first->device(), op, ": inputs on different devices (",
             first->device().str(), " and ", t->device().str(), ")");
  }
  DK_CHECK(first, op, ": no input tensor");
  return first->device();
}

int64_t norm_dim(int64_t dim, int64_t ndim, const char* op) {
  int64_t d = dim < 0 ? dim + ndim : dim;
  DK_CHECK(d >= 0 && d < std::max<int64_t>(ndim, 1), op, ": dim ", dim, " out of range for ", ndim, " dims");
  return d;
}

#ifdef DITKIT_WITH_CUDA
#define DK_DISPATCH(dev, call) return (dev).is_cuda() ? cuda::call : cpu::call
#else
#define DK_DISPATCH(dev, call)                                                       \
  do {                                                                               \
    DK_CHECK(!(dev).is_cuda(), "device ", (dev).str(), ": this build has no CUDA"); \
    return cpu::call;                                                                \
  } while (0)
#endif

}  // namespace

Shape broadcast_shapes(const Shape& a, const Shape& b) {
  size_t n = std::max(a.size(), b.size());
  Shape out(n);
  for (size_t i = 0; i < n; ++i) {
    int64_t da = i < n - a.size() ? 1 : a[i - (n - a.size())];
    int64_t db = i < n - b.size() ? 1 : b[i - (n - b.size())];
    DK_CHECK(da == db || da == 1 || db == 1, "shapes ", shape_str(a), " and ", shape_str(b),
             " do not broadcast");
    out[i] = da == 1 ? db : da;
  }
  return out;
}

void copy_(Tensor& dst, const Tensor& src) {
  DK_CHECK(dst.shape() == src.shape(), "copy: shape ", shape_str(src.shape()), " into ",
           shape_str(dst.shape()));
  if (dst.device() == src.device()) {
    DK_DISPATCH(dst.device(), copy_(dst, src));
  }
#ifdef DITKIT_WITH_CUDA
  // Across devices: stage through a contiguous tensor of the destination dtype.
  Tensor staged = src.to(dst.dtype()).contiguous();
  if (src.device().is_cpu()) {
    Tensor dev = dst.is_contiguous() ? dst : Tensor::empty(dst.shape(), dst.dtype(), dst.device());
    cuda::memcpy_h2d(dev.raw(), staged.raw(), staged.nbytes());
    if (!dst.is_contiguous()) cuda::copy_(dst, dev);
  } else {
    Tensor host = dst.is_contiguous() ? dst : Tensor::empty(dst.shape(), dst.dtype(), dst.device());
    cuda::memcpy_d2h(host.raw(), staged.raw(), staged.nbytes());
    if (!dst.is_contiguous()) cpu::copy_(dst, host);
  }
#else
  fail("copy between ", src.device().str(), " and ", dst.device().str(), ": this build has no CUDA");
#endif
}

void fill_(Tensor& dst, float value) { DK_DISPATCH(dst.device(), fill_(dst, value)); }

Tensor cast(const Tensor& x, DType dtype) {
  Tensor out = Tensor::empty(x.shape(), dtype, x.device());
  copy_(out, x);
  return out;
}

Tensor unary(Unary op, const Tensor& x) { DK_DISPATCH(x.device(), unary(op, x)); }

Tensor binary(Binary op, const Tensor& a, const Tensor& b) {
  Device d = common_device({&a, &b}, "binary op");
  broadcast_shapes(a.shape(), b.shape());
  DK_DISPATCH(d, binary(op, a, b));
}

Tensor affine(const Tensor& x, float scale, float shift) { DK_DISPATCH(x.device(), affine(x, scale, shift)); }

Tensor modulate(const Tensor& x, const Tensor& scale, const Tensor& shift) {
  Device d = common_device({&x, &scale, &shift}, "modulate");
  DK_CHECK(broadcast_shapes(x.shape(), scale.shape()) == x.shape() &&
               broadcast_shapes(x.shape(), shift.shape()) == x.shape(),
           "modulate: scale ", shape_str(scale.shape()), " / shift ", shape_str(shift.shape()),
           " do not broadcast to x ", shape_str(x.shape()));
  DK_DISPATCH(d, modulate(x, scale, shift));
}

Tensor linear(const Tensor& x, const Tensor& w, const Tensor& bias) {
  Device d = common_device({&x, &w, &bias}, "linear");
  DK_CHECK(w.ndim() == 2 && x.ndim() >= 1 && x.dim(-1) == w.dim(1), "linear: input ", x.str(),
           " does not match weight ", w.str(), " (expected [..., ", (w.ndim() == 2 ? w.dim(1) : -1), "])");
  DK_CHECK(!bias.defined() || (bias.ndim() == 1 && bias.dim(0) == w.dim(0)), "linear: bias ", bias.str(),
           " does not match weight ", w.str());
  DK_DISPATCH(d, linear(x, w, bias));
}

Tensor matmul(const Tensor& a, const Tensor& b, bool ta, bool tb) {
  Device d = common_device({&a, &b}, "matmul");
  DK_CHECK(a.ndim() >= 2 && b.ndim() >= 2, "matmul: needs 2+ dims, got ", a.str(), " and ", b.str());
  int64_t ka = ta ? a.dim(-2) : a.dim(-1), kb = tb ? b.dim(-1) : b.dim(-2);
  DK_CHECK(ka == kb, "matmul: inner dims differ: ", a.str(), " and ", b.str());
  broadcast_shapes(Shape(a.shape().begin(), a.shape().end() - 2), Shape(b.shape().begin(), b.shape().end() - 2));
  DK_DISPATCH(d, matmul(a, b, ta, tb));
}

Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor& bias, std::array<int64_t, 2> stride,
              std::array<int64_t, 2> padding, std::array<int64_t, 2> dilation, int64_t groups) {
  Device d = common_device({&x, &w, &bias}, "conv2d");
  DK_CHECK(x.ndim() == 4 && w.ndim() == 4 && groups >= 1 && x.dim(1) == w.dim(1) * groups &&
               w.dim(0) % groups == 0,
           "conv2d: input ", x.str(), " does not match weight ", w.str(), " with groups=", groups);
  DK_CHECK(!bias.defined() || bias.numel() == w.dim(0), "conv2d: bias ", bias.str(), " for weight ", w.str());
  DK_DISPATCH(d, conv2d(x, w, bias, stride, padding, dilation, groups));
}

Tensor conv3d(const Tensor& x, const Tensor& w, const Tensor& bias, std::array<int64_t, 3> stride,
              std::array<int64_t, 6> padding) {
  Device d = common_device({&x, &w, &bias}, "conv3d");
  DK_CHECK(x.ndim() == 5 && w.ndim() == 5 && x.dim(1) == w.dim(1), "conv3d: input ", x.str(),
           " does not match weight ", w.str());
  DK_CHECK(!bias.defined() || bias.numel() == w.dim(0), "conv3d: bias ", bias.str(), " for weight ", w.str());
  DK_DISPATCH(d, conv3d(x, w, bias, stride, padding));
}

Tensor layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, float eps) {
  Device d = common_device({&x, &weight, &bias}, "layer_norm");
  DK_CHECK((!weight.defined() || weight.numel() == x.dim(-1)) && (!bias.defined() || bias.numel() == x.dim(-1)),
           "layer_norm: weight/bias do not match last dim of ", x.str());
  DK_DISPATCH(d, layer_norm(x, weight, bias, eps));
}

Tensor rms_norm(const Tensor& x, const Tensor& weight, float eps) {
  Device d = common_device({&x, &weight}, "rms_norm");
  DK_CHECK(!weight.defined() || weight.numel() == x.dim(-1), "rms_norm: weight ", weight.str(),
           " does not match last dim of ", x.str());
  DK_DISPATCH(d, rms_norm(x, weight, eps));
}

Tensor group_norm(const Tensor& x, int64_t groups, const Tensor& weight, const Tensor& bias, float eps) {
  Device d = common_device({&x, &weight, &bias}, "group_norm");
  DK_CHECK(x.ndim() >= 2 && groups > 0 && x.dim(1) % groups == 0, "group_norm: ", groups,
           " groups do not divide channels of ", x.str());
  DK_DISPATCH(d, group_norm(x, groups, weight, bias, eps));
}

Tensor softmax(const Tensor& x, int64_t dim) {
  DK_DISPATCH(x.device(), softmax(x, norm_dim(dim, x.ndim(), "softmax")));
}

Tensor rope(const Tensor& x, const Tensor& cos, const Tensor& sin) {
  Device d = common_device({&x, &cos, &sin}, "rope");
  DK_CHECK(x.dim(-1) % 2 == 0 && cos.shape() == sin.shape() && cos.dim(-1) * 2 == x.dim(-1),
           "rope: cos ", cos.str(), " / sin ", sin.str(), " do not fit x ", x.str());
  Shape half = x.shape();
  half.back() /= 2;
  DK_CHECK(broadcast_shapes(half, cos.shape()) == half, "rope: cos ", cos.str(), " does not broadcast to ", x.str());
  DK_DISPATCH(d, rope(x, cos, sin));
}

Tensor embedding(const Tensor& table, const Tensor& ids, DType out_dtype) {
  Device d = common_device({&table, &ids}, "embedding");
  DK_CHECK(table.ndim() == 2, "embedding: table must be [V, D], got ", table.str());
  DK_CHECK(ids.dtype() == DType::I32 || ids.dtype() == DType::I64, "embedding: ids must be I32/I64, got ", ids.str());
  DK_DISPATCH(d, embedding(table, ids, out_dtype));
}

Tensor concat(const std::vector<Tensor>& xs, int64_t dim) {
  DK_CHECK(!xs.empty(), "concat: no tensors");
  int64_t d = norm_dim(dim, xs[0].ndim(), "concat");
  for (const Tensor& t : xs) {
    DK_CHECK(t.ndim() == xs[0].ndim() && t.device() == xs[0].device(), "concat: ", t.str(), " vs ", xs[0].str());
    for (int64_t i = 0; i < t.ndim(); ++i)
      DK_CHECK(i == d || t.dim(i) == xs[0].dim(i), "concat along ", d, ": ", t.str(), " vs ", xs[0].str());
  }
  DK_DISPATCH(xs[0].device(), concat(xs, d));
}

std::vector<Tensor> split(const Tensor& x, const std::vector<int64_t>& sizes, int64_t dim) {
  int64_t d = norm_dim(dim, x.ndim(), "split");
  int64_t total = 0;
  for (int64_t s : sizes) total += s;
  DK_CHECK(total == x.dim(d), "split: sizes sum to ", total, " but dim ", d, " of ", x.str(), " is ", x.dim(d));
  std::vector<Tensor> out;
  int64_t start = 0;
  for (int64_t s : sizes) {
    out.push_back(x.slice(d, start, start + s));
    start += s;
  }
  return out;
}

Tensor permute(const Tensor& x, const std::vector<int64_t>& dims) { return x.permute(dims).contiguous(); }

Tensor pad(const Tensor& x, const std::vector<int64_t>& pads, float value) {
  DK_CHECK(pads.size() % 2 == 0 && int64_t(pads.size()) / 2 <= x.ndim(), "pad: ", pads.size(),
           " pad values for ", x.str());
  for (size_t i = 0; i < pads.size(); ++i) DK_CHECK(pads[i] >= 0, "pad: negative padding is not supported");
  DK_DISPATCH(x.device(), pad(x, pads, value));
}

Tensor resize(const Tensor& x, int64_t out_h, int64_t out_w, Resize mode) {
  DK_CHECK(x.ndim() == 4 && out_h > 0 && out_w > 0, "resize: needs [N, C, H, W] and a positive size, got ", x.str());
  DK_DISPATCH(x.device(), resize(x, out_h, out_w, mode));
}

Tensor reduce(Reduce op, const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) {
  std::vector<int64_t> nd;
  if (dims.empty()) {
    for (int64_t i = 0; i < x.ndim(); ++i) nd.push_back(i);
  } else {
    for (int64_t dd : dims) nd.push_back(norm_dim(dd, x.ndim(), "reduce"));
  }
  std::sort(nd.begin(), nd.end());
  nd.erase(std::unique(nd.begin(), nd.end()), nd.end());
  DK_DISPATCH(x.device(), reduce(op, x, nd, keepdim));
}

}  // namespace ditkit::ops
