// CUDA backend throughput: the ops a DiT block spends its time in, at Wan2.1-14B sizes
// (dim 5120, 40 heads). Each iteration includes a device sync; without a GPU every case is
// skipped with a message.
#include <benchmark/benchmark.h>

#include "core/backend.h"
#include "core/ops.h"

using namespace ditkit;

namespace {

bool have_gpu(benchmark::State& state) {
  if (cuda_available()) return true;
  state.SkipWithError("no CUDA GPU on this machine");
  return false;
}

// Times f per iteration including the device work it queued.
template <typename F>
void run(benchmark::State& state, F f) {
  for (auto _ : state) {
    benchmark::DoNotOptimize(f());
#ifdef DITKIT_WITH_CUDA
    cuda::synchronize();
#endif
  }
}

Tensor random_like(const Shape& shape, DType t) {
  std::vector<float> v(static_cast<size_t>(shape_numel(shape)));
  uint32_t s = 12345;
  for (float& x : v) {
    s = s * 1664525u + 1013904223u;
    x = float(s >> 8) / float(1 << 24) - 0.5f;
  }
  return Tensor::from_vector(v, shape, DType::F32).to(t).to(Device::cuda());
}

// y = x @ w^T with x [tokens, 5120], w [5120, 5120]; arg 1 picks the weight dtype.
void BM_Linear(benchmark::State& state) {
  if (!have_gpu(state)) return;
  int64_t tokens = state.range(0);
  DType wt = state.range(1) == 0 ? DType::BF16 : DType::F8_E4M3;
  Tensor x = random_like({tokens, 5120}, DType::BF16), w = random_like({5120, 5120}, wt);
  Tensor b = random_like({5120}, DType::BF16);
  run(state, [&] { return ops::linear(x, w, b); });
  state.SetItemsProcessed(state.iterations() * 2 * tokens * 5120 * 5120);  // flops
}
BENCHMARK(BM_Linear)->Args({4096, 0})->Args({32760, 0})->Args({4096, 1})->Unit(benchmark::kMillisecond)->UseRealTime();

// Attention-shaped batched matmul: q [1, 40, S, 128] @ k^T.
void BM_MatmulHeads(benchmark::State& state) {
  if (!have_gpu(state)) return;
  int64_t S = state.range(0);
  Tensor q = random_like({1, 40, S, 128}, DType::BF16), k = random_like({1, 40, S, 128}, DType::BF16);
  run(state, [&] { return ops::matmul(q, k, false, true); });
  state.SetItemsProcessed(state.iterations() * 2 * 40 * S * S * 128);
}
BENCHMARK(BM_MatmulHeads)->Arg(4096)->Unit(benchmark::kMillisecond)->UseRealTime();

// Memory-bound ops on [tokens, 5120] bf16; bytes moved are reported.
void BM_Modulate(benchmark::State& state) {
  if (!have_gpu(state)) return;
  Tensor x = random_like({1, state.range(0), 5120}, DType::BF16);
  Tensor scale = random_like({1, 1, 5120}, DType::F32), shift = random_like({1, 1, 5120}, DType::F32);
  run(state, [&] { return ops::modulate(x, scale, shift); });
  state.SetBytesProcessed(state.iterations() * 2 * int64_t(x.nbytes()));
}
BENCHMARK(BM_Modulate)->Arg(32760)->UseRealTime();

void BM_LayerNorm(benchmark::State& state) {
  if (!have_gpu(state)) return;
  Tensor x = random_like({state.range(0), 5120}, DType::BF16);
  run(state, [&] { return ops::layer_norm(x, Tensor(), Tensor(), 1e-6f); });
  state.SetBytesProcessed(state.iterations() * 2 * int64_t(x.nbytes()));
}
BENCHMARK(BM_LayerNorm)->Arg(32760)->UseRealTime();

void BM_PermuteHeads(benchmark::State& state) {
  if (!have_gpu(state)) return;
  Tensor x = random_like({1, state.range(0), 40, 128}, DType::BF16);
  run(state, [&] { return ops::permute(x, {0, 2, 1, 3}); });
  state.SetBytesProcessed(state.iterations() * 2 * int64_t(x.nbytes()));
}
BENCHMARK(BM_PermuteHeads)->Arg(32760)->UseRealTime();

void BM_Softmax(benchmark::State& state) {
  if (!have_gpu(state)) return;
  Tensor x = random_like({40, 1024, state.range(0)}, DType::BF16);
  run(state, [&] { return ops::softmax(x, -1); });
  state.SetBytesProcessed(state.iterations() * 2 * int64_t(x.nbytes()));
}
BENCHMARK(BM_Softmax)->Arg(4096)->UseRealTime();

// A Wan VAE decoder conv: causal 3x3x3 over [1, 384, 5, 60, 104].
void BM_Conv3d(benchmark::State& state) {
  if (!have_gpu(state)) return;
  Tensor x = random_like({1, 384, 5, 60, 104}, DType::BF16), w = random_like({384, 384, 3, 3, 3}, DType::BF16);
  run(state, [&] { return ops::conv3d(x, w, Tensor(), {1, 1, 1}, {2, 0, 1, 1, 1, 1}); });
}
BENCHMARK(BM_Conv3d)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
