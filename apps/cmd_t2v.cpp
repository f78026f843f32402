// ditkit t2v: Wan2.1 text-to-video as the official pipeline runs it (wan/text2video.py):
// umT5 contexts for the prompt and the negative prompt, flow sampling with classifier-free
// guidance, Wan VAE decode, frames written as MP4 or PNGs. Attention kinds or a plan, PAG /
// SoftPAG and FreeSwim's dual path come from the options in apps/components.h. Also `ditkit decode`.
#include <cmath>
#include <cstdio>
#include <random>

#include "apps/commands.h"
#include "apps/components.h"
#include "apps/pipelines.h"
#include "core/atomic_file.h"
#include "core/ops.h"
#include "core/progress.h"
#include "dit/wan.h"
#include "io/image.h"
#include "io/video.h"
#include "samplers/denoise.h"
#include "samplers/torch_rng.h"
#include "text/tokenizer.h"
#include "text/umt5.h"
#include "vae/wan_vae.h"
#include "weights/checkpoint.h"

namespace ditkit::apps {
namespace {

struct T2vOptions {
  std::string prompt, negative_prompt = kWanNegativePrompt;
  WanPaths paths;
  int64_t frames = 81, width = 832, height = 480;
  int steps = 50;
  double cfg = 5.0, shift = 5.0;
  std::string sampler = "unipc";
  int64_t seed = -1;
  std::string noise, out = "video.mp4", save_latents;
  AttentionOptions attention;
  int64_t max_sequence_length = 0;
  double fps = 16;
  int crf = 18;
};

// --noise: one tensor of the latent shape, with or without a leading batch dimension of 1.
Tensor read_noise(const std::string& path, const Shape& shape) {
  auto ck = weights::Checkpoint::open(path);
  DK_CHECK(ck.size() == 1, "--noise ", path, ": expected one tensor, found ", ck.size());
  Tensor t = ck.get(ck.names().front());
  if (t.ndim() == int64_t(shape.size()) + 1 && t.dim(0) == 1) t = t.squeeze(0);
  DK_CHECK(t.shape() == shape, "--noise ", path, ": tensor '", ck.names().front(), "' has shape ",
           shape_str(t.shape()), ", expected ", shape_str(shape), " (or with a leading 1)");
  return t.to(DType::F32).contiguous();
}

void check_size(const T2vOptions& o) {
  check_wan_video_size(o.frames, o.width, o.height);
  DK_CHECK(o.steps >= 1, "--steps must be at least 1");
}

void run_t2v(const T2vOptions& o, const GlobalOptions& global) {
  Device device = apply_global_options(global);
  check_output_path(o.out, "-o/--out");
  check_output_path(o.save_latents, "--save-latents");
  check_size(o);
  auto kind = samplers::parse_sampler(o.sampler);
  auto [dit_c, t5_c, vae_c, tok_path] = o.paths.load();
  auto dit_cfg = dit_c.config.as<weights::WanDitConfig>();
  const auto& vae_cfg = vae_c.config.as<weights::WanVaeConfig>();
  // The text length is both the tokenizer's padding and the rows the DiT pads the context to.
  if (o.max_sequence_length > 0) dit_cfg.text_len = o.max_sequence_length;
  const int64_t text_len = dit_cfg.text_len;
  const AttentionSetup attn = make_attention_setup(o.attention, dit_cfg.num_layers, dit_cfg.num_heads);

  // Text.
  auto tokenizer = text::load_t5_tokenizer(tok_path);
  text::UMT5Encoder t5(*t5_c.weights, t5_c.config.as<weights::T5Config>(), device);
  auto batch = tokenizer->encode_batch({o.prompt, o.negative_prompt}, text_len);
  auto contexts = t5.encode(batch.ids.to(device), batch.mask.to(device));

  // Noise.
  Shape latent{vae_cfg.z_dim, (o.frames - 1) / 4 + 1, o.height / 8, o.width / 8};
  int64_t seed = o.seed;
  if (o.noise.empty() && seed < 0) {
    seed = int64_t(std::random_device{}() & 0x7fffffff);
    std::fprintf(stderr, "seed: %lld\n", static_cast<long long>(seed));
  }
  Tensor x = o.noise.empty() ? samplers::TorchGenerator(uint64_t(seed)).randn(latent) : read_noise(o.noise, latent);
  x = x.to(device);

  // Denoising.
  dit::WanModel model(*dit_c.weights, dit_cfg, device);
  samplers::FlowSampler sampler(kind, samplers::wan_schedule(kind, o.steps, o.shift));
  Progress progress(o.steps, "denoise", {stderr, global.verbose});
  const auto velocity = wan_velocity(model, sampler.schedule().timesteps, contexts, attn);
  Tensor latents = samplers::denoise(sampler, x, velocity, {o.cfg, attn.pag_scale}, &progress);
  progress.finish();
  if (!o.save_latents.empty()) weights::save_safetensors(o.save_latents, {{"latents", latents}});

  // Frames.
  vae::WanVAE vae(*vae_c.weights, vae_cfg, device);
  Tensor video = vae.decode(latents);
  std::vector<std::pair<std::string, std::string>> settings{
      {"model", "wan2.1-t2v"},
      {"steps", std::to_string(o.steps)},
      {"sampler", samplers::sampler_name(kind)},
      {"cfg", std::to_string(o.cfg)},
      {"shift", std::to_string(o.shift)},
      {"seed", o.noise.empty() ? std::to_string(seed) : "noise file " + o.noise},
      {"size", std::to_string(o.width) + "x" + std::to_string(o.height)},
      {"frames", std::to_string(o.frames)}};
  settings.insert(settings.end(), attn.metadata.begin(), attn.metadata.end());
  auto text = generation_text(o.prompt, o.negative_prompt, settings);
  write_frames(video, {o.out, o.fps, o.crf}, text);
  if (global.verbose) std::fprintf(stderr, "wrote %s\n", o.out.c_str());
}

}  // namespace

void register_t2v(CLI::App& app, const GlobalOptions& global) {
  auto o = std::make_shared<T2vOptions>();
  auto* cmd = app.add_subcommand("t2v", "Wan2.1 text-to-video");
  cmd->add_option("-p,--prompt", o->prompt, "what the video shows")->required();
  cmd->add_option("-n,--negative-prompt", o->negative_prompt, "(default: the official Wan negative prompt)");
  o->paths.add_to(*cmd);
  cmd->add_option("--frames", o->frames, "number of frames (4k+1)")->capture_default_str();
  cmd->add_option("-W,--width", o->width, "width in pixels (multiple of 16)")->capture_default_str();
  cmd->add_option("-H,--height", o->height, "height in pixels (multiple of 16)")->capture_default_str();
  cmd->add_option("--steps", o->steps, "sampling steps")->capture_default_str();
  cmd->add_option("--cfg", o->cfg, "classifier-free guidance scale")->capture_default_str();
  cmd->add_option("--shift", o->shift, "timestep shift")->capture_default_str();
  cmd->add_option("--sampler", o->sampler, "unipc, dpm++ or euler")->capture_default_str();
  cmd->add_option("--seed", o->seed, "noise seed (torch CPU generator; default random)");
  cmd->add_option("--noise", o->noise, "start from this noise tensor (safetensors, one tensor)");
  o->attention.add_to(*cmd);
  cmd->add_option("--max-sequence-length", o->max_sequence_length, "text length (default: the model's text_len)");
  cmd->add_option("-o,--out", o->out, "video.mp4 or frame_%04d.png")->capture_default_str();
  cmd->add_option("--fps", o->fps, "frames per second of the MP4")->capture_default_str();
  cmd->add_option("--crf", o->crf, "H.264 quality (0 lossless .. 51)")->capture_default_str();
  cmd->add_option("--save-latents", o->save_latents, "also save the final latents (safetensors)");
  cmd->callback([o, &global] { run_t2v(*o, global); });
}

void register_decode(CLI::App& app, const GlobalOptions& global) {
  struct DecodeOptions {
    std::string vae, latents, out = "video.mp4";
    double fps = 16;
    int crf = 18;
  };
  auto o = std::make_shared<DecodeOptions>();
  auto* cmd = app.add_subcommand("decode", "decode saved Wan latents with the VAE");
  cmd->add_option("--vae", o->vae, "Wan VAE weights (file or folder)")->required();
  cmd->add_option("--latents", o->latents, "latents saved by t2v --save-latents")->required();
  cmd->add_option("-o,--out", o->out, "video.mp4 or frame_%04d.png")->capture_default_str();
  cmd->add_option("--fps", o->fps, "frames per second of the MP4")->capture_default_str();
  cmd->add_option("--crf", o->crf, "H.264 quality (0 lossless .. 51)")->capture_default_str();
  cmd->callback([o, &global] {
    Device device = apply_global_options(global);
    auto vae_c = load_family(o->vae, weights::Family::wan_vae, "--vae");
    auto ck = weights::Checkpoint::open(o->latents);
    DK_CHECK(ck.size() == 1, "--latents ", o->latents, ": expected one tensor, found ", ck.size());
    Tensor z = ck.get(ck.names().front());
    if (z.ndim() == 5 && z.dim(0) == 1) z = z.squeeze(0);
    DK_CHECK(z.ndim() == 4, "--latents ", o->latents, ": expected [C, T, H, W], got ", z.str());
    vae::WanVAE vae(*vae_c.weights, vae_c.config.as<weights::WanVaeConfig>(), device);
    write_frames(vae.decode(z.to(DType::F32).to(device)), {o->out, o->fps, o->crf}, {});
  });
}

}  // namespace ditkit::apps
