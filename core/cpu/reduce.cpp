// Sum / mean / max / min over any set of dims: each output reduces one row of the permuted input,
// cut into chunks whose partial results (double sums, NaN-propagating extrema) are combined.
#include <cmath>

#include "core/cpu/kernels.h"

namespace ditkit::cpu {

Tensor reduce(ops::Reduce op, const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) {
  DK_CHECK(x.dtype() != DType::Q8_0, "reduce: cannot read Q8_0 tensor ", x.str());
  std::vector<int64_t> order;
  Shape out_shape, kept, reduced;
  for (int64_t d = 0; d < x.ndim(); ++d) {
    const bool r = std::find(dims.begin(), dims.end(), d) != dims.end();
    if (!r) {
      order.push_back(d);
      kept.push_back(x.dim(d));
    }
    if (!r || keepdim) out_shape.push_back(r ? 1 : x.dim(d));
  }
  for (int64_t d : dims) {
    order.push_back(d);
    reduced.push_back(x.dim(d));
  }
  const int64_t len = shape_numel(reduced), outputs = shape_numel(kept);
  const bool extremum = op == ops::Reduce::Max || op == ops::Reduce::Min;
  DK_CHECK(len > 0 || !extremum || outputs == 0, "reduce: max/min over an empty dimension of ", x.str());
  // Rows must be one strided run; otherwise the permuted input is copied contiguous first.
  Tensor xp = x.permute(order);
  auto run_of = [&](const Tensor& t) {
    return coalesce(reduced, {Shape(t.strides().end() - int64_t(reduced.size()), t.strides().end())});
  };
  Layout run = run_of(xp);
  if (run.shape.size() != 1) {
    xp = xp.contiguous();
    run = run_of(xp);
  }
  const int64_t step = run.strides[0][0];
  Tensor out = Tensor::empty(out_shape, x.dtype());
  if (outputs == 0) return out;
  const int64_t per_row = std::max<int64_t>(1, (len + kChunk - 1) / kChunk);
  std::vector<double> partial(static_cast<size_t>(outputs * per_row));
  const Shape kept_strides(xp.strides().begin(), xp.strides().begin() + int64_t(kept.size()));
  parallel_for(0, outputs * per_row, 4, [&](int64_t b, int64_t e) {
    thread_local std::vector<float> buf;
    buf.resize(size_t(kChunk));
    Cursor cur(kept, {kept_strides});
    cur.seek(b / per_row);
    for (int64_t it = b; it < e; ++it) {
      const int64_t c0 = (it % per_row) * kChunk, n = std::min(kChunk, len - c0);
      if (it > b && c0 == 0) cur.next();
      load_f32(xp.dtype(), xp.raw(), cur.offset(0) + c0 * step, step, n, buf.data());
      const float* v = buf.data();
      double acc;
      if (extremum) {
        float m = v[0];
        bool nan = false;
        for (int64_t i = 0; i < n; ++i) {
          m = op == ops::Reduce::Max ? std::max(m, v[i]) : std::min(m, v[i]);
          nan |= v[i] != v[i];
        }
        acc = nan ? NAN : m;
      } else {
        acc = sum_f64(v, n);
      }
      partial[size_t(it)] = acc;
    }
  });
  std::vector<float> result(static_cast<size_t>(outputs));
  for (int64_t o = 0; o < outputs; ++o) {
    const double* p = partial.data() + o * per_row;
    double r = extremum ? p[0] : 0.0;
    for (int64_t j = 0; j < per_row; ++j) {
      if (op == ops::Reduce::Max) r = std::isnan(r) || std::isnan(p[j]) ? NAN : std::max(r, p[j]);
      else if (op == ops::Reduce::Min) r = std::isnan(r) || std::isnan(p[j]) ? NAN : std::min(r, p[j]);
      else r += p[j];
    }
    result[size_t(o)] = float(op == ops::Reduce::Mean ? r / double(len) : r);
  }
  store_f32(result.data(), out.dtype(), out.raw(), 0, 1, outputs);
  return out;
}

}  // namespace ditkit::cpu
