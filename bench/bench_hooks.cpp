// Cost of the attention hooks per attention call at real shapes, against the same call without
// hooks: FLUX.1 at 1024x1024 (a single-stream block: 512 text + 64x64 image tokens, joint
// attention) and Wan2.1-1.3B self-attention at 480p (21x30x52 video tokens). On the CPU one head
// of 128 and, for Wan, 5 of the 21 latent frames (all heads at Wan size take minutes per call on
// a few cores); on CUDA all heads (FLUX 24, Wan 12). Cases, each the call of the row the hook
// changes (the reference / source row of the same step runs first, untimed):
//   plain        no hooks;
//   aligned-gen  AlignedGen target row: AdaIN of its image Q/K (normed stage), its attention
//                with lse, attention over the reference's image keys at ShiftPE positions (RoPE'd
//                once per step) and the exact LSE merge;
//   consist-edit ConsistEdit target row with a half-image keep mask: Q, K, V blended from the source;
//   softpag      the perturbed pass's (1 - u) O + u V on every head.
// "x plain" is the case's time over the plain call's. Per step, a hook adds this per layer it acts on.
#include <benchmark/benchmark.h>

#include "bench/bench_main.h"

#include <chrono>
#include <map>
#include <memory>
#include <string>

#include "attention/aligned_gen.h"
#include "attention/consist_edit.h"
#include "attention/hooks.h"
#include "attention/pag.h"
#include "core/ops.h"
#include "dit/rope.h"

using namespace ditkit;

namespace {

using attention::Pass;
using attention::Role;
using bench::sync;

Tensor input(const Shape& s, Device d, uint32_t seed) {
  std::vector<float> v(static_cast<size_t>(shape_numel(s)));
  for (size_t i = 0; i < v.size(); ++i) v[i] = float(int64_t((i + seed) * 2654435761u % 2001) - 1000) * 1e-3f;
  return Tensor::from_vector(v, s).to(d);
}

struct Shape3 {
  const char* model;
  attention::TokenLayout layout;
  int64_t heads;
  std::vector<int64_t> axes;  // RoPE axis widths of the head dim
};

// One attention call of `row` as a model makes it: normed stage, RoPE at the call's ids, attend.
class Call {
 public:
  Call(const Shape3& s, Device d) : layout_(s.layout), device_(d), axes_(s.axes) {
    const int64_t L = s.layout.text_tokens + s.layout.grid_tokens();
    for (int64_t t = 0; t < s.layout.text_tokens; ++t) ids_.insert(ids_.end(), {0, 0, 0});
    const std::vector<int64_t> grid = dit::grid_positions(s.layout.frames, s.layout.height, s.layout.width);
    ids_.insert(ids_.end(), grid.begin(), grid.end());
    positions_ = {&ids_, 3, [this](const Tensor& x, const std::vector<int64_t>& ids) { return rope(x, ids); }};
    for (int r = 0; r < 2; ++r)
      for (int i = 0; i < 3; ++i) qkv_[r][i] = input({1, L, s.heads, 128}, d, uint32_t(7 * r + i));
  }
  Tensor rope(const Tensor& x, const std::vector<int64_t>& ids) const {
    const dit::RopeTable t = dit::rope_table(ids, axes_, 10000.0, device_);
    return ops::rope(x, t.cos.unsqueeze(1), t.sin.unsqueeze(1));
  }
  Tensor run(int row, int step, Pass pass, const attention::Control& c) const {
    const attention::Site site{layout_.text_tokens > 0 ? Role::JointAttention : Role::SelfAttention, 1, step, pass};
    Tensor q = qkv_[row][0], k = qkv_[row][1], v = qkv_[row][2];
    attention::run_normed_hooks(c, site, layout_, &positions_, q, k, v);
    q = rope(q, ids_);
    k = rope(k, ids_);
    return attention::attend(q, k, v, layout_, site, c, 0.0f, &positions_);
  }

 private:
  attention::TokenLayout layout_;
  Device device_;
  std::vector<int64_t> axes_, ids_;
  attention::Positions positions_;
  Tensor qkv_[2][3];
};

// Seconds of the plain call per shape, for the ratio.
std::map<std::string, double>& plain_seconds() {
  static std::map<std::string, double> m;
  return m;
}

void register_all(Device d) {
  const bool cpu = d.is_cpu();
  const std::string dev = cpu ? "cpu" : "cuda";
  attention::TokenLayout flux{1, 64, 64, 512, attention::TextPosition::Prefix};
  attention::TokenLayout wan{cpu ? 5 : 21, 30, 52};
  const Shape3 shapes[] = {{"flux1024", flux, cpu ? 1 : 24, {16, 56, 56}},
                           {"wan480p", wan, cpu ? 1 : 12, dit::wan_rope_axes(128)}};
  for (const Shape3& s : shapes)
    for (const char* hook : {"plain", "aligned-gen", "consist-edit", "softpag"}) {
      const std::string key = dev + "/" + s.model;
      const std::string name = key + "/" + std::to_string(s.layout.frames) + "x" + std::to_string(s.layout.height) + "x" +
                               std::to_string(s.layout.width) + "+" + std::to_string(s.layout.text_tokens) + "/" +
                               std::to_string(s.heads) + "x128/" + hook;
      benchmark::RegisterBenchmark(name.c_str(), [=](benchmark::State& st) {
        const Call call(s, d);
        const std::string h = hook;
        attention::Hooks hooks;
        std::unique_ptr<attention::AlignedGen> aligned;
        std::unique_ptr<attention::ConsistEdit> edit;
        Pass pass = Pass::Cond;
        if (h == "aligned-gen") {
          attention::AlignedGenOptions o;
          o.layers = {1};
          aligned = std::make_unique<attention::AlignedGen>(o);
          hooks = aligned->hooks();
        } else if (h == "consist-edit") {
          attention::EditMask half{1, s.layout.height, s.layout.width, {}};
          for (int64_t f = 0; f < s.layout.frames; ++f)
            for (int64_t i = 0; i < s.layout.height * s.layout.width; ++i)
              half.keep.push_back(i < s.layout.height * s.layout.width / 2);
          half.frames = s.layout.frames;
          attention::ConsistEditOptions o;
          o.consistency = 0.0;
          o.steps = 1 << 30;
          edit = std::make_unique<attention::ConsistEdit>(o, half);
          hooks = edit->hooks();
        } else if (h == "softpag") {
          hooks = {std::make_shared<attention::PerturbedAttentionHook>(std::vector<int>{1}, std::vector<int>{}, 0.5f)};
          pass = Pass::Perturbed;
        }
        double timed = 0;
        int step = 0;
        for (auto _ : st) {
          // The reference / source row of the step first (what the target reads), untimed.
          if (aligned || edit) call.run(0, step, pass, {nullptr, &hooks, 0});
          sync(d);
          const auto start = std::chrono::steady_clock::now();
          Tensor y = call.run(1, step, pass, {nullptr, &hooks, 1});
          sync(d);
          const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
          st.SetIterationTime(seconds);
          timed += seconds;
          benchmark::DoNotOptimize(y.raw());
          ++step;
        }
        const double per_call = timed / double(st.iterations());
        if (h == "plain") plain_seconds()[key] = per_call;
        if (plain_seconds().count(key)) st.counters["x plain"] = per_call / plain_seconds()[key];
      })->Unit(benchmark::kMillisecond)->UseManualTime();
    }
}

}  // namespace

int main(int argc, char** argv) { return ditkit::bench::run_benchmarks(argc, argv, register_all); }
