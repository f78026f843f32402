// The CPU flash-attention machinery (cpu_flash.h). Inputs of any float dtype are converted row
// by row; the loops over keys and over head_dim have fixed or unit strides so the compiler
// vectorises them.
#include "attention/cpu_flash.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <numbers>

#include "core/allocator.h"
#include "core/threadpool.h"

namespace ditkit::attention::cpu {
namespace {

constexpr int64_t kLanes = 8;        // head_dim is padded to this so row loops have no tail
constexpr int64_t kValueChunk = 64;  // output columns kept in registers while keys stream past
constexpr float kNegInf = -std::numeric_limits<float>::infinity();
constexpr int64_t kPackBudget = int64_t(256) << 20;  // bytes of packed K/V per pass

int64_t padded_head_dim(int64_t D) { return (D + kLanes - 1) / kLanes * kLanes; }
int64_t key_chunks(int64_t k_len) { return (k_len + kKeyChunk - 1) / kKeyChunk + 1; }  // + a spare zero chunk

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

// Max and sum over one row of kKeyChunk scores, in kLanes independent partials: a float
// reduction only vectorises when its order is spelled out like this.
float row_max(const float* s) {
  float lanes[kLanes];
  std::fill(lanes, lanes + kLanes, kNegInf);
  for (int64_t j = 0; j < kKeyChunk; j += kLanes)
    for (int64_t l = 0; l < kLanes; ++l) lanes[l] = std::max(lanes[l], s[j + l]);
  return *std::max_element(lanes, lanes + kLanes);
}

float row_sum(const float* s) {
  float lanes[kLanes] = {};
  for (int64_t j = 0; j < kKeyChunk; j += kLanes)
    for (int64_t l = 0; l < kLanes; ++l) lanes[l] += s[j + l];
  float sum = 0.0f;
  for (float x : lanes) sum += x;
  return sum;
}

// Keeps s[j] where bit j of `bits` is set, else sets it to `other`.
void keep_masked(float* s, uint64_t bits, float other) {
  for (int64_t j = 0; j < kKeyChunk; ++j) s[j] = (bits >> j & 1) ? s[j] : other;
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

}  // namespace

Operand::Operand(const Tensor& t)
    : base(static_cast<const char*>(t.raw())), dtype(t.dtype()), elem(int64_t(dtype_size(t.dtype()))),
      sb(t.strides()[0]), sl(t.strides()[1]), sh(t.strides()[2]), sd(t.strides()[3]) {}

void Operand::load_row(int64_t b, int64_t l, int64_t h, int64_t D, float* dst) const {
  if (l < 0) return std::fill(dst, dst + D, 0.0f);
  const char* row = base + (b * sb + l * sl + h * sh) * elem;
  if (sd == 1) return to_f32(dtype, row, dst, D);
  for (int64_t d = 0; d < D; ++d) to_f32(dtype, row + d * sd * elem, dst + d, 1);
}

PackedKV::PackedKV(const Problem& pb, int64_t pairs)
    : pb_(pb),
      Dp_(padded_head_dim(pb.D)),
      chunks_(key_chunks(pb.k_len)),
      // From the caching allocator: repeated calls reuse the block instead of faulting in fresh pages.
      kt_(device_alloc(Device::cpu(), size_t(pairs * chunks_ * Dp_ * kKeyChunk) * sizeof(float))),
      v_(device_alloc(Device::cpu(), size_t(pairs * chunks_ * kKeyChunk * Dp_) * sizeof(float))) {}

void PackedKV::pack(int64_t bh0, int64_t n) {
  bh0_ = bh0;
  const int64_t D = pb_.D;
  parallel_for(0, n * chunks_, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> row(static_cast<size_t>(D));
    for (int64_t t = begin; t < end; ++t) {
      const int64_t pair = t / chunks_, c = t % chunks_, b = (bh0 + pair) / pb_.H, h = (bh0 + pair) % pb_.H;
      float* kt = static_cast<float*>(kt_.get()) + (pair * chunks_ + c) * Dp_ * kKeyChunk;
      float* v = static_cast<float*>(v_.get()) + (pair * chunks_ + c) * kKeyChunk * Dp_;
      for (int64_t j = 0; j < kKeyChunk; ++j) {
        const int64_t p = c * kKeyChunk + j, token = p >= pb_.k_len ? -1 : pb_.k_order ? pb_.k_order[p] : p;
        pb_.k.load_row(b, token, h, D, row.data());
        for (int64_t d = 0; d < D; ++d) kt[d * kKeyChunk + j] = row[size_t(d)];
        pb_.v.load_row(b, token, h, D, v + j * Dp_);
        std::fill(v + j * Dp_ + D, v + (j + 1) * Dp_, 0.0f);
      }
      std::fill(kt + D * kKeyChunk, kt + Dp_ * kKeyChunk, 0.0f);
    }
  });
}

const float* PackedKV::kt(int64_t bh, int64_t chunk) const {
  return static_cast<const float*>(kt_.get()) + ((bh - bh0_) * chunks_ + chunk) * Dp_ * kKeyChunk;
}

const float* PackedKV::v(int64_t bh, int64_t key) const {
  return static_cast<const float*>(v_.get()) + ((bh - bh0_) * chunks_ * kKeyChunk + key) * Dp_;
}

FlashTile::FlashTile(const Problem& pb, const PackedKV& kv, int64_t max_rows)
    : pb_(pb),
      kv_(kv),
      Dp_(padded_head_dim(pb.D)),
      q_(size_t(max_rows * Dp_)),
      kt_(size_t(Dp_ * kKeyChunk)),
      s_(size_t(max_rows * kKeyChunk)),
      o_(size_t(max_rows * Dp_)),
      m_(size_t(max_rows)),
      l_(size_t(max_rows)),
      row_(size_t(Dp_)) {}

void FlashTile::start(int64_t b, int64_t h, int64_t p0, int64_t n, const int64_t* order) {
  b_ = b, h_ = h, p0_ = p0, rows_ = n, order_ = order;
  for (int64_t i = 0; i < n; ++i) {
    float* qi = q_.data() + i * Dp_;
    pb_.q.load_row(b, order ? order[p0 + i] : p0 + i, h, pb_.D, qi);
    for (int64_t d = 0; d < pb_.D; ++d) qi[d] *= pb_.scale_log2;
  }
  std::fill_n(o_.begin(), n * Dp_, 0.0f);
  std::fill_n(m_.begin(), n, kNegInf);
  std::fill_n(l_.begin(), n, 0.0f);
}

void FlashTile::add(int64_t k0, int64_t n, const uint64_t* mask, int64_t mask_stride) {
  const int64_t bh = b_ * pb_.H + h_, chunk = k0 / kKeyChunk, shift = k0 % kKeyChunk;
  const float* kt = kv_.kt(bh, chunk);
  if (shift != 0) {  // keys off the chunk grid (blocks of other than 64k keys): join two chunks
    const float* next = kv_.kt(bh, chunk + 1);
    for (int64_t d = 0; d < Dp_; ++d) {
      float* dst = kt_.data() + d * kKeyChunk;
      std::copy(kt + d * kKeyChunk + shift, kt + (d + 1) * kKeyChunk, dst);
      std::copy(next + d * kKeyChunk, next + d * kKeyChunk + shift, dst + kKeyChunk - shift);
    }
    kt = kt_.data();
  }
  scores(kt);
  update(n, kv_.v(bh, k0), mask, mask_stride);
}

// s[i][j] = sum_d q[i][d] kt[d][j] (keys past the chunk's n are masked by update()). A row's
// 64 scores stay in 8 registers while head_dim streams past.
void FlashTile::scores(const float* __restrict kt) {
  constexpr int64_t kVectors = kKeyChunk / kLanes;
  float* __restrict s = s_.data();
  for (int64_t i = 0; i < rows_; ++i) {
    const float* __restrict qi = q_.data() + i * Dp_;
    f32x8 acc[kVectors] = {};
    for (int64_t d = 0; d < Dp_; ++d) {
      const float* __restrict kd = kt + d * kKeyChunk;
      for (int64_t c = 0; c < kVectors; ++c) acc[c] += qi[d] * load8(kd + c * kLanes);
    }
    for (int64_t c = 0; c < kVectors; ++c) store8(s + i * kKeyChunk + c * kLanes, acc[c]);
  }
}

// Online softmax step for nk keys: rescales each row's running output by 2^(m_old - m_new)
// and adds p[j] v[j] with p = 2^(s - m_new), p = 0 for masked keys and keys past nk. A row
// that sees none of the keys is left alone (its max may still be -inf).
void FlashTile::update(int64_t nk, const float* __restrict v, const uint64_t* mask, int64_t mask_stride) {
  const uint64_t in_range = nk == kKeyChunk ? ~uint64_t(0) : (uint64_t(1) << nk) - 1;
  for (int64_t i = 0; i < rows_; ++i) {
    const uint64_t bits = mask ? mask[i * mask_stride] & in_range : in_range;
    if (bits == 0) continue;
    float* __restrict si = s_.data() + i * kKeyChunk;
    float* __restrict oi = o_.data() + i * Dp_;
    const bool all = bits == ~uint64_t(0);
    if (!all) keep_masked(si, bits, kNegInf);
    const float mx = std::max(m_[size_t(i)], row_max(si));
    for (int64_t j = 0; j < kKeyChunk; ++j) si[j] = exp2_nonpositive(si[j] - mx);
    if (!all) keep_masked(si, bits, 0.0f);  // 2^-126 from the clamp, not 0
    const float alpha = std::exp2(m_[size_t(i)] - mx);  // 0 on a row's first keys (m = -inf)
    l_[size_t(i)] = l_[size_t(i)] * alpha + row_sum(si);
    m_[size_t(i)] = mx;
    int64_t d0 = 0;
    for (; d0 + kValueChunk <= Dp_; d0 += kValueChunk) accumulate_values<kValueChunk>(si, nk, v, Dp_, d0, alpha, oi);
    for (; d0 < Dp_; d0 += kLanes) accumulate_values<kLanes>(si, nk, v, Dp_, d0, alpha, oi);
  }
}

void FlashTile::finish() {
  const int64_t D = pb_.D;
  const size_t out_elem = dtype_size(pb_.out_dtype);
  for (int64_t i = 0; i < rows_; ++i) {
    const int64_t token = order_ ? order_[p0_ + i] : p0_ + i;
    if (token < 0) continue;
    const float l = l_[size_t(i)], inv = l > 0 ? 1.0f / l : 0.0f;
    const float* oi = o_.data() + i * Dp_;
    for (int64_t d = 0; d < D; ++d) row_[size_t(d)] = oi[d] * inv;
    from_f32(row_.data(), pb_.out_dtype, pb_.out + size_t(((b_ * pb_.q_tokens + token) * pb_.H + h_) * D) * out_elem, D);
    if (pb_.lse)
      pb_.lse[(b_ * pb_.H + h_) * pb_.q_tokens + token] =
          l > 0 ? (m_[size_t(i)] + std::log2(l)) * std::numbers::ln2_v<float> : kNegInf;
  }
}

void run_heads(const Problem& pb, int64_t tasks_per_head, int64_t max_rows,
               const std::function<void(FlashTile&, int64_t, int64_t, int64_t)>& fn) {
  const int64_t pairs = pb.B * pb.H;
  const int64_t pair_bytes = 2 * key_chunks(pb.k_len) * kKeyChunk * padded_head_dim(pb.D) * int64_t(sizeof(float));
  const int64_t per_pass = std::clamp<int64_t>(kPackBudget / pair_bytes, 1, std::max<int64_t>(pairs, 1));
  PackedKV kv(pb, per_pass);
  for (int64_t bh0 = 0; bh0 < pairs; bh0 += per_pass) {
    const int64_t n = std::min(per_pass, pairs - bh0);
    kv.pack(bh0, n);
    parallel_for(0, n * tasks_per_head, 1, [&](int64_t begin, int64_t end) {
      FlashTile tile(pb, kv, max_rows);
      for (int64_t t = begin; t < end; ++t) {
        const int64_t bh = bh0 + t / tasks_per_head;
        fn(tile, bh / pb.H, bh % pb.H, t % tasks_per_head);
      }
    });
  }
}

}  // namespace ditkit::attention::cpu
