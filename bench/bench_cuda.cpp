// CUDA backend throughput: the ops a DiT block spends its time in, at Wan2.1-14B sizes
// (dim 5120, 40 heads), and attention (dense and block-sparse) at Wan2.1 480p size. Each
// iteration includes a device sync; without a GPU every case is skipped with a message.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <map>

#include "attention/attention.h"
#include "attention/block_sparse.h"
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

Tensor random_like(const Shape& shape, DType t, uint32_t seed = 12345) {
  std::vector<float> v(static_cast<size_t>(shape_numel(shape)));
  uint32_t s = seed;
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

// ---- attention at Wan2.1 480p size: a 21 x 30 x 52 latent grid = 32760 tokens, 12 heads,
// head_dim 128, bf16. "TFLOP/s" counts only visible pairs (4 H D flops each), so the sparse
// kernel's number is comparable with the dense one's.
constexpr int64_t kWanFrames = 21, kWanFrameTokens = 30 * 52, kWanTokens = kWanFrames * kWanFrameTokens;
constexpr int64_t kWanHeads = 12, kWanHeadDim = 128;

// Queries see the keys of frames within `window` of their own (-1: every key). Frames are 1560
// tokens, not a multiple of 64, so blocks across a frame edge are PARTIAL.
class FrameWindow : public attention::MaskRule {
 public:
  explicit FrameWindow(int64_t window) : window_(window) {}
  bool visible(int64_t qp, int64_t kp) const override {
    return window_ < 0 || std::abs(qp / kWanFrameTokens - kp / kWanFrameTokens) <= window_;
  }
  attention::BlockClass classify(int64_t q0, int64_t q1, int64_t k0, int64_t k1) const override {
    if (window_ < 0) return attention::BlockClass::Full;
    const int64_t fq0 = q0 / kWanFrameTokens, fq1 = (q1 - 1) / kWanFrameTokens;
    const int64_t fk0 = k0 / kWanFrameTokens, fk1 = (k1 - 1) / kWanFrameTokens;
    if (std::max(fk0 - fq1, fq0 - fk1) > window_) return attention::BlockClass::Empty;
    if (std::max(fq1 - fk0, fk1 - fq0) <= window_) return attention::BlockClass::Full;
    return attention::BlockClass::Partial;
  }

 private:
  int64_t window_;
};

// q, k, v [1, 32760, 12, 128] bf16 on the GPU, made once (Google Benchmark calls each case
// several times).
struct WanQkv {
  Tensor q, k, v;
};
const WanQkv& wan_qkv() {
  static const WanQkv t = [] {
    const Shape shape{1, kWanTokens, kWanHeads, kWanHeadDim};
    return WanQkv{random_like(shape, DType::BF16, 1), random_like(shape, DType::BF16, 2),
                  random_like(shape, DType::BF16, 3)};
  }();
  return t;
}

void set_attention_counters(benchmark::State& state, int64_t visible_pairs) {
  const double flops = 4.0 * double(kWanHeads * kWanHeadDim) * double(visible_pairs);
  state.counters["TFLOP/s"] = benchmark::Counter(flops * 1e-12, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["density"] = double(visible_pairs) / (double(kWanTokens) * double(kWanTokens));
}

// Arg: the frame window (-1 = all FULL; 2 = +-2 frames, about 22% of the pairs).
void BM_BlockSparseAttentionWan(benchmark::State& state) {
  if (!have_gpu(state)) return;
  static std::map<int64_t, attention::BlockSchedule> schedules;
  const int64_t window = state.range(0);
  if (!schedules.count(window)) {
    const attention::BlockShape block = attention::kernel_block_shape(Device::cuda());
    schedules[window] =
        attention::build_schedule(FrameWindow(window), kWanTokens, kWanTokens, block.q_block, block.k_block);
  }
  const attention::BlockSchedule& s = schedules[window];
  const float scale = 1.0f / std::sqrt(float(kWanHeadDim));
  const WanQkv& x = wan_qkv();
  run(state, [&] { return attention::block_sparse_attention(x.q, x.k, x.v, s, scale); });
  set_attention_counters(state, s.visible_pairs);
  state.counters["block_density"] = s.block_density();
}
BENCHMARK(BM_BlockSparseAttentionWan)->Arg(-1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();

// The dense kernel on the same inputs, for comparison with the all-FULL schedule.
void BM_DenseAttentionWan(benchmark::State& state) {
  if (!have_gpu(state)) return;
  const WanQkv& x = wan_qkv();
  run(state, [&] { return attention::dense_attention(x.q, x.k, x.v, 1.0f / std::sqrt(float(kWanHeadDim))); });
  set_attention_counters(state, kWanTokens * kWanTokens);
}
BENCHMARK(BM_DenseAttentionWan)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
