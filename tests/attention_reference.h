// The naive attention the attention kernels are tested against: masked softmax(scale q k^T) v in
// double, with its natural-log lse. Header-only, shared by the CPU and CUDA attention tests.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "core/tensor.h"

namespace ditkit::test {

struct AttentionReference {
  std::vector<double> out, lse;  // [B, Lq, H, D], [B, H, Lq]
};

// q [B, Lq, H, D], k and v [B, Lk, H, D] (any dtype and strides, on the CPU); mask [Lq x Lk]
// row-major, empty = every key. Rows that see no key give out 0 and lse -inf.
inline AttentionReference naive_attention(const Tensor& q, const Tensor& k, const Tensor& v, double scale,
                                          const std::vector<uint8_t>& mask = {}) {
  const double inf = std::numeric_limits<double>::infinity();
  const int64_t B = q.dim(0), Lq = q.dim(1), H = q.dim(2), D = q.dim(3), Lk = k.dim(1);
  const auto values = [](const Tensor& t) { return t.to(DType::F32).contiguous().to_vector(); };
  const std::vector<float> qv = values(q), kv = values(k), vv = values(v);
  const auto visible = [&](int64_t i, int64_t j) { return mask.empty() || mask[size_t(i * Lk + j)]; };
  AttentionReference r{std::vector<double>(size_t(B * Lq * H * D)), std::vector<double>(size_t(B * H * Lq))};
  std::vector<double> s(static_cast<size_t>(Lk));
  for (int64_t b = 0; b < B; ++b)
    for (int64_t i = 0; i < Lq; ++i)
      for (int64_t h = 0; h < H; ++h) {
        const float* qi = &qv[size_t(((b * Lq + i) * H + h) * D)];
        double mx = -inf, sum = 0;
        for (int64_t j = 0; j < Lk; ++j) {
          s[size_t(j)] = -inf;
          if (!visible(i, j)) continue;
          const float* kj = &kv[size_t(((b * Lk + j) * H + h) * D)];
          double dot = 0;
          for (int64_t d = 0; d < D; ++d) dot += double(qi[d]) * kj[d];
          mx = std::max(mx, s[size_t(j)] = dot * scale);
        }
        r.lse[size_t((b * H + h) * Lq + i)] = -inf;
        if (mx == -inf) continue;
        for (int64_t j = 0; j < Lk; ++j) sum += s[size_t(j)] = std::exp(s[size_t(j)] - mx);
        r.lse[size_t((b * H + h) * Lq + i)] = mx + std::log(sum);
        double* oi = &r.out[size_t(((b * Lq + i) * H + h) * D)];
        for (int64_t j = 0; j < Lk; ++j) {
          if (s[size_t(j)] == 0) continue;
          const float* vj = &vv[size_t(((b * Lk + j) * H + h) * D)];
          for (int64_t d = 0; d < D; ++d) oi[d] += s[size_t(j)] / sum * vj[d];
        }
      }
  return r;
}

// The mask where every query sees the keys below `valid` (valid < 0: every key).
inline std::vector<uint8_t> keys_below(int64_t Lq, int64_t Lk, int64_t valid) {
  std::vector<uint8_t> mask(size_t(Lq * Lk), 0);
  for (int64_t i = 0; i < Lq; ++i)
    for (int64_t j = 0; j < Lk; ++j) mask[size_t(i * Lk + j)] = valid < 0 || j < valid;
  return mask;
}

}  // namespace ditkit::test
