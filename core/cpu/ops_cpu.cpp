// Placeholder CPU backend: copies only. The real kernels replace this file.
#include <vector>

#include "core/backend.h"

namespace ditkit::cpu {

namespace {
// Calls fn(offset) with the element offset of every index of `shape` under `strides`, row-major.
template <typename Fn>
void for_each_offset(const Shape& shape, const Shape& strides, Fn fn) {
  int64_t n = shape_numel(shape);
  std::vector<int64_t> idx(shape.size(), 0);
  int64_t off = 0;
  for (int64_t i = 0; i < n; ++i) {
    fn(i, off);
    for (size_t d = shape.size(); d-- > 0;) {
      off += strides[d];
      if (++idx[d] < shape[d]) break;
      off -= strides[d] * shape[d];
      idx[d] = 0;
    }
  }
}
}  // namespace

void copy_(Tensor& dst, const Tensor& src) {
  if (src.dtype() == dst.dtype() && src.is_contiguous() && dst.is_contiguous()) {
    std::memcpy(dst.raw(), src.raw(), dst.nbytes());
    return;
  }
  Tensor s = src;
  std::vector<float> vals(size_t(src.numel()));
  size_t es = dtype_size(src.dtype());
  const char* base = static_cast<const char*>(src.raw());
  for_each_offset(src.shape(), src.strides(),
                  [&](int64_t i, int64_t off) { to_f32(src.dtype(), base + off * es, &vals[i], 1); });
  size_t ed = dtype_size(dst.dtype());
  char* dbase = static_cast<char*>(dst.raw());
  for_each_offset(dst.shape(), dst.strides(),
                  [&](int64_t i, int64_t off) { from_f32(&vals[i], dst.dtype(), dbase + off * ed, 1); });
}

void fill_(Tensor& dst, float value) {
  size_t ed = dtype_size(dst.dtype());
  char* dbase = static_cast<char*>(dst.raw());
  for_each_offset(dst.shape(), dst.strides(), [&](int64_t, int64_t off) { from_f32(&value, dst.dtype(), dbase + off * ed, 1); });
}

#define DK_TODO(...) fail("cpu op not implemented yet")
Tensor unary(ops::Unary, const Tensor&) { DK_TODO(); }
Tensor binary(ops::Binary, const Tensor&, const Tensor&) { DK_TODO(); }
Tensor affine(const Tensor&, float, float) { DK_TODO(); }
Tensor modulate(const Tensor&, const Tensor&, const Tensor&) { DK_TODO(); }
Tensor linear(const Tensor&, const Tensor&, const Tensor&) { DK_TODO(); }
Tensor matmul(const Tensor&, const Tensor&, bool, bool) { DK_TODO(); }
Tensor conv2d(const Tensor&, const Tensor&, const Tensor&, std::array<int64_t, 2>, std::array<int64_t, 2>,
              std::array<int64_t, 2>, int64_t) { DK_TODO(); }
Tensor conv3d(const Tensor&, const Tensor&, const Tensor&, std::array<int64_t, 3>, std::array<int64_t, 6>) { DK_TODO(); }
Tensor layer_norm(const Tensor&, const Tensor&, const Tensor&, float) { DK_TODO(); }
Tensor rms_norm(const Tensor&, const Tensor&, float) { DK_TODO(); }
Tensor group_norm(const Tensor&, int64_t, const Tensor&, const Tensor&, float) { DK_TODO(); }
Tensor softmax(const Tensor&, int64_t) { DK_TODO(); }
Tensor rope(const Tensor&, const Tensor&, const Tensor&) { DK_TODO(); }
Tensor embedding(const Tensor&, const Tensor&, DType) { DK_TODO(); }
Tensor concat(const std::vector<Tensor>&, int64_t) { DK_TODO(); }
Tensor pad(const Tensor&, const std::vector<int64_t>&, float) { DK_TODO(); }
Tensor resize(const Tensor&, int64_t, int64_t, ops::Resize) { DK_TODO(); }
Tensor reduce(ops::Reduce, const Tensor&, const std::vector<int64_t>&, bool) { DK_TODO(); }

}  // namespace ditkit::cpu
