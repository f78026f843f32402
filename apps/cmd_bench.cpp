// ditkit bench t2v: the Wan2.1 text-to-video pipeline of `ditkit t2v` at real model shapes with
// random weights (nothing to download). Times the text encoder (prompt + negative prompt), every
// denoising step (both guidance branches) and the VAE decode, and reports memory: peak host RSS,
// the allocator's peak and the weight bytes of each component. Components run one after the
// other and each one's weights are freed before the next is built, so the peak is the largest
// stage, not the sum. The attention options of `t2v` (kinds, plans, PAG, FreeSwim) apply too.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "apps/commands.h"
#include "apps/components.h"
#include "core/backend.h"
#include "core/progress.h"
#include "core/threadpool.h"
#include "dit/wan.h"
#include "samplers/denoise.h"
#include "samplers/torch_rng.h"
#include "text/umt5.h"
#include "vae/wan_vae.h"
#include "weights/random_weights.h"

namespace ditkit::apps {
namespace {

struct BenchT2vOptions {
  std::string config = "wan2.1-t2v-1.3b", text_encoder_config = "umt5-xxl", vae_config = "wan2.1-vae";
  bool random_weights = false;
  int64_t frames = 17, width = 256, height = 256;
  int steps = 2;
  int64_t text_len = 0;  // 0 = the DiT config's text_len
  std::string dtype = "bf16";
  bool skip_text_encoder = false, skip_vae = false;
  AttentionOptions attention;
};

constexpr double kCfg = 5.0, kShift = 5.0;
constexpr uint64_t kSeed = 0;

// A known config name or a config.json (official or diffusers/transformers names) of `family`.
weights::ModelConfig resolve_config(const std::string& value, weights::Family family, const std::string& flag) {
  if (std::filesystem::is_regular_file(value)) {
    std::ifstream in(value);
    const auto j = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
    DK_CHECK(!j.is_discarded(), flag, " ", value, ": not valid JSON");
    return weights::config_from_json(family, j, flag + " " + value);
  }
  weights::ModelConfig c = weights::known_config(value);
  DK_CHECK(c.family == family, flag, " ", value, ": a ", weights::family_name(c.family), " config, expected ",
           weights::family_name(family));
  return c;
}

DType parse_dtype(const std::string& s) {
  if (s == "bf16") return DType::BF16;
  if (s == "f16") return DType::F16;
  if (s == "f32") return DType::F32;
  fail("--dtype ", s, ": expected bf16, f16 or f32");
}

size_t weight_bytes(const weights::ModelWeights& w) {
  size_t total = 0;
  for (const auto& name : w.checkpoint().names()) total += w.checkpoint().info(name).bytes;
  return total;
}

// kB value of a /proc/self/status line such as "VmHWM:  123456 kB"; 0 when unavailable.
size_t proc_status_kb(const std::string& key) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.compare(0, key.size() + 1, key + ":") == 0) return size_t(std::stoull(line.substr(key.size() + 1)));
  return 0;
}

// "2.41 GiB", "12.3 MiB".
std::string size_str(size_t bytes) {
  char buf[32];
  if (bytes >= (1ull << 30))
    std::snprintf(buf, sizeof buf, "%.2f GiB", double(bytes) / double(1ull << 30));
  else
    std::snprintf(buf, sizeof buf, "%.1f MiB", double(bytes) / double(1ull << 20));
  return buf;
}

bool all_finite(const Tensor& t) {
  const std::vector<float> v = t.to_vector();
  return std::all_of(v.begin(), v.end(), [](float f) { return std::isfinite(f); });
}

// Seconds since construction, after the device finished its queued work.
class Stopwatch {
 public:
  explicit Stopwatch(Device device) : device_(device) { sync(); }
  double seconds() const {
    sync();
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  }

 private:
  void sync() const {
#ifdef DITKIT_WITH_CUDA
    if (device_.is_cuda()) cuda::synchronize();
#endif
  }
  Device device_;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
};

// One stage's memory line: its weights, the allocator's peak during the stage and the process's
// peak resident set so far (VmHWM never decreases).
void print_memory(const char* stage, size_t bytes, Device device) {
  std::printf("%s memory: weights %s, allocator peak %s (%s), peak RSS so far %s\n", stage, size_str(bytes).c_str(),
              size_str(allocator_stats(device).peak).c_str(), device.str().c_str(),
              size_str(proc_status_kb("VmHWM") << 10).c_str());
}

// Builds random weights for `config`, reporting how long that took and resetting the
// allocator's peak so the stage's figures start here. The blocks the previous stage freed are
// given back to the system first: the caching allocator would otherwise keep them resident.
weights::ModelWeights generate(const char* stage, const weights::ModelConfig& config, DType dtype, Device device) {
  allocator_release_cached(Device::cpu());
  if (device.is_cuda()) allocator_release_cached(device);
  Stopwatch clock(Device::cpu());
  auto w = weights::random_model_weights(config, dtype, kSeed);
  std::printf("%s weights: generated %s %s in %.3f s\n", stage, size_str(weight_bytes(w)).c_str(), dtype_name(dtype),
              clock.seconds());
  std::fflush(stdout);
  allocator_reset_peak(device);
  return w;
}

void run_bench_t2v(const BenchT2vOptions& o, const GlobalOptions& global) {
  Device device = apply_global_options(global);
  DK_CHECK(o.random_weights, "bench t2v: give --random-weights (benchmarking loaded checkpoints is not supported)");
  check_wan_video_size(o.frames, o.width, o.height);
  DK_CHECK(o.steps >= 1, "--steps must be at least 1");
  const DType dtype = parse_dtype(o.dtype);
  DK_CHECK(o.text_len >= 0, "--text-len ", o.text_len, ": must be positive (0 = the DiT's text_len)");
  auto dit_config = resolve_config(o.config, weights::Family::wan_dit, "--config");
  // As `t2v --max-sequence-length`: the tokenizer's padding and the rows the DiT pads the context to.
  if (o.text_len > 0) std::get<weights::WanDitConfig>(dit_config.params).text_len = o.text_len;
  const auto t5_config = resolve_config(o.text_encoder_config, weights::Family::umt5, "--text-encoder-config");
  const auto vae_config = resolve_config(o.vae_config, weights::Family::wan_vae, "--vae-config");
  const auto& dit_cfg = dit_config.as<weights::WanDitConfig>();
  const auto& t5_cfg = t5_config.as<weights::T5Config>();
  const auto& vae_cfg = vae_config.as<weights::WanVaeConfig>();
  const int64_t text_len = dit_cfg.text_len;
  const AttentionSetup attn = make_attention_setup(o.attention, dit_cfg.num_layers, dit_cfg.num_heads);
  DK_CHECK(o.skip_text_encoder || t5_cfg.dim == dit_cfg.text_dim, "--text-encoder-config ", o.text_encoder_config,
           ": width ", t5_cfg.dim, " does not match the DiT's text_dim ", dit_cfg.text_dim);
  DK_CHECK(vae_cfg.z_dim == dit_cfg.in_dim, "--vae-config ", o.vae_config, ": z_dim ", vae_cfg.z_dim,
           " does not match the DiT's in_dim ", dit_cfg.in_dim);

  const Shape latent{vae_cfg.z_dim, (o.frames - 1) / 4 + 1, o.height / 8, o.width / 8};
  const int64_t tokens = latent[1] / dit_cfg.patch_size[0] * (latent[2] / dit_cfg.patch_size[1]) *
                         (latent[3] / dit_cfg.patch_size[2]);
  std::printf("bench t2v: dit %s, text encoder %s, vae %s; random %s weights on %s, %d threads\n", o.config.c_str(),
              o.text_encoder_config.c_str(), o.vae_config.c_str(), dtype_name(dtype), device.str().c_str(),
              num_threads());
  std::printf("size: %lld frames %lldx%lld, latent %s, %lld video tokens, text-len %lld, %d steps unipc, cfg %g "
              "(2 model calls per step)\n",
              static_cast<long long>(o.frames), static_cast<long long>(o.width), static_cast<long long>(o.height),
              shape_str(latent).c_str(), static_cast<long long>(tokens), static_cast<long long>(text_len), o.steps,
              kCfg);
  for (const auto& [key, value] : attn.metadata) std::printf("%s: %s\n", key.c_str(), value.c_str());
  std::fflush(stdout);
  size_t total_weights = 0;

  // Text: a prompt and the negative prompt, both text_len tokens long (random ids, no padding),
  // as the pipeline's padded batch of two.
  std::vector<Tensor> contexts;
  if (o.skip_text_encoder) {
    for (uint64_t i = 0; i < 2; ++i)
      contexts.push_back(weights::random_tensor({text_len, dit_cfg.text_dim}, DType::F32, 1.0f, kSeed + i).to(device));
    std::printf("text encoder: skipped (--skip-text-encoder; random contexts [%lld, %lld])\n",
                static_cast<long long>(text_len), static_cast<long long>(dit_cfg.text_dim));
  } else {
    auto w = generate("text encoder", t5_config, dtype, device);
    total_weights += weight_bytes(w);
    text::UMT5Encoder t5(w, t5_cfg, device);
    // Ids spread over the vocabulary; their values do not change the cost.
    Tensor ids = Tensor::empty({2, text_len}, DType::I64);
    for (int64_t i = 0; i < 2 * text_len; ++i) ids.data<int64_t>()[i] = (i * 2654435761ll) % t5_cfg.vocab;
    Tensor mask = Tensor::full({2, text_len}, 1.0f, DType::I64);
    Stopwatch clock(device);
    contexts = t5.encode(ids.to(device), mask.to(device));
    std::printf("text encoder: %.3f s (2 prompts x %lld tokens)\n", clock.seconds(), static_cast<long long>(text_len));
    print_memory("text encoder", weight_bytes(w), device);
  }
  std::fflush(stdout);

  // Denoising: step i's time runs from its first model call to the next step's first call (the
  // last one to the end of the loop), so it holds both branches and the sampler update.
  Tensor latents;
  {
    auto w = generate("dit", dit_config, dtype, device);
    total_weights += weight_bytes(w);
    dit::WanModel model(w, dit_cfg, device);
    const auto kind = samplers::SamplerKind::UniPC;
    samplers::FlowSampler sampler(kind, samplers::wan_schedule(kind, o.steps, kShift));
    Tensor x = samplers::TorchGenerator(kSeed).randn(latent).to(device);
    std::vector<double> starts;
    Stopwatch clock(device);
    const auto model_velocity = wan_velocity(model, sampler.schedule().timesteps, contexts, attn);
    auto velocity = [&](const Tensor& xt, int step, attention::Pass pass) {
      if (int(starts.size()) == step) starts.push_back(clock.seconds());
      return model_velocity(xt, step, pass);
    };
    Progress progress(o.steps, "denoise");  // drawn on a terminal only
    latents = samplers::denoise(sampler, x, velocity, {kCfg, attn.pag_scale}, &progress);
    starts.push_back(clock.seconds());
    progress.finish();
    for (int i = 0; i < o.steps; ++i) std::printf("step %d/%d: %.3f s\n", i + 1, o.steps, starts[i + 1] - starts[i]);
    const double total = starts.back() - starts.front(), mean = total / o.steps;
    std::printf("denoise: %.3f s for %d steps, %.3f s/step, %.4f it/s\n", total, o.steps, mean, 1.0 / mean);
    std::printf("latents: %s\n", all_finite(latents) ? "finite" : "NOT FINITE");
    print_memory("dit", weight_bytes(w), device);
  }
  std::fflush(stdout);

  if (o.skip_vae) {
    std::printf("vae decode: skipped (--skip-vae)\n");
  } else {
    auto w = generate("vae", vae_config, dtype, device);
    total_weights += weight_bytes(w);
    vae::WanVAE vae(w, vae_cfg, device);
    Stopwatch clock(device);
    Tensor video = vae.decode(latents);
    std::printf("vae decode: %.3f s (latent %s -> video %s)\n", clock.seconds(), shape_str(latent).c_str(),
                shape_str(video.shape()).c_str());
    std::printf("video: %s\n", all_finite(video) ? "finite" : "NOT FINITE");
    print_memory("vae", weight_bytes(w), device);
  }
  std::printf("total: weights %s (components run one at a time), peak RSS %s\n", size_str(total_weights).c_str(),
              size_str(proc_status_kb("VmHWM") << 10).c_str());
  std::fflush(stdout);
}

}  // namespace

void register_bench(CLI::App& app, const GlobalOptions& global) {
  auto* bench = app.add_subcommand("bench", "benchmarks at real model shapes");
  bench->require_subcommand(1);
  auto o = std::make_shared<BenchT2vOptions>();
  auto* cmd = bench->add_subcommand("t2v", "Wan2.1 text-to-video: text encoder, denoising steps, VAE decode");
  cmd->add_option("--config", o->config, "DiT: wan2.1-t2v-1.3b, wan2.1-t2v-14b or a config.json")
      ->capture_default_str();
  cmd->add_option("--text-encoder-config", o->text_encoder_config, "umT5: umt5-xxl or a config.json")
      ->capture_default_str();
  cmd->add_option("--vae-config", o->vae_config, "VAE: wan2.1-vae or a config.json")->capture_default_str();
  cmd->add_flag("--random-weights", o->random_weights, "random weights at the config's shapes (required)");
  cmd->add_option("--frames", o->frames, "number of frames (4k+1)")->capture_default_str();
  cmd->add_option("-W,--width", o->width, "width in pixels (multiple of 16)")->capture_default_str();
  cmd->add_option("-H,--height", o->height, "height in pixels (multiple of 16)")->capture_default_str();
  cmd->add_option("--steps", o->steps, "sampling steps")->capture_default_str();
  cmd->add_option("--text-len", o->text_len,
                  "text tokens per prompt and DiT context length, as t2v --max-sequence-length (default: the DiT's "
                  "text_len, 512)");
  cmd->add_option("--dtype", o->dtype, "weight dtype: bf16, f16 or f32")->capture_default_str();
  cmd->add_flag("--skip-text-encoder", o->skip_text_encoder, "use random contexts instead of running umT5");
  cmd->add_flag("--skip-vae", o->skip_vae, "stop after denoising");
  o->attention.add_to(*cmd);
  cmd->callback([o, &global] { run_bench_t2v(*o, global); });
}

}  // namespace ditkit::apps
