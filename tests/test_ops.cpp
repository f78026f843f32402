// Every op in core/ops.h against a naive double-precision reference written here, on random
// inputs with odd shapes, strided views, broadcasting and every weight dtype. Each case runs on
// the CPU and, when a GPU is present, on CUDA (tolerances follow the dtypes involved).
#include <gtest/gtest.h>

#include <cfloat>
#include <cmath>
#include <functional>
#include <numeric>
#include <random>

#include "core/ops.h"

using namespace ditkit;

namespace {

using Vec = std::vector<double>;

std::vector<int64_t> unravel(int64_t i, const Shape& s) {
  std::vector<int64_t> idx(s.size());
  for (size_t d = s.size(); d-- > 0;) {
    idx[d] = i % s[d];
    i /= s[d];
  }
  return idx;
}

int64_t ravel(const std::vector<int64_t>& idx, const Shape& s) {
  int64_t r = 0;
  for (size_t d = 0; d < s.size(); ++d) r = r * s[d] + idx[d];
  return r;
}

// Every element of t in row-major logical order, decoded with the scalar converters of
// core/dtype.h (not the kernels under test); CUDA tensors are copied to the host first.
Vec host(const Tensor& t0) {
  const Tensor t = t0.device().is_cpu() ? t0 : t0.to(Device::cpu());
  Vec out(static_cast<size_t>(t.numel()));
  if (t.dtype() == DType::Q8_0) {
    std::vector<float> f(out.size());
    to_f32(DType::Q8_0, t.raw(), f.data(), t.numel());
    return Vec(f.begin(), f.end());
  }
  const char* base = static_cast<const char*>(t.raw());
  if (t.is_contiguous()) {
    std::vector<float> f(out.size());
    to_f32(t.dtype(), base, f.data(), t.numel());
    return Vec(f.begin(), f.end());
  }
  for (int64_t i = 0; i < t.numel(); ++i) {
    auto idx = unravel(i, t.shape());
    int64_t off = 0;
    for (size_t d = 0; d < idx.size(); ++d) off += idx[d] * t.strides()[d];
    float f;
    to_f32(t.dtype(), base + off * int64_t(dtype_size(t.dtype())), &f, 1);
    out[size_t(i)] = f;
  }
  return out;
}

// Values of shape `from` broadcast (torch rules) to shape `to`, row-major.
Vec bcast(const Vec& v, const Shape& from, const Shape& to) {
  Vec out(static_cast<size_t>(shape_numel(to)));
  const size_t lead = to.size() - from.size();
  for (int64_t i = 0; i < shape_numel(to); ++i) {
    auto idx = unravel(i, to);
    std::vector<int64_t> src(from.size());
    for (size_t d = 0; d < from.size(); ++d) src[d] = from[d] == 1 ? 0 : idx[lead + d];
    out[size_t(i)] = v[size_t(ravel(src, from))];
  }
  return out;
}

struct Random {
  std::mt19937 gen{1234};
  std::vector<float> uniform(int64_t n, float lo, float hi) {
    std::uniform_real_distribution<float> dist(lo, hi);
    std::vector<float> v(static_cast<size_t>(n));
    for (float& x : v) x = dist(gen);
    return v;
  }
  Tensor make(const Shape& s, DType t, Device dev, float lo = -2.0f, float hi = 2.0f) {
    return Tensor::from_vector(uniform(shape_numel(s), lo, hi), s, t).to(dev);
  }
  // Q8_0 blocks with random f16 scales and int8 quants.
  Tensor q8_0(const Shape& s, Device dev) {
    const int64_t blocks = shape_numel(s) / kQ8_0Block;
    auto bytes = std::make_shared<std::vector<uint8_t>>(size_t(blocks * kQ8_0BlockBytes));
    std::uniform_int_distribution<int> q(-127, 127);
    for (int64_t b = 0; b < blocks; ++b) {
      uint8_t* p = bytes->data() + b * kQ8_0BlockBytes;
      const uint16_t scale = f32_to_f16(uniform(1, 0.005f, 0.02f)[0]);
      std::memcpy(p, &scale, 2);
      for (int i = 0; i < kQ8_0Block; ++i) p[2 + i] = uint8_t(int8_t(q(gen)));
    }
    return Tensor::from_blob(bytes->data(), s, DType::Q8_0, Device::cpu(), bytes).to(dev);
  }
  Tensor weight(const Shape& s, DType t, Device dev) { return t == DType::Q8_0 ? q8_0(s, dev) : make(s, t, dev, -1, 1); }
};

bool low_precision(DType t) { return t != DType::F32 && t != DType::F64; }

class Ops : public ::testing::TestWithParam<Device> {
 protected:
  void SetUp() override {
    if (dev().is_cuda() && !cuda_available()) GTEST_SKIP() << "no CUDA GPU: the CUDA variant needs one";
  }
  Device dev() const { return GetParam(); }

  // Relative tolerance (to the reference's largest magnitude) for an output of `out`'s dtype.
  // CUDA may run GEMMs on tensor cores (TF32, or bf16 when an input is bf16).
  double tol(const Tensor& out, bool lowp_inputs = false, bool gemm = false) const {
    if (out.dtype() == DType::BF16) return 1.5e-2;
    if (out.dtype() == DType::F16) return 3e-3;
    if (dev().is_cuda() && lowp_inputs) return 2e-2;
    if (dev().is_cuda() && gemm) return 3e-3;
    return 1e-5;
  }

  void expect_near(const Tensor& out, const Shape& shape, const Vec& ref, double rel, const std::string& what) {
    ASSERT_EQ(out.shape(), shape) << what;
    ASSERT_EQ(out.device(), dev()) << what;
    const Vec got = host(out);
    ASSERT_EQ(got.size(), ref.size()) << what;
    double mag = 1e-6;
    for (double r : ref) mag = std::max(mag, std::fabs(r));
    int bad = 0;
    for (size_t i = 0; i < ref.size(); ++i) {
      const bool ok = std::isnan(ref[i]) ? std::isnan(got[i]) : std::fabs(got[i] - ref[i]) <= rel * mag;
      if (!ok && ++bad <= 5)
        ADD_FAILURE() << what << ": element " << i << " is " << got[i] << ", expected " << ref[i] << " (tolerance "
                      << rel * mag << ")";
    }
    EXPECT_EQ(bad, 0) << what << ": " << bad << " of " << ref.size() << " elements differ";
  }

  Random rnd;
};

template <typename Fn>
void expect_error(Fn fn, const std::string& part) {
  try {
    fn();
    ADD_FAILURE() << "expected an error mentioning '" << part << "'";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
  }
}

// ---- copies -------------------------------------------------------------------------------

TEST_P(Ops, CopyStridedBroadcastAndConvert) {
  Tensor base = rnd.make({5, 3, 7}, DType::F32, dev());
  Tensor view = base.permute({2, 0, 1}).slice(1, 1, 5, 2);  // [7, 2, 3], strided
  const Vec src = host(view);
  for (DType t : {DType::F32, DType::BF16, DType::F16, DType::F64}) {
    Tensor dst = Tensor::empty(view.shape(), t, dev());
    ops::copy_(dst, view);
    Vec ref = src;
    if (t != DType::F32) ref = host(Tensor::from_vector(std::vector<float>(src.begin(), src.end()), view.shape(), t));
    expect_near(dst, view.shape(), ref, 0.0, std::string("copy into ") + dtype_name(t));
  }
  // Into a strided destination, from a broadcast source.
  Tensor row = rnd.make({1, 3}, DType::BF16, dev());
  Tensor big = Tensor::zeros({4, 6}, DType::F32, dev());
  Tensor cols = big.slice(1, 0, 6, 2);
  ops::copy_(cols, row.expand({4, 3}));
  Vec ref(24, 0.0);
  const Vec r = host(row);
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 3; ++j) ref[size_t(i * 6 + 2 * j)] = r[size_t(j)];
  expect_near(big, {4, 6}, ref, 0.0, "copy into strided dst");
}

TEST_P(Ops, CopyKeepsIntegersExact) {
  std::vector<int64_t> ids{(int64_t(1) << 40) + 3, -7, 123456789012, 5, 9, 11};
  auto owner = std::make_shared<std::vector<int64_t>>(ids);
  Tensor t = Tensor::from_blob(owner->data(), {2, 3}, DType::I64, Device::cpu(), owner).to(dev());
  Tensor tr = t.transpose(0, 1).contiguous().to(Device::cpu());
  ASSERT_EQ(tr.dtype(), DType::I64);
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 2; ++j) EXPECT_EQ(tr.data<int64_t>()[i * 2 + j], ids[size_t(j * 3 + i)]);
  Tensor f = ops::cast(t.slice(1, 1, 3), DType::I32).to(Device::cpu());
  EXPECT_EQ(f.data<int32_t>()[0], -7);
  EXPECT_EQ(f.data<int32_t>()[2], 9);
}

TEST_P(Ops, FillStridedView) {
  Tensor t = Tensor::zeros({3, 5}, DType::BF16, dev());
  Tensor col = t.select(1, 2);
  ops::fill_(col, 1.5f);
  Vec ref(15, 0.0);
  for (int i = 0; i < 3; ++i) ref[size_t(i * 5 + 2)] = 1.5;
  expect_near(t, {3, 5}, ref, 0.0, "fill_");
}

TEST_P(Ops, CopyFromQ8_0) {
  Tensor q = rnd.q8_0({2, 64}, dev());
  expect_near(ops::cast(q, DType::F32), {2, 64}, host(q), 0.0, "Q8_0 -> f32");
}

// ---- elementwise --------------------------------------------------------------------------

double unary_ref(ops::Unary op, double x) {
  using U = ops::Unary;
  switch (op) {
    case U::Neg: return -x;
    case U::Abs: return std::fabs(x);
    case U::Exp: return std::exp(x);
    case U::Log: return std::log(x);
    case U::Sqrt: return std::sqrt(x);
    case U::Rsqrt: return 1.0 / std::sqrt(x);
    case U::Square: return x * x;
    case U::Sin: return std::sin(x);
    case U::Cos: return std::cos(x);
    case U::Tanh: return std::tanh(x);
    case U::Sigmoid: return 1.0 / (1.0 + std::exp(-x));
    case U::Relu: return x > 0 ? x : 0.0;
    case U::Silu: return x / (1.0 + std::exp(-x));
    case U::GeluErf: return 0.5 * x * (1.0 + std::erf(x / std::sqrt(2.0)));
    case U::GeluTanh: return 0.5 * x * (1.0 + std::tanh(std::sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x)));
    case U::QuickGelu: return x / (1.0 + std::exp(-1.702 * x));
  }
  return 0;
}

TEST_P(Ops, UnaryAllOps) {
  using U = ops::Unary;
  for (DType t : {DType::F32, DType::BF16}) {
    Tensor x = rnd.make({6, 9, 5}, t, dev(), -3, 3).permute({2, 0, 1});  // strided [5, 6, 9]
    Tensor pos = ops::affine(ops::unary(U::Abs, x), 1.0f, 0.1f);
    for (int o = 0; o <= int(U::QuickGelu); ++o) {
      const U op = U(o);
      const Tensor& in = op == U::Log || op == U::Sqrt || op == U::Rsqrt ? pos : x;
      Vec ref = host(in);
      for (double& v : ref) v = unary_ref(op, v);
      Tensor y = ops::unary(op, in);
      EXPECT_EQ(y.dtype(), t);
      expect_near(y, {5, 6, 9}, ref, tol(y), "unary op " + std::to_string(o) + " " + dtype_name(t));
    }
  }
}

TEST_P(Ops, UnaryExtremeInputs) {
  const std::vector<float> xs{-INFINITY, -200, -87, -80, -20, -1e-3f, 0, 1e-3f, 20, 80, 88.5f, 200, INFINITY};
  Tensor x = Tensor::from_vector(xs, {int64_t(xs.size())}).to(dev());
  using U = ops::Unary;
  for (U op : {U::Exp, U::Sigmoid, U::Silu, U::GeluTanh, U::QuickGelu, U::Tanh}) {
    const Vec got = host(ops::unary(op, x));
    for (size_t i = 0; i < xs.size(); ++i) {
      double ref = unary_ref(op, double(xs[i]));
      if (std::fabs(ref) > FLT_MAX) ref = std::copysign(INFINITY, ref);  // f32 overflow
      if (std::isnan(ref)) {
        EXPECT_TRUE(std::isnan(got[i])) << "op " << int(op) << " at " << xs[i];
      } else if (std::isinf(ref)) {
        EXPECT_EQ(got[i], ref) << "op " << int(op) << " at " << xs[i];
      } else {
        EXPECT_NEAR(got[i], ref, 2e-6 * std::fabs(ref) + 1e-30) << "op " << int(op) << " at " << xs[i];
      }
    }
  }
  EXPECT_TRUE(std::isnan(ops::unary(U::Exp, Tensor::from_vector({NAN}, {1}).to(dev())).item()));
}

TEST_P(Ops, BinaryBroadcastAllOps) {
  using B = ops::Binary;
  Tensor a = rnd.make({5, 1, 3}, DType::F32, dev(), 0.5, 2).permute({2, 1, 0});  // [3, 1, 5] strided
  Tensor b = rnd.make({4, 1}, DType::BF16, dev(), 0.5, 2);
  const Shape out_shape{3, 4, 5};
  const Vec av = bcast(host(a), a.shape(), out_shape), bv = bcast(host(b), b.shape(), out_shape);
  for (int o = 0; o <= int(B::Pow); ++o) {
    Vec ref(av.size());
    for (size_t i = 0; i < av.size(); ++i) {
      const double x = av[i], y = bv[i];
      switch (B(o)) {
        case B::Add: ref[i] = x + y; break;
        case B::Sub: ref[i] = x - y; break;
        case B::Mul: ref[i] = x * y; break;
        case B::Div: ref[i] = x / y; break;
        case B::Max: ref[i] = std::max(x, y); break;
        case B::Min: ref[i] = std::min(x, y); break;
        case B::Pow: ref[i] = std::pow(x, y); break;
      }
    }
    Tensor y = ops::binary(B(o), a, b);
    EXPECT_EQ(y.dtype(), DType::F32);
    expect_near(y, out_shape, ref, tol(y), "binary op " + std::to_string(o));
  }
  // Result dtype follows the first input.
  Tensor yb = ops::add(b, a);
  Vec ref(av.size());
  for (size_t i = 0; i < av.size(); ++i) ref[i] = av[i] + bv[i];
  EXPECT_EQ(yb.dtype(), DType::BF16);
  expect_near(yb, out_shape, ref, tol(yb), "bf16 + f32");
  expect_error([&] { ops::add(rnd.make({3, 4}, DType::F32, dev()), rnd.make({5}, DType::F32, dev())); },
               "do not broadcast");
}

TEST_P(Ops, AffineAndModulate) {
  Tensor x = rnd.make({2, 7, 13}, DType::F32, dev());
  Vec xv = host(x), ref(xv.size());
  for (size_t i = 0; i < xv.size(); ++i) ref[i] = xv[i] * 0.75 - 1.25;
  Tensor y = ops::affine(x, 0.75f, -1.25f);
  expect_near(y, x.shape(), ref, tol(y), "affine");

  // Rows longer than one 4096-element chunk, too.
  for (auto [t, d] : {std::pair{DType::F32, int64_t(13)}, {DType::BF16, int64_t(13)}, {DType::F32, int64_t(4099)}}) {
    Tensor xt = rnd.make({2, 7, d}, t, dev());
    Tensor scale = rnd.make({2, 1, d}, DType::F32, dev()), shift = rnd.make({d}, DType::F32, dev());
    const Vec xs = host(xt), s = bcast(host(scale), scale.shape(), xt.shape()), h = bcast(host(shift), {d}, xt.shape());
    Vec r(xs.size());
    for (size_t i = 0; i < xs.size(); ++i) r[i] = xs[i] * (1.0 + s[i]) + h[i];
    Tensor m = ops::modulate(xt, scale, shift);
    expect_near(m, xt.shape(), r, tol(m), std::string("modulate ") + dtype_name(t));
  }
  expect_error([&] { ops::modulate(x, rnd.make({3, 13}, DType::F32, dev()), rnd.make({13}, DType::F32, dev())); },
               "do not broadcast");
}

// ---- linear algebra -----------------------------------------------------------------------

TEST_P(Ops, LinearEveryWeightDtype) {
  const int64_t K = 64, N = 300;  // N spans more than one 256-row weight panel
  for (DType wt : {DType::F32, DType::F16, DType::BF16, DType::F8_E4M3, DType::F8_E5M2, DType::Q8_0}) {
    for (DType xt : {DType::F32, DType::BF16}) {
      Tensor x = rnd.make({2, 7, K}, xt, dev());
      Tensor w = rnd.weight({N, K}, wt, dev());
      Tensor b = rnd.make({N}, DType::F32, dev());
      const Vec xv = host(x), wv = host(w), bv = host(b);
      for (bool with_bias : {false, true}) {
        Vec ref(static_cast<size_t>(14 * N));
        for (int64_t m = 0; m < 14; ++m)
          for (int64_t n = 0; n < N; ++n) {
            double s = with_bias ? bv[size_t(n)] : 0.0;
            for (int64_t k = 0; k < K; ++k) s += xv[size_t(m * K + k)] * wv[size_t(n * K + k)];
            ref[size_t(m * N + n)] = s;
          }
        Tensor y = ops::linear(x, w, with_bias ? b : Tensor());
        EXPECT_EQ(y.dtype(), xt);
        expect_near(y, {2, 7, N}, ref, tol(y, low_precision(wt) || low_precision(xt), true),
                    std::string("linear w=") + dtype_name(wt) + " x=" + dtype_name(xt) + (with_bias ? " +bias" : ""));
      }
    }
  }
}

TEST_P(Ops, LinearStridedInputAndTransposedWeight) {
  Tensor x = rnd.make({33, 5}, DType::F32, dev()).transpose(0, 1);  // [5, 33] strided
  Tensor w = rnd.make({33, 19}, DType::F32, dev()).transpose(0, 1);  // [19, 33] column-major view
  const Vec xv = host(x), wv = host(w);
  Vec ref(5 * 19);
  for (int m = 0; m < 5; ++m)
    for (int n = 0; n < 19; ++n) {
      double s = 0;
      for (int k = 0; k < 33; ++k) s += xv[size_t(m * 33 + k)] * wv[size_t(n * 33 + k)];
      ref[size_t(m * 19 + n)] = s;
    }
  Tensor y = ops::linear(x, w);
  expect_near(y, {5, 19}, ref, tol(y, false, true), "linear strided");
  // A broadcast (stride 0) weight is gathered, not read past its storage.
  Tensor row = rnd.make({1, 33}, DType::F32, dev());
  const Vec rv = host(row);
  for (int m = 0; m < 5; ++m) {
    double s = 0;
    for (int k = 0; k < 33; ++k) s += xv[size_t(m * 33 + k)] * rv[size_t(k)];
    for (int n = 0; n < 19; ++n) ref[size_t(m * 19 + n)] = s;
  }
  Tensor yb = ops::linear(x, row.expand({19, 33}));
  expect_near(yb, {5, 19}, ref, tol(yb, false, true), "linear broadcast weight");
  expect_error([&] { ops::linear(x, rnd.make({19, 32}, DType::F32, dev())); }, "does not match weight");
  expect_error([&] { ops::linear(x, w, rnd.make({18}, DType::F32, dev())); }, "bias");
  // Q8_0 rows must be whole 32-element blocks.
  expect_error([&] { ops::linear(rnd.make({3, 48}, DType::F32, dev()), rnd.q8_0({2, 48}, dev())); }, "Q8_0");
}

TEST_P(Ops, MatmulBatchBroadcastAndTransposes) {
  const int64_t M = 5, K = 7, N = 9;
  for (bool ta : {false, true})
    for (bool tb : {false, true})
      for (DType t : {DType::F32, DType::BF16}) {
        // a: strided [2, 1, M, K] view, or stored [2, 1, K, M] when ta; b likewise [3, K, N] / [3, N, K].
        Tensor a = ta ? rnd.make({2, 1, K, M}, t, dev()) : rnd.make({2, 1, K, M}, t, dev()).transpose(2, 3);
        Tensor b = tb ? rnd.make({3, N, K}, DType::F32, dev()) : rnd.make({3, N, K}, DType::F32, dev()).transpose(1, 2);
        const Shape batch{2, 3};
        const Shape as{2, 3, a.dim(-2), a.dim(-1)}, bs{2, 3, b.dim(-2), b.dim(-1)};
        const Vec av = bcast(host(a), a.shape(), as), bv = bcast(host(b), b.shape(), bs);
        Vec ref(static_cast<size_t>(6 * M * N));
        for (int64_t bi = 0; bi < 6; ++bi)
          for (int64_t m = 0; m < M; ++m)
            for (int64_t n = 0; n < N; ++n) {
              double s = 0;
              for (int64_t k = 0; k < K; ++k) {
                const double x = ta ? av[size_t((bi * K + k) * M + m)] : av[size_t((bi * M + m) * K + k)];
                const double y = tb ? bv[size_t((bi * N + n) * K + k)] : bv[size_t((bi * K + k) * N + n)];
                s += x * y;
              }
              ref[size_t((bi * M + m) * N + n)] = s;
            }
        Tensor y = ops::matmul(a, b, ta, tb);
        expect_near(y, {2, 3, M, N}, ref, tol(y, low_precision(t), true),
                    "matmul ta=" + std::to_string(ta) + " tb=" + std::to_string(tb) + " " + dtype_name(t));
      }
  // Neither dim of a has unit stride: the kernel must gather it.
  Tensor a = rnd.make({M, 2 * K}, DType::F32, dev()).slice(1, 0, 2 * K, 2);
  Tensor b = rnd.make({K, N}, DType::F32, dev());
  const Vec av = host(a), bv = host(b);
  Vec ref(size_t(M * N), 0.0);
  for (int64_t m = 0; m < M; ++m)
    for (int64_t n = 0; n < N; ++n)
      for (int64_t k = 0; k < K; ++k) ref[size_t(m * N + n)] += av[size_t(m * K + k)] * bv[size_t(k * N + n)];
  Tensor y = ops::matmul(a, b);
  expect_near(y, {M, N}, ref, tol(y, false, true), "matmul gathered a");
  expect_error([&] { ops::matmul(rnd.make({4, 5}, DType::F32, dev()), rnd.make({6, 3}, DType::F32, dev())); },
               "inner dims");
}

// ---- convolution --------------------------------------------------------------------------

struct ConvArgs {
  std::array<int64_t, 3> stride{1, 1, 1}, pad_front{0, 0, 0}, pad_back{0, 0, 0}, dilation{1, 1, 1};
  int64_t groups = 1;
};

// Direct 3-D convolution over x [N, C, T, H, W] and w [O, C/groups, kt, kh, kw].
Vec conv_ref(const Vec& x, const Shape& xs, const Vec& w, const Shape& ws, const Vec& bias, const ConvArgs& a,
             Shape* out_shape) {
  const int64_t N = xs[0], C = xs[1], O = ws[0], Cg = C / a.groups, Og = O / a.groups;
  std::array<int64_t, 3> in{xs[2], xs[3], xs[4]}, k{ws[2], ws[3], ws[4]}, out;
  for (int d = 0; d < 3; ++d)
    out[d] = (in[d] + a.pad_front[d] + a.pad_back[d] - a.dilation[d] * (k[d] - 1) - 1) / a.stride[d] + 1;
  *out_shape = {N, O, out[0], out[1], out[2]};
  Vec y(static_cast<size_t>(shape_numel(*out_shape)));
  for (int64_t i = 0; i < int64_t(y.size()); ++i) {
    auto o = unravel(i, *out_shape);
    const int64_t g = o[1] / Og;
    double s = bias.empty() ? 0.0 : bias[size_t(o[1])];
    for (int64_t c = 0; c < Cg; ++c)
      for (int64_t p = 0; p < k[0]; ++p)
        for (int64_t q = 0; q < k[1]; ++q)
          for (int64_t r = 0; r < k[2]; ++r) {
            const int64_t t = o[2] * a.stride[0] - a.pad_front[0] + p * a.dilation[0];
            const int64_t h = o[3] * a.stride[1] - a.pad_front[1] + q * a.dilation[1];
            const int64_t v = o[4] * a.stride[2] - a.pad_front[2] + r * a.dilation[2];
            if (t < 0 || t >= in[0] || h < 0 || h >= in[1] || v < 0 || v >= in[2]) continue;
            const int64_t xi = (((o[0] * C + g * Cg + c) * in[0] + t) * in[1] + h) * in[2] + v;
            const int64_t wi = (((o[1] * Cg + c) * k[0] + p) * k[1] + q) * k[2] + r;
            s += x[size_t(xi)] * w[size_t(wi)];
          }
    y[size_t(i)] = s;
  }
  return y;
}

TEST_P(Ops, Conv2dGroupsStrideDilationPadding) {
  struct Case {
    Shape x, w;
    std::array<int64_t, 2> stride, pad, dil;
    int64_t groups;
    DType wt;
  };
  const std::vector<Case> cases = {
      {{2, 6, 9, 11}, {8, 3, 3, 2}, {2, 1}, {1, 2}, {1, 2}, 2, DType::F32},
      {{1, 5, 8, 7}, {7, 5, 3, 3}, {1, 1}, {1, 1}, {1, 1}, 1, DType::BF16},
      {{1, 4, 6, 9}, {6, 4, 3, 3}, {2, 2}, {1, 1}, {1, 1}, 1, DType::F16},
      {{1, 4, 6, 9}, {6, 2, 3, 3}, {1, 2}, {0, 1}, {2, 1}, 2, DType::F8_E4M3},
      {{1, 16, 5, 6}, {12, 8, 2, 2}, {1, 1}, {1, 0}, {1, 1}, 2, DType::Q8_0},
      {{2, 9, 4, 5}, {11, 9, 1, 1}, {1, 1}, {0, 0}, {1, 1}, 1, DType::F8_E5M2},  // pointwise
  };
  for (const Case& c : cases) {
    for (DType xt : {DType::F32, DType::BF16}) {
      Tensor x = rnd.make(c.x, xt, dev());
      Tensor w = rnd.weight(c.w, c.wt, dev());
      Tensor b = rnd.make({c.w[0]}, DType::F32, dev());
      ConvArgs a;
      a.stride = {1, c.stride[0], c.stride[1]};
      a.pad_front = a.pad_back = {0, c.pad[0], c.pad[1]};
      a.dilation = {1, c.dil[0], c.dil[1]};
      a.groups = c.groups;
      Shape os;
      Vec ref = conv_ref(host(x), {c.x[0], c.x[1], 1, c.x[2], c.x[3]}, host(w), {c.w[0], c.w[1], 1, c.w[2], c.w[3]},
                         host(b), a, &os);
      Tensor y = ops::conv2d(x, w, b, c.stride, c.pad, c.dil, c.groups);
      expect_near(y, {os[0], os[1], os[3], os[4]}, ref, tol(y, low_precision(c.wt) || low_precision(xt), true),
                  std::string("conv2d w=") + dtype_name(c.wt) + " x=" + dtype_name(xt) + " " + shape_str(c.w));
    }
  }
  // Strided (non-contiguous) input, no bias.
  Tensor x = rnd.make({1, 7, 6, 3}, DType::F32, dev()).permute({0, 3, 1, 2});  // [1, 3, 7, 6]
  Tensor w = rnd.make({4, 3, 2, 2}, DType::F32, dev());
  Shape os;
  Vec ref = conv_ref(host(x), {1, 3, 1, 7, 6}, host(w), {4, 3, 1, 2, 2}, {}, ConvArgs{}, &os);
  Tensor y = ops::conv2d(x, w, Tensor());
  expect_near(y, {1, 4, 6, 5}, ref, tol(y, false, true), "conv2d strided input");
  expect_error([&] { ops::conv2d(x, rnd.make({4, 2, 2, 2}, DType::F32, dev()), Tensor()); }, "does not match weight");
}

TEST_P(Ops, Conv3dCausalPaddingAndStride) {
  struct Case {
    Shape x, w;
    std::array<int64_t, 3> stride;
    std::array<int64_t, 6> pad;
    DType wt;
  };
  const std::vector<Case> cases = {
      {{1, 4, 5, 7, 6}, {5, 4, 3, 3, 3}, {1, 1, 1}, {2, 0, 1, 1, 1, 1}, DType::F32},   // causal
      {{2, 3, 6, 5, 7}, {4, 3, 3, 3, 3}, {2, 2, 1}, {2, 0, 1, 1, 0, 2}, DType::BF16},  // downsampling
      {{1, 4, 3, 4, 5}, {6, 4, 3, 1, 1}, {1, 1, 1}, {2, 0, 0, 0, 0, 0}, DType::F16},   // time-only kernel
      {{1, 32, 2, 3, 5}, {3, 32, 1, 1, 1}, {1, 1, 1}, {0, 0, 0, 0, 0, 0}, DType::Q8_0}, // pointwise
      {{1, 4, 4, 4, 4}, {2, 4, 2, 2, 2}, {1, 1, 1}, {1, 0, 0, 1, 1, 0}, DType::F8_E4M3},
      // More output positions than one im2col chunk holds.
      {{1, 4, 3, 120, 120}, {5, 4, 3, 3, 3}, {1, 1, 1}, {2, 0, 1, 1, 1, 1}, DType::BF16},
      // A weight larger than the scratch bound is converted in panels of rows.
      {{1, 1024, 1, 1, 2}, {4200, 1024, 1, 1, 1}, {1, 1, 1}, {0, 0, 0, 0, 0, 0}, DType::BF16},
  };
  for (const Case& c : cases) {
    Tensor x = rnd.make(c.x, DType::F32, dev());
    Tensor w = rnd.weight(c.w, c.wt, dev());
    Tensor b = rnd.make({c.w[0]}, DType::BF16, dev());
    ConvArgs a;
    a.stride = c.stride;
    a.pad_front = {c.pad[0], c.pad[2], c.pad[4]};
    a.pad_back = {c.pad[1], c.pad[3], c.pad[5]};
    Shape os;
    Vec ref = conv_ref(host(x), c.x, host(w), c.w, host(b), a, &os);
    Tensor y = ops::conv3d(x, w, b, c.stride, c.pad);
    expect_near(y, os, ref, tol(y, low_precision(c.wt), true),
                std::string("conv3d w=") + dtype_name(c.wt) + " " + shape_str(c.w));
  }
  expect_error([&] { ops::conv3d(rnd.make({1, 4, 2, 2, 2}, DType::F32, dev()), rnd.make({2, 4, 3, 3, 3}, DType::F32, dev()), Tensor()); },
               "kernel extent");
}

// ---- normalisation ------------------------------------------------------------------------

TEST_P(Ops, LayerNormAndRmsNorm) {
  for (DType t : {DType::F32, DType::BF16}) {
    Tensor x = rnd.make({37, 3, 2}, t, dev(), -3, 5).permute({1, 2, 0});  // [3, 2, 37] strided
    Tensor w = rnd.make({37}, DType::F32, dev()), b = rnd.make({37}, DType::BF16, dev());
    const Vec xv = host(x), wv = host(w), bv = host(b);
    const int64_t D = 37, rows = 6;
    for (int variant = 0; variant < 3; ++variant) {
      Vec ln(xv.size()), rms(xv.size());
      for (int64_t r = 0; r < rows; ++r) {
        double mean = 0, sq = 0, var = 0;
        for (int64_t i = 0; i < D; ++i) mean += xv[size_t(r * D + i)] / D;
        for (int64_t i = 0; i < D; ++i) {
          const double v = xv[size_t(r * D + i)];
          var += (v - mean) * (v - mean) / D;
          sq += v * v / D;
        }
        for (int64_t i = 0; i < D; ++i) {
          const double v = xv[size_t(r * D + i)];
          const double wi = variant == 0 ? 1.0 : wv[size_t(i)], bi = variant == 2 ? bv[size_t(i)] : 0.0;
          ln[size_t(r * D + i)] = (v - mean) / std::sqrt(var + 1e-6) * wi + bi;
          rms[size_t(r * D + i)] = v / std::sqrt(sq + 1e-6) * wi;
        }
      }
      Tensor y = ops::layer_norm(x, variant ? w : Tensor(), variant == 2 ? b : Tensor(), 1e-6f);
      expect_near(y, {3, 2, 37}, ln, tol(y), "layer_norm variant " + std::to_string(variant) + " " + dtype_name(t));
      Tensor z = ops::rms_norm(x, variant ? w : Tensor(), 1e-6f);
      expect_near(z, {3, 2, 37}, rms, tol(z), "rms_norm variant " + std::to_string(variant) + " " + dtype_name(t));
    }
  }
  expect_error([&] { ops::layer_norm(rnd.make({2, 5}, DType::F32, dev()), rnd.make({4}, DType::F32, dev()), Tensor(), 1e-5f); },
               "layer_norm");
}

TEST_P(Ops, GroupNorm) {
  for (const Shape& s : {Shape{2, 6, 3, 5, 4}, Shape{1, 8, 7, 9}, Shape{3, 4}, Shape{1, 4, 50, 50}}) {
    const int64_t groups = s[1] / 2;
    Tensor x = rnd.make(s, DType::F32, dev(), -1, 3);
    Tensor w = rnd.make({s[1]}, DType::F32, dev()), b = rnd.make({s[1]}, DType::F32, dev());
    const Vec xv = host(x), wv = host(w), bv = host(b);
    const int64_t spatial = shape_numel(s) / (s[0] * s[1]), len = 2 * spatial;
    Vec ref(xv.size());
    for (int64_t blk = 0; blk < s[0] * groups; ++blk) {
      double mean = 0, var = 0;
      for (int64_t i = 0; i < len; ++i) mean += xv[size_t(blk * len + i)] / len;
      for (int64_t i = 0; i < len; ++i) var += std::pow(xv[size_t(blk * len + i)] - mean, 2) / len;
      for (int64_t i = 0; i < len; ++i) {
        const int64_t c = (blk % groups) * 2 + i / spatial;
        ref[size_t(blk * len + i)] = (xv[size_t(blk * len + i)] - mean) / std::sqrt(var + 1e-5) * wv[size_t(c)] + bv[size_t(c)];
      }
    }
    Tensor y = ops::group_norm(x, groups, w, b, 1e-5f);
    expect_near(y, s, ref, tol(y), "group_norm " + shape_str(s));
  }
  expect_error([&] { ops::group_norm(rnd.make({1, 6, 2}, DType::F32, dev()), 4, Tensor(), Tensor(), 1e-5f); },
               "groups");
}

TEST_P(Ops, SoftmaxAnyDim) {
  Tensor x = rnd.make({4, 5, 11}, DType::F32, dev(), -6, 6).transpose(0, 2);  // [11, 5, 4] strided
  const Vec xv = host(x);
  const Shape s = x.shape();
  for (int64_t dim : {0, 1, 2, -1}) {
    const int64_t d = dim < 0 ? dim + 3 : dim;
    Vec ref(xv.size());
    for (int64_t i = 0; i < int64_t(xv.size()); ++i) {
      auto idx = unravel(i, s);
      double mx = -INFINITY, sum = 0;
      for (int64_t j = 0; j < s[size_t(d)]; ++j) {
        idx[size_t(d)] = j;
        mx = std::max(mx, xv[size_t(ravel(idx, s))]);
      }
      for (int64_t j = 0; j < s[size_t(d)]; ++j) {
        idx[size_t(d)] = j;
        sum += std::exp(xv[size_t(ravel(idx, s))] - mx);
      }
      ref[size_t(i)] = std::exp(xv[size_t(i)] - mx) / sum;
    }
    Tensor y = ops::softmax(x, dim);
    expect_near(y, s, ref, tol(y), "softmax dim " + std::to_string(dim));
  }
  // Masked (-inf) entries get exactly zero weight.
  Tensor masked = Tensor::from_vector({0, -INFINITY, 1}, {1, 3}).to(dev());
  const double e = std::exp(1.0);
  expect_near(ops::softmax(masked, -1), {1, 3}, {1 / (1 + e), 0, e / (1 + e)}, 1e-6, "softmax with -inf");
  Tensor yb = ops::softmax(x.to(DType::BF16), -1);
  EXPECT_EQ(yb.dtype(), DType::BF16);
  expect_error([&] { ops::softmax(x, 3); }, "out of range");
}

// ---- positions ----------------------------------------------------------------------------

TEST_P(Ops, RopeBroadcastCosSin) {
  const int64_t B = 2, S = 5, H = 3, D = 10;
  for (DType t : {DType::F32, DType::BF16}) {
    Tensor x = rnd.make({B, H, S, D}, t, dev()).transpose(1, 2);  // [B, S, H, D] strided
    Tensor cos = rnd.make({S, 1, D / 2}, DType::F32, dev()), sin = rnd.make({S, 1, D / 2}, DType::F32, dev());
    const Shape half{B, S, H, D / 2};
    const Vec xv = host(x), cv = bcast(host(cos), cos.shape(), half), sv = bcast(host(sin), sin.shape(), half);
    Vec ref(xv.size());
    for (int64_t p = 0; p < shape_numel(half); ++p) {
      const double a = xv[size_t(2 * p)], b = xv[size_t(2 * p + 1)];
      ref[size_t(2 * p)] = a * cv[size_t(p)] - b * sv[size_t(p)];
      ref[size_t(2 * p + 1)] = a * sv[size_t(p)] + b * cv[size_t(p)];
    }
    Tensor y = ops::rope(x, cos, sin);
    expect_near(y, {B, S, H, D}, ref, tol(y), std::string("rope ") + dtype_name(t));
  }
  expect_error([&] { ops::rope(rnd.make({2, 6}, DType::F32, dev()), rnd.make({2, 2}, DType::F32, dev()), rnd.make({2, 2}, DType::F32, dev())); },
               "rope");
}

TEST_P(Ops, EmbeddingIdsAndTableDtypes) {
  const int64_t V = 13, D = 64;
  for (DType tt : {DType::F32, DType::BF16, DType::Q8_0})
    for (DType it : {DType::I32, DType::I64}) {
      Tensor table = rnd.weight({V, D}, tt, dev());
      const std::vector<float> idv{3, 0, 12, 7, 7, 1};
      Tensor ids = Tensor::from_vector(idv, {2, 3}, it).to(dev());
      const Vec tv = host(table);
      Vec ref;
      for (float id : idv) ref.insert(ref.end(), tv.begin() + int64_t(id) * D, tv.begin() + (int64_t(id) + 1) * D);
      for (DType out : {DType::F32, DType::BF16}) {
        Tensor y = ops::embedding(table, ids, out);
        EXPECT_EQ(y.dtype(), out);
        expect_near(y, {2, 3, D}, ref, tol(y), std::string("embedding ") + dtype_name(tt) + " " + dtype_name(it));
      }
    }
  Tensor table = rnd.make({V, 4}, DType::F32, dev());
  expect_error([&] { ops::embedding(table, Tensor::from_vector({2, 13}, {2}, DType::I64).to(dev())); }, "id 13");
  expect_error([&] { ops::embedding(table, Tensor::from_vector({-1}, {1}, DType::I32).to(dev())); }, "id -1");
}

// ---- shape --------------------------------------------------------------------------------

TEST_P(Ops, ConcatAndPad) {
  Tensor a = rnd.make({2, 3, 4}, DType::F32, dev());
  Tensor b = rnd.make({2, 4, 5}, DType::BF16, dev()).transpose(1, 2);  // [2, 5, 4] strided
  Tensor c = rnd.make({2, 1, 4}, DType::F32, dev());
  Tensor y = ops::concat({a, b, c}, 1);
  const Vec av = host(a), bv = host(b), cv = host(c);
  Vec ref;
  for (int64_t n = 0; n < 2; ++n) {
    ref.insert(ref.end(), av.begin() + n * 12, av.begin() + (n + 1) * 12);
    ref.insert(ref.end(), bv.begin() + n * 20, bv.begin() + (n + 1) * 20);
    ref.insert(ref.end(), cv.begin() + n * 4, cv.begin() + (n + 1) * 4);
  }
  EXPECT_EQ(y.dtype(), DType::F32);
  expect_near(y, {2, 9, 4}, ref, 0.0, "concat dim 1");
  expect_error([&] { ops::concat({a, rnd.make({2, 3, 5}, DType::F32, dev())}, 1); }, "concat");

  // F.pad order: (last_before, last_after, prev_before, prev_after).
  Tensor x = rnd.make({2, 3, 4}, DType::F32, dev()).permute({0, 2, 1});  // [2, 4, 3]
  Tensor p = ops::pad(x, {1, 2, 0, 1}, -0.5f);
  const Vec xv = host(x);
  Vec pref(2 * 5 * 6, -0.5);
  for (int64_t n = 0; n < 2; ++n)
    for (int64_t i = 0; i < 4; ++i)
      for (int64_t j = 0; j < 3; ++j) pref[size_t((n * 5 + i) * 6 + j + 1)] = xv[size_t((n * 4 + i) * 3 + j)];
  expect_near(p, {2, 5, 6}, pref, 0.0, "pad");
}

// Output of torch's F.interpolate for one dim: source taps and weights (align_corners=False).
Vec resize_ref(const Vec& x, const Shape& s, int64_t oh, int64_t ow, ops::Resize mode) {
  auto taps = [&](int64_t in, int64_t out, int64_t o, int64_t* i0, int64_t* i1, double* l1) {
    const float scale = float(in) / float(out);
    if (mode == ops::Resize::Bilinear) {
      const double src = std::max(double(scale) * (o + 0.5) - 0.5, 0.0);
      *i0 = int64_t(src);
      *i1 = std::min(*i0 + 1, in - 1);
      *l1 = src - double(*i0);
    } else {
      const double src = mode == ops::Resize::Nearest ? double(float(o) * scale) : double((float(o) + 0.5f) * scale);
      *i0 = *i1 = std::min(int64_t(std::floor(src)), in - 1);
      *l1 = 0;
    }
  };
  Vec y(static_cast<size_t>(s[0] * s[1] * oh * ow));
  for (int64_t p = 0; p < s[0] * s[1]; ++p)
    for (int64_t i = 0; i < oh; ++i)
      for (int64_t j = 0; j < ow; ++j) {
        int64_t h0, h1, w0, w1;
        double lh, lw;
        taps(s[2], oh, i, &h0, &h1, &lh);
        taps(s[3], ow, j, &w0, &w1, &lw);
        auto at = [&](int64_t h, int64_t w) { return x[size_t((p * s[2] + h) * s[3] + w)]; };
        y[size_t((p * oh + i) * ow + j)] = (1 - lh) * ((1 - lw) * at(h0, w0) + lw * at(h0, w1)) +
                                           lh * ((1 - lw) * at(h1, w0) + lw * at(h1, w1));
      }
  return y;
}

TEST_P(Ops, ResizeModes) {
  // Known torch outputs on a ramp.
  Tensor ramp = Tensor::from_vector({0, 1, 2, 3, 4}, {1, 1, 1, 5}).to(dev());
  expect_near(ops::resize(ramp, 1, 3, ops::Resize::Nearest), {1, 1, 1, 3}, {0, 1, 3}, 0.0, "nearest 5->3");
  expect_near(ops::resize(ramp, 1, 3, ops::Resize::NearestExact), {1, 1, 1, 3}, {0, 2, 4}, 0.0, "nearest-exact 5->3");
  expect_near(ops::resize(ramp, 1, 3, ops::Resize::Bilinear), {1, 1, 1, 3}, {1.0 / 3, 2, 11.0 / 3}, 1e-6,
              "bilinear 5->3");
  Tensor two = Tensor::from_vector({0, 10}, {1, 1, 1, 2}).to(dev());
  expect_near(ops::resize(two, 1, 4, ops::Resize::Bilinear), {1, 1, 1, 4}, {0, 2.5, 7.5, 10}, 1e-6, "bilinear 2->4");

  for (DType t : {DType::F32, DType::BF16}) {
    Tensor x = rnd.make({2, 3, 7, 5}, t, dev());
    for (auto [oh, ow] : {std::pair<int64_t, int64_t>{14, 10}, {3, 4}, {9, 13}, {7, 5}})
      for (ops::Resize mode : {ops::Resize::Nearest, ops::Resize::NearestExact, ops::Resize::Bilinear}) {
        Tensor y = ops::resize(x, oh, ow, mode);
        expect_near(y, {2, 3, oh, ow}, resize_ref(host(x), x.shape(), oh, ow, mode), tol(y),
                    "resize mode " + std::to_string(int(mode)) + " to " + std::to_string(oh) + "x" + std::to_string(ow));
      }
  }
}

// ---- reductions ---------------------------------------------------------------------------

TEST_P(Ops, ReduceDimsKeepdim) {
  Tensor x = rnd.make({3, 5, 2, 7}, DType::F32, dev()).permute({1, 0, 3, 2});  // [5, 3, 7, 2] strided
  const Shape s = x.shape();
  const Vec xv = host(x);
  using R = ops::Reduce;
  for (const std::vector<int64_t>& dims : {std::vector<int64_t>{}, {0}, {1, 3}, {-1}, {0, 2}, {2, 1, 0}})
    for (bool keep : {false, true})
      for (R op : {R::Sum, R::Mean, R::Max, R::Min}) {
        std::vector<bool> red(4, dims.empty());
        for (int64_t d : dims) red[size_t(d < 0 ? d + 4 : d)] = true;
        Shape os, full;
        for (size_t d = 0; d < 4; ++d) {
          full.push_back(red[d] ? 1 : s[d]);
          if (!red[d] || keep) os.push_back(red[d] ? 1 : s[d]);
        }
        Vec acc(size_t(shape_numel(full)), op == R::Max ? -INFINITY : op == R::Min ? INFINITY : 0.0);
        Vec count(acc.size(), 0.0);
        for (int64_t i = 0; i < int64_t(xv.size()); ++i) {
          auto idx = unravel(i, s);
          for (size_t d = 0; d < 4; ++d)
            if (red[d]) idx[d] = 0;
          double& a = acc[size_t(ravel(idx, full))];
          const double v = xv[size_t(i)];
          a = op == R::Max ? std::max(a, v) : op == R::Min ? std::min(a, v) : a + v;
          count[size_t(ravel(idx, full))] += 1;
        }
        if (op == R::Mean)
          for (size_t i = 0; i < acc.size(); ++i) acc[i] /= count[i];
        Tensor y = ops::reduce(op, x, dims, keep);
        expect_near(y, os, acc, tol(y),
                    "reduce op " + std::to_string(int(op)) + " dims " + std::to_string(dims.size()) + " keep " +
                        std::to_string(keep));
      }
  // A long row exercises chunked partial sums; NaN propagates through max.
  Tensor big = Tensor::full({3, 10000}, 0.1f, DType::F32, dev());
  const double total = 10000 * double(0.1f);
  expect_near(ops::sum(big, {1}), {3}, {total, total, total}, 1e-6, "long sum");
  Tensor withnan = Tensor::from_vector({1, NAN, 3}, {3}).to(dev());
  EXPECT_TRUE(std::isnan(ops::reduce(R::Max, withnan).item()));
  expect_error([&] { ops::sum(x, {4}); }, "out of range");
}

INSTANTIATE_TEST_SUITE_P(Devices, Ops, ::testing::Values(Device::cpu(), Device::cuda(0)),
                         [](const ::testing::TestParamInfo<Device>& info) { return info.param.is_cpu() ? "cpu" : "cuda"; });

}  // namespace
