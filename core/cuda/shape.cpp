// Host side of concat, pad, embedding and resize.
#include <climits>

#include "core/cuda/host.h"
#include "core/shape_common.h"

namespace ditkit::cuda {

Tensor concat(const std::vector<Tensor>& xs, int64_t dim) { return concat_by_copy(xs, dim, copy_); }

Tensor pad(const Tensor& x, const std::vector<int64_t>& pads, float value) {
  return pad_by_copy(x, pads, value, copy_, fill_);
}

Tensor embedding(const Tensor& table, const Tensor& ids, DType out_dtype) {
  int64_t V = table.dim(0), D = table.dim(1), M = ids.numel();
  Shape shape = ids.shape();
  shape.push_back(D);
  Tensor out = Tensor::empty(shape, out_dtype, table.device());
  if (out.numel() == 0) return out;
  Tensor dense_ids = ids.contiguous();
  // The bad-id flag costs one device-to-host sync per lookup; embeddings run once per prompt,
  // outside the denoising loop, so reporting the bad id precisely is worth it.
  Tensor bad = Tensor::empty({1}, DType::I64, table.device());
  long long none = LLONG_MAX, first_bad = LLONG_MAX;
  memcpy_h2d(bad.raw(), &none, sizeof(none));
  launch_embedding(table.raw(), table.dtype(), table.strides()[0], table.strides()[1], V, D, dense_ids.raw(),
                   ids.dtype(), M, out.raw(), out_dtype, bad.data<long long>(), stream(table));
  memcpy_d2h(&first_bad, bad.raw(), sizeof(first_bad));
  if (first_bad != LLONG_MAX) {
    Tensor bad_id = ids.reshape({-1}).select(0, first_bad).to(DType::I64).to(Device::cpu());
    int64_t id = bad_id.data<int64_t>()[0];
    fail("embedding: id ", id, " at position ", first_bad, " is outside the table [0, ", V, ") of ", table.str());
  }
  return out;
}

Tensor resize(const Tensor& x, int64_t out_h, int64_t out_w, ops::Resize mode) {
  Tensor out = Tensor::empty({x.dim(0), x.dim(1), out_h, out_w}, x.dtype(), x.device());
  if (out.numel() == 0) return out;
  DK_CHECK(x.dim(2) > 0 && x.dim(3) > 0, "resize: empty input ", x.str());
  int64_t shape[4], xs[4];
  for (int d = 0; d < 4; ++d) {
    shape[d] = x.dim(d);
    xs[d] = x.strides()[size_t(d)];
  }
  ResizeMode m = mode == ops::Resize::Nearest        ? ResizeMode::Nearest
                 : mode == ops::Resize::NearestExact ? ResizeMode::NearestExact
                                                     : ResizeMode::Bilinear;
  launch_resize(m, x.raw(), x.dtype(), shape, xs, out_h, out_w, out.raw(), stream(x));
  return out;
}

}  // namespace ditkit::cuda
