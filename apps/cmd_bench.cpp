// ditkit bench t2v / t2i: the Wan2.1 text-to-video pipeline of `ditkit t2v` and the FLUX.1
// text-to-image pipeline of `ditkit t2i` at real model shapes with random weights (nothing to
// download). Times the text encoder (prompt + negative prompt), every
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
#include "dit/flux.h"
#include "dit/wan.h"
#include "samplers/denoise.h"
#include "samplers/torch_rng.h"
#include "text/clip.h"
#include "text/umt5.h"
#include "vae/flux_ae.h"
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
  if (s == "fp8") return DType::F8_E4M3;
  fail("--dtype ", s, ": expected bf16, f16 or f32, or fp8 (e4m3)");
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
// The sampler loop timed per step: step i runs from its first model call to the next step's
// first call (the last one to the end of the loop), so it holds every pass of the step and the
// sampler update. Prints the step times and whether the result is finite.
Tensor timed_denoise(samplers::FlowSampler& sampler, const Tensor& x, const samplers::VelocityFn& model_velocity,
                     samplers::Guidance guidance, int steps, Device device) {
  std::vector<double> starts;
  int calls = 0;
  Stopwatch clock(device);
  auto velocity = [&](const Tensor& xt, int step, attention::Pass pass) {
    if (int(starts.size()) == step) starts.push_back(clock.seconds());
    ++calls;
    return model_velocity(xt, step, pass);
  };
  Progress progress(steps, "denoise");  // drawn on a terminal only
  Tensor out = samplers::denoise(sampler, x, velocity, guidance, &progress);
  starts.push_back(clock.seconds());
  progress.finish();
  for (int i = 0; i < steps; ++i) std::printf("step %d/%d: %.3f s\n", i + 1, steps, starts[i + 1] - starts[i]);
  const double total = starts.back() - starts.front(), mean = total / steps;
  std::printf("denoise: %.3f s for %d steps, %.3f s/step, %.4f it/s, %d model passes (%g per step)\n", total, steps,
              mean, 1.0 / mean, calls, double(calls) / steps);
  std::printf("latents: %s\n", all_finite(out) ? "finite" : "NOT FINITE");
  return out;
}

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
  std::printf("size: %lld frames %lldx%lld, latent %s, %lld video tokens, text-len %lld, %d steps unipc, cfg %g\n",
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

  // Denoising, timed per step (timed_denoise).
  Tensor latents;
  {
    auto w = generate("dit", dit_config, dtype, device);
    total_weights += weight_bytes(w);
    dit::WanModel model(w, dit_cfg, device);
    const auto kind = samplers::SamplerKind::UniPC;
    samplers::FlowSampler sampler(kind, samplers::wan_schedule(kind, o.steps, kShift));
    Tensor x = samplers::TorchGenerator(kSeed).randn(latent).to(device);
    latents = timed_denoise(sampler, x, wan_velocity(model, sampler.schedule().timesteps, contexts, attn),
                            {kCfg, attn.pag_scale}, o.steps, device);
    if (attn.dual_path)
      std::printf("freeswim full-branch passes: %d (inside the model passes above)\n",
                  attn.dual_path->store().full_branch_passes());
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

struct BenchT2iOptions {
  std::string config = "flux.1-dev", clip_config = "clip-l", t5_config = "t5-v1_1-xxl", ae_config = "flux.1-ae";
  bool random_weights = false;
  int64_t width = 256, height = 256;
  int steps = 2;
  int64_t text_len = 0;  // 0 = 512 dev-like, 256 schnell-like
  std::string dtype = "bf16";
  bool skip_text_encoders = false, skip_vae = false;
  AttentionOptions attention;
};

constexpr double kFluxGuidance = 3.5;

// Ids spread over the vocabulary; their values do not change the cost.
Tensor spread_ids(int64_t length, int64_t vocab) {
  Tensor ids = Tensor::empty({1, length}, DType::I64);
  for (int64_t i = 0; i < length; ++i) ids.data<int64_t>()[i] = (i * 2654435761ll) % vocab;
  return ids;
}

void run_bench_t2i(const BenchT2iOptions& o, const GlobalOptions& global) {
  Device device = apply_global_options(global);
  DK_CHECK(o.random_weights, "bench t2i: give --random-weights (benchmarking loaded checkpoints is not supported)");
  DK_CHECK(o.width >= 16 && o.width % 16 == 0, "-W/--width ", o.width, ": must be a positive multiple of 16");
  DK_CHECK(o.height >= 16 && o.height % 16 == 0, "-H/--height ", o.height, ": must be a positive multiple of 16");
  DK_CHECK(o.steps >= 1, "--steps must be at least 1");
  DK_CHECK(o.text_len >= 0, "--text-len ", o.text_len, ": must be positive (0 = 512 dev-like, 256 schnell-like)");
  const DType dtype = parse_dtype(o.dtype);
  const auto dit_config = resolve_config(o.config, weights::Family::flux_dit, "--config");
  const auto clip_config = resolve_config(o.clip_config, weights::Family::clip_l, "--clip-config");
  const auto t5_config = resolve_config(o.t5_config, weights::Family::t5_xxl, "--t5-config");
  const auto ae_config = resolve_config(o.ae_config, weights::Family::flux_ae, "--ae-config");
  const auto& dit_cfg = dit_config.as<weights::FluxDitConfig>();
  const auto& clip_cfg = clip_config.as<weights::ClipTextConfig>();
  const auto& t5_cfg = t5_config.as<weights::T5Config>();
  const auto& ae_cfg = ae_config.as<weights::FluxAeConfig>();
  const bool dev = dit_cfg.guidance_embed;
  const int64_t text_len = o.text_len > 0 ? o.text_len : flux_default_text_len(dev);
  const AttentionSetup attn = make_attention_setup(o.attention, dit_cfg.depth + dit_cfg.depth_single_blocks,
                                                   dit_cfg.num_heads, /*cross_attention=*/false);
  DK_CHECK(o.skip_text_encoders || t5_cfg.dim == dit_cfg.context_in_dim, "--t5-config ", o.t5_config, ": width ",
           t5_cfg.dim, " does not match the DiT's context_in_dim ", dit_cfg.context_in_dim);
  DK_CHECK(o.skip_text_encoders || clip_cfg.hidden_size == dit_cfg.vec_in_dim, "--clip-config ", o.clip_config,
           ": width ", clip_cfg.hidden_size, " does not match the DiT's vec_in_dim ", dit_cfg.vec_in_dim);
  DK_CHECK(ae_cfg.z_channels * 4 == dit_cfg.in_channels, "--ae-config ", o.ae_config, ": z_channels ",
           ae_cfg.z_channels, " does not match the DiT's in_channels ", dit_cfg.in_channels, " / 4");

  const int64_t h = o.height / 16, w = o.width / 16;
  const Shape latent{ae_cfg.z_channels, 2 * h, 2 * w};
  std::printf("bench t2i: dit %s, clip %s, t5 %s, ae %s; random %s weights on %s, %d threads\n", o.config.c_str(),
              o.clip_config.c_str(), o.t5_config.c_str(), o.ae_config.c_str(), dtype_name(dtype), device.str().c_str(),
              num_threads());
  std::printf("size: %lldx%lld, latent %s, %lld image tokens + %lld text tokens, %d steps euler (%s: %s, "
              "1 model call per step)\n",
              static_cast<long long>(o.width), static_cast<long long>(o.height), shape_str(latent).c_str(),
              static_cast<long long>(h * w), static_cast<long long>(text_len), o.steps, dev ? "dev-like" : "schnell-like",
              dev ? "shift, guidance 3.5" : "no shift");
  for (const auto& [key, value] : attn.metadata) std::printf("%s: %s\n", key.c_str(), value.c_str());
  std::fflush(stdout);
  size_t total_weights = 0;

  // Text: one prompt, CLIP at its 77 positions and T5 at text_len (unmasked, as FLUX runs it).
  FluxConditioning cond;
  cond.guidance = kFluxGuidance;
  cond.img_ids = dit::image_ids(h, w);
  cond.txt_ids = Tensor::zeros({text_len, 3}, DType::F32);
  if (o.skip_text_encoders) {
    cond.txt = weights::random_tensor({text_len, dit_cfg.context_in_dim}, DType::F32, 1.0f, kSeed).to(device);
    cond.vec = weights::random_tensor({dit_cfg.vec_in_dim}, DType::F32, 1.0f, kSeed + 1).to(device);
    std::printf("text encoders: skipped (--skip-text-encoders; random txt [%lld, %lld] and vec [%lld])\n",
                static_cast<long long>(text_len), static_cast<long long>(dit_cfg.context_in_dim),
                static_cast<long long>(dit_cfg.vec_in_dim));
  } else {
    {
      auto wts = generate("clip", clip_config, dtype, device);
      total_weights += weight_bytes(wts);
      text::ClipTextEncoder clip(wts, clip_cfg, device);
      Stopwatch clock(device);
      cond.vec = clip.forward(spread_ids(clip_cfg.max_position_embeddings, clip_cfg.vocab_size).to(device))
                     .pooled.select(0, 0);
      std::printf("clip: %.3f s (%lld tokens)\n", clock.seconds(), static_cast<long long>(clip_cfg.max_position_embeddings));
      print_memory("clip", weight_bytes(wts), device);
    }
    {
      auto wts = generate("t5", t5_config, dtype, device);
      total_weights += weight_bytes(wts);
      text::UMT5Encoder t5(wts, t5_cfg, device);
      const Tensor ids = spread_ids(text_len, t5_cfg.vocab).to(device);
      Stopwatch clock(device);
      cond.txt = t5.forward(ids, Tensor::full(ids.shape(), 1.0f, DType::I64).to(device)).select(0, 0);
      std::printf("t5: %.3f s (%lld tokens)\n", clock.seconds(), static_cast<long long>(text_len));
      print_memory("t5", weight_bytes(wts), device);
    }
  }
  std::fflush(stdout);

  // Denoising, timed per step (timed_denoise).
  Tensor latents;
  {
    auto wts = generate("dit", dit_config, dtype, device);
    total_weights += weight_bytes(wts);
    dit::FluxModel model(wts, dit_cfg, device);
    samplers::FlowSampler sampler(samplers::SamplerKind::Euler, samplers::flux_schedule(o.steps, h * w, dev));
    Tensor x = dit::pack_latents(samplers::TorchGenerator(kSeed).randn(latent).to(device));
    latents = dit::unpack_latents(
        timed_denoise(sampler, x, flux_velocity(model, sampler.schedule().timesteps, cond, attn),
                      {1.0, attn.pag_scale}, o.steps, device),
        2 * h, 2 * w);
    print_memory("dit", weight_bytes(wts), device);
  }
  std::fflush(stdout);

  if (o.skip_vae) {
    std::printf("ae decode: skipped (--skip-vae)\n");
  } else {
    auto wts = generate("ae", ae_config, dtype, device);
    total_weights += weight_bytes(wts);
    vae::FluxAE ae(wts, ae_cfg, device);
    Stopwatch clock(device);
    Tensor image = ae.decode(latents);
    std::printf("ae decode: %.3f s (latent %s -> image %s)\n", clock.seconds(), shape_str(latent).c_str(),
                shape_str(image.shape()).c_str());
    std::printf("image: %s\n", all_finite(image) ? "finite" : "NOT FINITE");
    print_memory("ae", weight_bytes(wts), device);
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

  auto p = std::make_shared<BenchT2iOptions>();
  auto* t2i = bench->add_subcommand("t2i", "FLUX.1 text-to-image: CLIP and T5, denoising steps, AE decode");
  t2i->add_option("--config", p->config, "DiT: flux.1-dev, flux.1-schnell or a config.json")->capture_default_str();
  t2i->add_option("--clip-config", p->clip_config, "CLIP: clip-l or a config.json")->capture_default_str();
  t2i->add_option("--t5-config", p->t5_config, "T5: t5-v1_1-xxl or a config.json")->capture_default_str();
  t2i->add_option("--ae-config", p->ae_config, "autoencoder: flux.1-ae or a config.json")->capture_default_str();
  t2i->add_flag("--random-weights", p->random_weights, "random weights at the config's shapes (required)");
  t2i->add_option("-W,--width", p->width, "width in pixels (multiple of 16)")->capture_default_str();
  t2i->add_option("-H,--height", p->height, "height in pixels (multiple of 16)")->capture_default_str();
  t2i->add_option("--steps", p->steps, "sampling steps")->capture_default_str();
  t2i->add_option("--text-len", p->text_len, "T5 tokens (default: 512 dev-like, 256 schnell-like)");
  t2i->add_option("--dtype", p->dtype, "weight dtype: bf16, f16, f32 or fp8 (e4m3)")->capture_default_str();
  t2i->add_flag("--skip-text-encoders", p->skip_text_encoders, "use random txt / vec instead of running CLIP and T5");
  t2i->add_flag("--skip-vae", p->skip_vae, "stop after denoising");
  p->attention.add_to(*t2i);
  t2i->callback([p, &global] { run_bench_t2i(*p, global); });
}

}  // namespace ditkit::apps
