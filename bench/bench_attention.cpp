// Dense attention throughput at Wan2.1-1.3B self-attention shapes (12 heads, head_dim 128).
// GFLOP/s counts the two matrix products, 4 B H Lq Lk D flops per call (softmax not counted),
// the convention of flash-attention benchmarks. CUDA variants are registered when a GPU is present.
#include <benchmark/benchmark.h>

#include "bench/bench_main.h"

#include <cstdio>
#include <string>

#include "attention/attention.h"
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

}  // namespace

int main(int argc, char** argv) { return ditkit::bench::run_benchmarks(argc, argv, register_all); }
