// Attention throughput. Dense at Wan2.1-1.3B self-attention shapes (12 heads, head_dim 128; CUDA
// variants when a GPU is present), and on the CPU every kind's block-sparse attention with its
// default parameters at the Wan2.1 480p grid 21x30x52 (32760 tokens) with one head of 128 (all
// 12 heads would take minutes per case on a few cores). GFLOP/s counts the two matrix products,
// 4 B H D flops per visible (query, key) pair (softmax not counted), the convention of
// flash-attention benchmarks; "density" is the share of visible pairs, "speedup" the dense
// kernel's time at the same shape over the case's.
#include <benchmark/benchmark.h>

#include "bench/bench_main.h"

#include <chrono>
#include <cstdio>
#include <map>
#include <string>

#include "attention/attention.h"
#include "attention/block_sparse.h"
#include "attention/plan.h"
#include "core/backend.h"
#include "core/threadpool.h"

using namespace ditkit;

namespace {

using bench::sync;

Tensor input(const Shape& s, DType t, Device d, uint32_t seed) {
  std::vector<float> v(static_cast<size_t>(shape_numel(s)));
  for (size_t i = 0; i < v.size(); ++i) v[i] = float(int64_t((i + seed) * 2654435761u % 2001) - 1000) * 1e-3f;
  return Tensor::from_vector(v, s, t).to(d);
}

void register_all(Device d) {
  const std::string dev = d.is_cpu() ? "cpu" : "cuda";
  const std::vector<int64_t> lengths = d.is_cpu() ? std::vector<int64_t>{1024, 4096} : std::vector<int64_t>{4096, 32760};
  for (int64_t L : lengths)
    for (DType t : {DType::F32, DType::BF16}) {
      const int64_t H = 12, D = 128;
      const std::string name = dev + "/dense/1x" + std::to_string(L) + "x12x128/" + dtype_name(t);
      benchmark::RegisterBenchmark(name.c_str(), [=](benchmark::State& st) {
        // q and k/v as strided views of fused projections, as the models pass them.
        Tensor qkv = input({1, L, 3, H, D}, t, d, 1);
        Tensor q = qkv.select(2, 0), k = qkv.select(2, 1), v = qkv.select(2, 2);
        for (auto _ : st) {
          Tensor y = attention::dense_attention(q, k, v, 0.0f);
          sync(d);
          benchmark::DoNotOptimize(y.raw());
        }
        st.counters["GFLOP/s"] =
            benchmark::Counter(4.0 * H * double(L) * double(L) * D * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
      })->Unit(benchmark::kMillisecond)->UseRealTime();
    }
}


// Seconds of one dense call on q, k, v, measured once per shape, dtype and device.
double dense_seconds(const Tensor& q, const Tensor& k, const Tensor& v, Device d) {
  static std::map<std::string, double> measured;
  const std::string key = q.str() + " " + k.str();
  if (auto it = measured.find(key); it != measured.end()) return it->second;
  const auto start = std::chrono::steady_clock::now();
  attention::dense_attention(q, k, v, 0.0f);
  sync(d);
  return measured[key] = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

void register_block_sparse(Device d) {
  if (!d.is_cpu()) return;  // CUDA block-sparse cases live in bench_cuda.cpp
  const attention::TokenLayout layout{21, 30, 52};
  const int64_t L = layout.grid_tokens(), H = 1, D = 128;
  for (const char* spec : {"dense", "radial", "neighborhood", "grat", "sliding-window"})
    for (DType t : {DType::F32, DType::BF16}) {
      const std::string name = std::string("cpu/block_sparse/") + spec + "/21x30x52/1x128/" + dtype_name(t);
      benchmark::RegisterBenchmark(name.c_str(), [=](benchmark::State& st) {
        const auto kind = attention::parse_kind(spec);
        const auto build = std::chrono::steady_clock::now();
        const auto schedule = attention::cached_schedule(*kind, layout, L, L, attention::kernel_block_shape(d));
        const double build_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - build).count();
        Tensor qkv = input({1, L, 3, H, D}, t, d, 1);
        Tensor q = qkv.select(2, 0), k = qkv.select(2, 1), v = qkv.select(2, 2);
        const double dense = dense_seconds(q, k, v, d);
        const float scale = kind->scale(D);
        const auto start = std::chrono::steady_clock::now();
        for (auto _ : st) {
          Tensor y = attention::block_sparse_attention(q, k, v, *schedule, scale);
          sync(d);
          benchmark::DoNotOptimize(y.raw());
        }
        const double per_call =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() / double(st.iterations());
        st.counters["GFLOP/s"] = benchmark::Counter(4.0 * H * D * double(schedule->visible_pairs) * 1e-9,
                                                    benchmark::Counter::kIsIterationInvariantRate);
        st.counters["density"] = schedule->density();
        st.counters["block_density"] = schedule->block_density();
        st.counters["speedup"] = dense / per_call;
        st.counters["build_s"] = build_s;
      })->Unit(benchmark::kMillisecond)->UseRealTime();
    }
}

}  // namespace

int main(int argc, char** argv) {
  return ditkit::bench::run_benchmarks(argc, argv, [](Device d) {
    register_all(d);
    register_block_sparse(d);
  });
}
