// Dense attention on the CPU, flash-style: each task owns one (batch, head, query tile), keeps
// its queries, running max, running sum and output rows in f32 and streams the keys through in
// tiles with an online softmax, so memory is O(tile) per thread and Lq x Lk is never formed.
// Inputs of any float dtype are converted tile by tile; the loops over keys and over head_dim
// have fixed or unit strides so the compiler vectorises them.
#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <numbers>
#include <vector>

#include "attention/dense.h"
#include "core/threadpool.h"

namespace ditkit::attention {
namespace {

constexpr int64_t kQueryTile = 256;  // query rows per task (each key tile is converted once per task)
constexpr int64_t kKeyTile = 64;     // keys per step of the online softmax
constexpr int64_t kLanes = 8;        // head_dim is padded to this so row loops have no tail
constexpr int64_t kValueChunk = 64;  // output columns kept in registers while keys stream past

// One AVX register of floats (GCC/Clang vector extension): arrays of these with constant
// indices stay in registers, where plain float arrays of accumulators get spilled.
using f32x8 = float __attribute__((vector_size(kLanes * sizeof(float))));
inline f32x8 load8(const float* p) {
  f32x8 v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
inline void store8(float* p, f32x8 v) { std::memcpy(p, &v, sizeof v); }

// 2^x for x <= 0 (scores are max-subtracted), relative error below 1e-7: x = n + f with
// |f| <= 1/2, 2^f by its Taylor series to degree 7, 2^n built in the exponent bits. Plain
// arithmetic so that loops calling it vectorise (std::exp2 is a library call). x is first
// clamped to -126 (2^-126 ~ 1e-38: no weight that matters) on its bit pattern, which for
// x <= 0 grows with |x|: a float compare would not vectorise under GCC's trapping math.
inline float exp2_nonpositive(float x) {
  x = std::bit_cast<float>(std::min(std::bit_cast<uint32_t>(x), std::bit_cast<uint32_t>(-126.0f)));
  const int32_t n = -int32_t(0.5f - x);  // 0.5 - x > 0, so the truncation is a floor
  const float f = (x - float(n)) * 0.693147180559945f;  // 2^f = e^(f ln 2)
  float p = 1.0f / 5040.0f;
  p = p * f + 1.0f / 720.0f;
  p = p * f + 1.0f / 120.0f;
  p = p * f + 1.0f / 24.0f;
  p = p * f + 1.0f / 6.0f;
  p = p * f + 0.5f;
  p = p * f + 1.0f;
  p = p * f + 1.0f;
  return p * std::bit_cast<float>((n + 127) << 23);
}

// A [B, L, H, D] operand: element (b, l, h, d) at base + (b sb + l sl + h sh + d sd) elements.
struct Operand {
  const char* base;
  DType dtype;
  int64_t elem, sb, sl, sh, sd;

  explicit Operand(const Tensor& t)
      : base(static_cast<const char*>(t.raw())), dtype(t.dtype()), elem(int64_t(dtype_size(t.dtype()))),
        sb(t.strides()[0]), sl(t.strides()[1]), sh(t.strides()[2]), sd(t.strides()[3]) {}

  // Row (b, l, h) as D f32 values.
  void load_row(int64_t b, int64_t l, int64_t h, int64_t D, float* dst) const {
    const char* row = base + (b * sb + l * sl + h * sh) * elem;
    if (sd == 1) return to_f32(dtype, row, dst, D);
    for (int64_t d = 0; d < D; ++d) to_f32(dtype, row + d * sd * elem, dst + d, 1);
  }
};

// Per-thread buffers of one query tile; head_dim padded to Dp with zeros that stay zero.
struct Scratch {
  int64_t Dp;
  std::vector<float> q, kt, v, s, o, m, l, row;
  explicit Scratch(int64_t D)
      : Dp((D + kLanes - 1) / kLanes * kLanes),
        q(size_t(kQueryTile * Dp)),
        kt(size_t(Dp * kKeyTile)),
        v(size_t(kKeyTile * Dp)),
        s(size_t(kQueryTile * kKeyTile)),
        o(size_t(kQueryTile * Dp)),
        m(size_t(kQueryTile)),
        l(size_t(kQueryTile)),
        row(size_t(Dp)) {}
};

struct Problem {
  Operand q, k, v;
  char* out;
  DType out_dtype;
  int64_t Lq, H, D, keys;
  float scale_log2;  // scale * log2(e): scores come out in base 2
};

// Scores of the tile's queries against kKeyTile keys: s[i][j] = sum_d q[i][d] kt[d][j]
// (keys past the valid ones have zero columns and are skipped by the softmax). A row's 64
// scores stay in 8 registers while head_dim streams past.
void tile_scores(const Scratch& w, int64_t nq, float* __restrict s) {
  constexpr int64_t kVectors = kKeyTile / kLanes;
  for (int64_t i = 0; i < nq; ++i) {
    const float* __restrict qi = w.q.data() + i * w.Dp;
    f32x8 acc[kVectors] = {};
    for (int64_t d = 0; d < w.Dp; ++d) {
      const float* __restrict kd = w.kt.data() + d * kKeyTile;
      for (int64_t c = 0; c < kVectors; ++c) acc[c] += qi[d] * load8(kd + c * kLanes);
    }
    for (int64_t c = 0; c < kVectors; ++c) store8(s + i * kKeyTile + c * kLanes, acc[c]);
  }
}

// Max and sum over one row of kKeyTile scores, in kLanes independent partials: a float
// reduction only vectorises when its order is spelled out like this.
float row_max(const float* s) {
  float lanes[kLanes];
  std::fill(lanes, lanes + kLanes, -std::numeric_limits<float>::infinity());
  for (int64_t j = 0; j < kKeyTile; j += kLanes)
    for (int64_t l = 0; l < kLanes; ++l) lanes[l] = std::max(lanes[l], s[j + l]);
  return *std::max_element(lanes, lanes + kLanes);
}

float row_sum(const float* s) {
  float lanes[kLanes] = {};
  for (int64_t j = 0; j < kKeyTile; j += kLanes)
    for (int64_t l = 0; l < kLanes; ++l) lanes[l] += s[j + l];
  float sum = 0.0f;
  for (float x : lanes) sum += x;
  return sum;
}

// o[d0, d0 + W) = alpha o + sum_j p[j] v[j][d0, d0 + W): the W outputs stay in registers
// while the keys stream past (W = kValueChunk covers head_dim 64/128 in whole chunks).
template <int64_t W>
void accumulate_values(const float* __restrict p, int64_t nk, const float* __restrict v, int64_t Dp, int64_t d0,
                       float alpha, float* __restrict o) {
  constexpr int64_t kVectors = W / kLanes;
  f32x8 acc[kVectors];
  for (int64_t c = 0; c < kVectors; ++c) acc[c] = load8(o + d0 + c * kLanes) * alpha;
  for (int64_t j = 0; j < nk; ++j) {
    const float* __restrict vj = v + j * Dp + d0;
    for (int64_t c = 0; c < kVectors; ++c) acc[c] += p[j] * load8(vj + c * kLanes);
  }
  for (int64_t c = 0; c < kVectors; ++c) store8(o + d0 + c * kLanes, acc[c]);
}

// Online softmax step for nk keys: rescales each row's running output by 2^(m_old - m_new)
// and adds p[j] v[j] with p = 2^(s - m_new). Scores past nk are set to -inf, then p = 0.
void tile_update(Scratch& w, int64_t nq, int64_t nk) {
  const float* __restrict v = w.v.data();
  for (int64_t i = 0; i < nq; ++i) {
    float* __restrict si = w.s.data() + i * kKeyTile;
    float* __restrict oi = w.o.data() + i * w.Dp;
    std::fill(si + nk, si + kKeyTile, -std::numeric_limits<float>::infinity());
    const float mx = std::max(w.m[size_t(i)], row_max(si));
    for (int64_t j = 0; j < kKeyTile; ++j) si[j] = exp2_nonpositive(si[j] - mx);
    std::fill(si + nk, si + kKeyTile, 0.0f);  // 2^-126 from the clamp, not 0
    const float alpha = std::exp2(w.m[size_t(i)] - mx);  // 0 on the first tile (m = -inf)
    w.l[size_t(i)] = w.l[size_t(i)] * alpha + row_sum(si);
    w.m[size_t(i)] = mx;
    int64_t d0 = 0;
    for (; d0 + kValueChunk <= w.Dp; d0 += kValueChunk) accumulate_values<kValueChunk>(si, nk, v, w.Dp, d0, alpha, oi);
    for (; d0 < w.Dp; d0 += kLanes) accumulate_values<kLanes>(si, nk, v, w.Dp, d0, alpha, oi);
  }
}

void query_tile(const Problem& pb, Scratch& w, int64_t b, int64_t h, int64_t q0) {
  const int64_t nq = std::min(kQueryTile, pb.Lq - q0), D = pb.D, Dp = w.Dp;
  for (int64_t i = 0; i < nq; ++i) {
    float* qi = w.q.data() + i * Dp;
    pb.q.load_row(b, q0 + i, h, D, qi);
    for (int64_t d = 0; d < D; ++d) qi[d] *= pb.scale_log2;
  }
  std::fill(w.o.begin(), w.o.end(), 0.0f);
  std::fill(w.m.begin(), w.m.end(), -std::numeric_limits<float>::infinity());
  std::fill(w.l.begin(), w.l.end(), 0.0f);
  for (int64_t k0 = 0; k0 < pb.keys; k0 += kKeyTile) {
    const int64_t nk = std::min(kKeyTile, pb.keys - k0);
    for (int64_t j = 0; j < kKeyTile; ++j) {
      if (j < nk) pb.k.load_row(b, k0 + j, h, D, w.row.data());
      for (int64_t d = 0; d < D; ++d) w.kt[size_t(d * kKeyTile + j)] = j < nk ? w.row[size_t(d)] : 0.0f;
    }
    for (int64_t j = 0; j < nk; ++j) pb.v.load_row(b, k0 + j, h, D, w.v.data() + j * Dp);
    tile_scores(w, nq, w.s.data());
    tile_update(w, nq, nk);
  }
  const size_t out_elem = dtype_size(pb.out_dtype);
  for (int64_t i = 0; i < nq; ++i) {
    const float inv = 1.0f / w.l[size_t(i)];
    const float* oi = w.o.data() + i * Dp;
    for (int64_t d = 0; d < D; ++d) w.row[size_t(d)] = oi[d] * inv;
    char* dst = pb.out + size_t(((b * pb.Lq + q0 + i) * pb.H + h) * D) * out_elem;
    from_f32(w.row.data(), pb.out_dtype, dst, D);
  }
}

}  // namespace

Tensor dense_attention_cpu(const Tensor& q, const Tensor& k, const Tensor& v, float scale, int64_t keys) {
  Tensor out = Tensor::empty(q.shape(), q.dtype(), q.device());
  const int64_t B = q.dim(0), Lq = q.dim(1), H = q.dim(2), D = q.dim(3);
  const Problem pb{Operand(q), Operand(k), Operand(v), static_cast<char*>(out.raw()), out.dtype(),
                   Lq, H, D, keys, scale * std::numbers::log2e_v<float>};
  const int64_t tiles = (Lq + kQueryTile - 1) / kQueryTile;
  parallel_for(0, B * H * tiles, 1, [&](int64_t begin, int64_t end) {
    Scratch w(D);
    for (int64_t t = begin; t < end; ++t) {
      const int64_t bh = t / tiles;
      query_tile(pb, w, bh / H, bh % H, (t % tiles) * kQueryTile);
    }
  });
  return out;
}

}  // namespace ditkit::attention
