// CUDA runtime: device count, caching allocator, host <-> device copies, strided copies and
// conversions on the device, and the backend's host-side planning. Tests that need a GPU skip
// with a message when none is present. (Suite "cuda", so `ctest -R cuda` selects them.)
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "core/allocator.h"
#include "core/ops.h"
#include "core/tensor.h"
#ifdef DITKIT_WITH_CUDA
#include "core/cuda/gemm_plan.h"
#include "core/cuda/kernels.h"
#endif

using namespace ditkit;

namespace {

#define REQUIRE_GPU()                                                                 \
  do {                                                                                \
    if (!cuda_available()) GTEST_SKIP() << "no CUDA GPU on this machine (or no driver)"; \
  } while (0)

std::vector<float> iota_values(int64_t n, float scale = 1.0f) {
  std::vector<float> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[size_t(i)] = (float(i) - float(n) / 2) * scale;
  return v;
}

}  // namespace

TEST(cuda, DeviceCountNeverThrows) {
  int n = -1;
  EXPECT_NO_THROW(n = cuda_device_count());
  EXPECT_GE(n, 0);
  EXPECT_EQ(cuda_available(), n > 0);
}

TEST(cuda, MissingDeviceIsANamedError) {
  int n = cuda_device_count();
  try {
    Tensor::empty({4}, DType::F32, Device::cuda(n + 3));
    FAIL() << "allocating on a missing device must throw";
  } catch (const Error& e) {
#ifdef DITKIT_WITH_CUDA
    EXPECT_NE(std::string(e.what()).find("cuda:" + std::to_string(n + 3)), std::string::npos) << e.what();
#else
    EXPECT_NE(std::string(e.what()).find("no CUDA"), std::string::npos) << e.what();
#endif
  }
}

#ifdef DITKIT_WITH_CUDA
// The strided indexer behind every CUDA elementwise kernel, run on the host: offsets must
// follow the tensors' strides, with dims merged only where that keeps them exact.
TEST(cuda, IndexerWalksStridedViews) {
  Tensor base = Tensor::from_vector(iota_values(2 * 3 * 4 * 5), {2, 3, 4, 5});
  Tensor view = base.permute({2, 0, 3, 1}).slice(2, 1, 5, 2);  // [4, 2, 2, 3]
  Tensor bcast = base.select(3, 0).slice(0, 1, 2).permute({2, 0, 1}).unsqueeze(1).expand({4, 2, 2, 3});
  auto ix = cuda::make_indexer<2>(view.shape(), {view.strides(), bcast.strides()});
  std::vector<float> want_view = view.contiguous().to_vector(), want_bcast = bcast.contiguous().to_vector();
  const float* p = base.data<float>();
  for (int64_t i = 0; i < view.numel(); ++i) {
    int64_t off[2];
    ix.offsets(i, off);
    int64_t first = int64_t((static_cast<const char*>(view.raw()) - static_cast<const char*>(base.raw())) / 4);
    int64_t first_b = int64_t((static_cast<const char*>(bcast.raw()) - static_cast<const char*>(base.raw())) / 4);
    EXPECT_EQ(p[first + off[0]], want_view[size_t(i)]) << i;
    EXPECT_EQ(p[first_b + off[1]], want_bcast[size_t(i)]) << i;
  }
  // Dense data collapses to one dim; a broadcast dim stays separate from a dense one.
  Tensor dense = Tensor::empty({2, 3, 4}, DType::F32);
  EXPECT_EQ(cuda::make_indexer<1>(dense.shape(), {dense.strides()}).ndim, 1);
  auto mixed = cuda::make_indexer<2>({2, 3, 4}, {dense.strides(), {0, 4, 1}});
  EXPECT_EQ(mixed.ndim, 2);
  EXPECT_EQ(mixed.size[0], 2);
  EXPECT_EQ(mixed.size[1], 12);
}

namespace {

// Runs planned cuBLASLt calls on host f32 data with cuBLAS's column-major semantics.
void run_plan_on_host(const std::vector<cuda::GemmCall>& calls) {
  for (const cuda::GemmCall& g : calls) {
    auto at = [&](const cuda::GemmOperand& x, int64_t bi, int64_t i, int64_t j) {
      const float* p = static_cast<const float*>(x.ptr) + bi * x.batch_stride;
      return x.transpose ? p[j + i * x.ld] : p[i + j * x.ld];
    };
    float* d = static_cast<float*>(g.d);
    for (int64_t bi = 0; bi < g.batch; ++bi)
      for (int64_t i = 0; i < g.m; ++i)
        for (int64_t j = 0; j < g.n; ++j) {
          double acc = 0;
          for (int64_t l = 0; l < g.k; ++l) acc += double(at(g.a, bi, i, l)) * at(g.b, bi, l, j);
          d[bi * g.d_stride + i + j * g.m] = float(acc);
        }
  }
}

// Row-major reference of out[b, M, N] = a[b, M, K] @ b[b, K, N] from dense logical operands.
std::vector<float> reference_product(const std::vector<float>& a, const std::vector<float>& b, int64_t batch,
                                     int64_t M, int64_t K, int64_t N) {
  std::vector<float> out(static_cast<size_t>(batch * M * N));
  for (int64_t bi = 0; bi < batch; ++bi)
    for (int64_t m = 0; m < M; ++m)
      for (int64_t n = 0; n < N; ++n) {
        double acc = 0;
        for (int64_t k = 0; k < K; ++k)
          acc += double(a[size_t((bi * M + m) * K + k)]) * b[size_t((bi * K + k) * N + n)];
        out[size_t((bi * M + m) * N + n)] = float(acc);
      }
  return out;
}

}  // namespace

// The stride and batch planning behind CUDA linear/matmul, checked without a GPU.
TEST(cuda, GemmPlanMatchesRowMajorProduct) {
  const int64_t M = 5, K = 7, N = 9;
  // Broadcast batch [2, 3]: a is [2, 1, K, M] used transposed, b is [3, N, K] used transposed.
  Tensor a = Tensor::from_vector(iota_values(2 * K * M, 0.1f), {2, 1, K, M});
  Tensor b = Tensor::from_vector(iota_values(3 * N * K, 0.05f), {3, N, K});
  Tensor la = a.transpose(2, 3).expand({2, 3, M, K}), lb = b.transpose(1, 2).expand({2, 3, K, N});
  cuda::MatrixBatch ma{la.raw(), {la.strides()[0], la.strides()[1]}, M, K, la.strides()[2], la.strides()[3]};
  cuda::MatrixBatch mb{lb.raw(), {lb.strides()[0], lb.strides()[1]}, K, N, lb.strides()[2], lb.strides()[3]};
  Tensor out = Tensor::zeros({2, 3, M, N}, DType::F32);
  auto plan = cuda::plan_gemm(DType::F32, {2, 3}, ma, mb, out.raw());
  ASSERT_TRUE(plan);
  EXPECT_EQ(plan->size(), 2u);  // b's batch stride 0 over dim 0 does not merge with a's
  EXPECT_EQ(plan->front().batch, 3);
  run_plan_on_host(*plan);
  EXPECT_EQ(out.to_vector(), reference_product(la.contiguous().to_vector(), lb.contiguous().to_vector(), 6, M, K, N));

  // Dense batches merge into one strided call.
  Tensor a2 = Tensor::from_vector(iota_values(4 * M * K, 0.1f), {4, M, K});
  Tensor b2 = Tensor::from_vector(iota_values(4 * K * N, 0.2f), {4, K, N});
  Tensor out2 = Tensor::zeros({4, M, N}, DType::F32);
  auto plan2 = cuda::plan_gemm(DType::F32, {4}, {a2.raw(), {M * K}, M, K, K, 1}, {b2.raw(), {K * N}, K, N, N, 1},
                               out2.raw());
  ASSERT_TRUE(plan2);
  EXPECT_EQ(plan2->size(), 1u);
  EXPECT_EQ(plan2->front().batch, 4);
  run_plan_on_host(*plan2);
  EXPECT_EQ(out2.to_vector(), reference_product(a2.to_vector(), b2.to_vector(), 4, M, K, N));

  // linear's layout: x [5, 33] with column-major strides, w [19, 33] column-major, used as w^T.
  Tensor x = Tensor::from_vector(iota_values(33 * 5, 0.1f), {33, 5}).transpose(0, 1);
  Tensor w = Tensor::from_vector(iota_values(33 * 19, 0.1f), {33, 19}).transpose(0, 1);
  Tensor out3 = Tensor::zeros({5, 19}, DType::F32);
  auto plan3 = cuda::plan_gemm(DType::F32, {}, {x.raw(), {}, 5, 33, x.strides()[0], x.strides()[1]},
                               {w.raw(), {}, 33, 19, w.strides()[1], w.strides()[0]}, out3.raw());
  ASSERT_TRUE(plan3);
  run_plan_on_host(*plan3);
  EXPECT_EQ(out3.to_vector(), reference_product(x.contiguous().to_vector(), w.transpose(0, 1).contiguous().to_vector(),
                                                1, 5, 33, 19));

  // No unit stride: not plannable, the caller densifies.
  Tensor gathered = Tensor::from_vector(iota_values(M * 2 * K), {M, 2 * K}).slice(1, 0, 2 * K, 2);
  EXPECT_FALSE(cuda::plan_gemm(DType::F32, {}, {gathered.raw(), {}, M, K, gathered.strides()[0], 2},
                               {b2.raw(), {}, K, N, N, 1}, out2.raw()));
}
#endif

TEST(cuda, RoundTripCopies) {
  REQUIRE_GPU();
  for (DType t : {DType::F32, DType::BF16, DType::F16, DType::I64, DType::U8}) {
    std::vector<float> v = iota_values(1000, t == DType::U8 ? 0.0f : 0.25f);
    if (t == DType::U8)
      for (size_t i = 0; i < v.size(); ++i) v[i] = float(i % 256);
    Tensor host = Tensor::from_vector(v, {10, 100}, t);
    Tensor dev = host.to(Device::cuda());
    EXPECT_TRUE(dev.device().is_cuda());
    EXPECT_EQ(dev.to_vector(), host.to_vector()) << dtype_name(t);
  }
}

TEST(cuda, AllocatorReusesFreedBlocks) {
  REQUIRE_GPU();
  Device d = Device::cuda();
  allocator_release_cached(d);
  { Tensor warm = Tensor::empty({1 << 20}, DType::F32, d); }
  AllocatorStats before = allocator_stats(d);
  EXPECT_GE(before.cached, size_t(4) << 20);
  {
    Tensor again = Tensor::empty({1 << 20}, DType::F32, d);
    AllocatorStats during = allocator_stats(d);
    EXPECT_EQ(during.misses, before.misses);  // served from the cache
    EXPECT_EQ(during.allocations, before.allocations + 1);
    EXPECT_GE(during.in_use, before.in_use + (size_t(4) << 20));
    EXPECT_GE(during.peak, during.in_use);
  }
  allocator_release_cached(d);
  EXPECT_EQ(allocator_stats(d).cached, 0u);
  allocator_reset_peak(d);
  EXPECT_EQ(allocator_stats(d).peak, allocator_stats(d).in_use);
}

TEST(cuda, StridedCopiesMatchCpu) {
  REQUIRE_GPU();
  Tensor host = Tensor::from_vector(iota_values(2 * 3 * 4 * 5), {2, 3, 4, 5});
  Tensor dev = host.to(Device::cuda());
  // permute, slice with step, broadcast source, dtype conversion on the way.
  EXPECT_EQ(dev.permute({3, 1, 0, 2}).contiguous().to_vector(), host.permute({3, 1, 0, 2}).contiguous().to_vector());
  EXPECT_EQ(dev.slice(3, 1, 5, 2).contiguous().to_vector(), host.slice(3, 1, 5, 2).contiguous().to_vector());
  EXPECT_EQ(dev.slice(0, 1, 2).expand({3, 3, 4, 5}).contiguous().to_vector(),
            host.slice(0, 1, 2).expand({3, 3, 4, 5}).contiguous().to_vector());
  EXPECT_EQ(dev.transpose(1, 2).to(DType::BF16).to_vector(), host.transpose(1, 2).to(DType::BF16).to_vector());
  Tensor dst = Tensor::zeros({5, 4}, DType::F16, Device::cuda());
  Tensor dst_t = dst.transpose(0, 1);
  ops::copy_(dst_t, host.select(0, 1).select(0, 2));
  EXPECT_EQ(dst.to_vector(), host.select(0, 1).select(0, 2).transpose(0, 1).contiguous().to_vector());
}

TEST(cuda, ConversionsMatchCpuBitForBit) {
  REQUIRE_GPU();
  std::vector<float> v = iota_values(4096, 0.37f);
  v.push_back(1e6f);   // e4m3 saturates to 448, e5m2 overflows to inf, as on the CPU
  v.push_back(-1e-9f);
  v.push_back(NAN);
  Tensor host = Tensor::from_vector(v, {int64_t(v.size())});
  Tensor dev = host.to(Device::cuda());
  for (DType t : {DType::BF16, DType::F16, DType::F8_E4M3, DType::F8_E5M2, DType::I32}) {
    std::vector<float> want = host.to(t).to_vector(), got = dev.to(t).to_vector();
    ASSERT_EQ(got.size(), want.size());
    for (size_t i = 0; i < want.size(); ++i) {
      if (std::isnan(want[i])) {
        if (t != DType::I32) {
          EXPECT_TRUE(std::isnan(got[i])) << dtype_name(t) << " at " << i;
        }
      } else {
        EXPECT_EQ(got[i], want[i]) << dtype_name(t) << " of " << v[i];
      }
    }
  }
}

TEST(cuda, Q8_0DequantisesLikeCpu) {
  REQUIRE_GPU();
  // Two blocks: f16 scale then 32 int8 values each.
  std::vector<uint8_t> raw(2 * kQ8_0BlockBytes);
  for (int b = 0; b < 2; ++b) {
    uint16_t scale = f32_to_f16(b ? 0.5f : -0.03125f);
    std::memcpy(&raw[size_t(b * kQ8_0BlockBytes)], &scale, 2);
    for (int i = 0; i < 32; ++i) raw[size_t(b * kQ8_0BlockBytes + 2 + i)] = uint8_t(int8_t(i * 7 - 100));
  }
  Tensor host = Tensor::from_blob(raw.data(), {2, 32}, DType::Q8_0, Device::cpu(), nullptr);
  Tensor dev = host.to(Device::cuda());
  EXPECT_EQ(dev.to(DType::F32).to_vector(), host.to_vector());
}

TEST(cuda, FillAndZeros) {
  REQUIRE_GPU();
  Tensor t = Tensor::full({3, 7}, 2.5f, DType::BF16, Device::cuda());
  EXPECT_EQ(t.to_vector(), std::vector<float>(21, 2.5f));
  Tensor col = t.slice(1, 2, 3);
  ops::fill_(col, -1.0f);
  std::vector<float> v = t.to_vector();
  for (int r = 0; r < 3; ++r)
    for (int c = 0; c < 7; ++c) EXPECT_EQ(v[size_t(r * 7 + c)], c == 2 ? -1.0f : 2.5f);
  EXPECT_EQ(Tensor::zeros({5}, DType::I64, Device::cuda()).to_vector(), std::vector<float>(5, 0.0f));
}

TEST(cuda, EmbeddingRejectsOutOfRangeIds) {
  REQUIRE_GPU();
  Tensor table = Tensor::from_vector(iota_values(12), {4, 3}).to(Device::cuda());
  Tensor ok = Tensor::from_vector({3, 0}, {2}, DType::I64).to(Device::cuda());
  EXPECT_EQ(ops::embedding(table, ok).to_vector(), (std::vector<float>{3, 4, 5, -6, -5, -4}));
  Tensor bad = Tensor::from_vector({1, 4, 2}, {3}, DType::I32).to(Device::cuda());
  try {
    ops::embedding(table, bad);
    FAIL() << "id 4 of a 4-row table must throw";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("id 4 at position 1"), std::string::npos) << e.what();
  }
}
