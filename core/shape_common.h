// Concat and constant pad as views and copies: the same on every device, so each backend
// passes its own copy_ (and fill_) to these. Arguments are checked by ops::concat / ops::pad.
#pragma once
#include <vector>

#include "core/tensor.h"

namespace ditkit {

// xs (same device and dtype, equal but for `dim`) joined along `dim`.
template <typename Copy>
Tensor concat_by_copy(const std::vector<Tensor>& xs, int64_t dim, Copy&& copy) {
  Shape shape = xs[0].shape();
  shape[size_t(dim)] = 0;
  for (const Tensor& t : xs) shape[size_t(dim)] += t.dim(dim);
  Tensor out = Tensor::empty(shape, xs[0].dtype(), xs[0].device());
  int64_t at = 0;
  for (const Tensor& t : xs) {
    Tensor part = out.narrow(dim, at, t.dim(dim));
    copy(part, t);
    at += t.dim(dim);
  }
  return out;
}

// x inside a border of `value`; pads holds (before, after) pairs from the last dimension on.
template <typename Copy, typename Fill>
Tensor pad_by_copy(const Tensor& x, const std::vector<int64_t>& pads, float value, Copy&& copy, Fill&& fill) {
  Shape shape = x.shape();
  for (size_t i = 0; i < pads.size() / 2; ++i) shape[shape.size() - 1 - i] += pads[2 * i] + pads[2 * i + 1];
  Tensor out = Tensor::empty(shape, x.dtype(), x.device());
  fill(out, value);
  Tensor inner = out;
  for (size_t i = 0; i < pads.size() / 2; ++i) {
    const int64_t d = x.ndim() - 1 - int64_t(i);
    inner = inner.narrow(d, pads[2 * i], x.dim(d));
  }
  copy(inner, x);
  return out;
}

}  // namespace ditkit
