// Op throughput at DiT / VAE shapes: GEMM (GFLOP/s), conv3d (GFLOP/s), and the memory-bound
// ops (bytes read + written per second). CUDA variants are registered when a GPU is present.
#include <benchmark/benchmark.h>

#include "bench/bench_main.h"

#include <cstdio>
#include <functional>
#include <string>

#include "core/backend.h"
#include "core/ops.h"
#include "core/threadpool.h"

using namespace ditkit;

namespace {

using bench::sync;

Tensor input(const Shape& s, DType t, Device d) {
  std::vector<float> v(static_cast<size_t>(shape_numel(s)));
  for (size_t i = 0; i < v.size(); ++i) v[i] = float(int64_t(i * 2654435761u % 2001) - 1000) * 1e-3f;
  return Tensor::from_vector(v, s, t).to(d);
}

// Runs `op` per iteration; `flops` and `bytes` per call feed the rate counters.
void run(benchmark::State& state, Device d, double flops, double bytes, const std::function<Tensor()>& op) {
  for (auto _ : state) {
    Tensor y = op();
    sync(d);
    benchmark::DoNotOptimize(y.raw());
  }
  if (flops > 0) state.counters["GFLOP/s"] = benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  if (bytes > 0) state.counters["GB/s"] = benchmark::Counter(bytes * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

void register_all(Device d) {
  const std::string dev = d.is_cpu() ? "cpu" : "cuda";
  auto add = [&](const std::string& name, std::function<void(benchmark::State&)> fn) {
    benchmark::RegisterBenchmark((dev + "/" + name).c_str(), fn)->Unit(benchmark::kMillisecond)->UseRealTime();
  };

  // Wan2.1-1.3B linear layers: 4096 tokens, dim 1536, FFN 8960.
  for (int64_t n : {int64_t(1536), int64_t(8960)})
    for (DType wt : {DType::F32, DType::BF16}) {
      const int64_t m = 4096, k = 1536;
      add("linear/M4096_K1536_N" + std::to_string(n) + "/w_" + dtype_name(wt), [=](benchmark::State& st) {
        Tensor x = input({m, k}, DType::F32, d), w = input({n, k}, wt, d), b = input({n}, DType::F32, d);
        run(st, d, 2.0 * m * n * k, 0, [&] { return ops::linear(x, w, b); });
      });
    }
  add("matmul/attn_12x1024x128x1024", [=](benchmark::State& st) {
    Tensor q = input({12, 1024, 128}, DType::F32, d), kt = input({12, 1024, 128}, DType::F32, d);
    run(st, d, 2.0 * 12 * 1024 * 1024 * 128, 0, [&] { return ops::matmul(q, kt, false, true); });
  });

  // Wan VAE-like causal conv3d (3x3x3, 128 -> 128 channels) on a reduced frame.
  for (DType wt : {DType::F32, DType::BF16}) {
    add(std::string("conv3d/1x128x3x60x104_k3/w_") + dtype_name(wt), [=](benchmark::State& st) {
      Tensor x = input({1, 128, 3, 60, 104}, DType::F32, d), w = input({128, 128, 3, 3, 3}, wt, d);
      const double flops = 2.0 * 128 * 128 * 27 * 3 * 60 * 104;
      run(st, d, flops, 0, [&] { return ops::conv3d(x, w, Tensor(), {1, 1, 1}, {2, 0, 1, 1, 1, 1}); });
    });
  }
  add("conv2d/1x128x120x208_k3", [=](benchmark::State& st) {
    Tensor x = input({1, 128, 120, 208}, DType::F32, d), w = input({128, 128, 3, 3}, DType::F32, d);
    run(st, d, 2.0 * 128 * 128 * 9 * 120 * 208, 0, [&] { return ops::conv2d(x, w, Tensor(), {1, 1}, {1, 1}); });
  });

  // Memory-bound ops on [4096, 1536] activations (8960 for the FFN activation).
  for (DType t : {DType::F32, DType::BF16}) {
    const std::string tn = dtype_name(t);
    const double rw = 2.0 * 4096 * 1536 * double(dtype_size(t));
    add("layer_norm/4096x1536/" + tn, [=](benchmark::State& st) {
      Tensor x = input({4096, 1536}, t, d), w = input({1536}, DType::F32, d), b = input({1536}, DType::F32, d);
      run(st, d, 0, rw, [&] { return ops::layer_norm(x, w, b, 1e-6f); });
    });
    add("rms_norm/4096x1536/" + tn, [=](benchmark::State& st) {
      Tensor x = input({4096, 1536}, t, d), w = input({1536}, DType::F32, d);
      run(st, d, 0, rw, [&] { return ops::rms_norm(x, w, 1e-6f); });
    });
    add("softmax/12288x1024/" + tn, [=](benchmark::State& st) {
      Tensor x = input({12 * 1024, 1024}, t, d);
      run(st, d, 0, 2.0 * 12 * 1024 * 1024 * double(dtype_size(t)), [&] { return ops::softmax(x, -1); });
    });
    add("gelu_tanh/4096x8960/" + tn, [=](benchmark::State& st) {
      Tensor x = input({4096, 8960}, t, d);
      run(st, d, 0, 2.0 * 4096 * 8960 * double(dtype_size(t)), [&] { return ops::gelu(x, true); });
    });
    add("silu/4096x8960/" + tn, [=](benchmark::State& st) {
      Tensor x = input({4096, 8960}, t, d);
      run(st, d, 0, 2.0 * 4096 * 8960 * double(dtype_size(t)), [&] { return ops::silu(x); });
    });
    add("add_broadcast/4096x1536+1536/" + tn, [=](benchmark::State& st) {
      Tensor x = input({4096, 1536}, t, d), b = input({1536}, t, d);
      run(st, d, 0, rw, [&] { return ops::add(x, b); });
    });
    add("modulate/4096x1536/" + tn, [=](benchmark::State& st) {
      Tensor x = input({1, 4096, 1536}, t, d), s = input({1, 1, 1536}, t, d), h = input({1, 1, 1536}, t, d);
      run(st, d, 0, rw, [&] { return ops::modulate(x, s, h); });
    });
    add("rope/1x4096x12x128/" + tn, [=](benchmark::State& st) {
      Tensor x = input({1, 4096, 12, 128}, t, d), c = input({4096, 1, 64}, DType::F32, d),
             s = input({4096, 1, 64}, DType::F32, d);
      run(st, d, 0, 2.0 * 4096 * 12 * 128 * double(dtype_size(t)), [&] { return ops::rope(x, c, s); });
    });
  }
  add("copy_transpose/4096x1536/f32", [=](benchmark::State& st) {
    Tensor x = input({4096, 1536}, DType::F32, d);
    run(st, d, 0, 2.0 * 4096 * 1536 * 4, [&] { return x.transpose(0, 1).contiguous(); });
  });
  add("cast/4096x8960/f32_to_bf16", [=](benchmark::State& st) {
    Tensor x = input({4096, 8960}, DType::F32, d);
    run(st, d, 0, 4096.0 * 8960 * 6, [&] { return ops::cast(x, DType::BF16); });
  });
  add("group_norm/1x128x3x120x208_g32/f32", [=](benchmark::State& st) {
    Tensor x = input({1, 128, 3, 120, 208}, DType::F32, d);
    run(st, d, 0, 2.0 * x.nbytes(), [&] { return ops::group_norm(x, 32, Tensor(), Tensor(), 1e-6f); });
  });
}

}  // namespace

int main(int argc, char** argv) { return ditkit::bench::run_benchmarks(argc, argv, register_all); }
