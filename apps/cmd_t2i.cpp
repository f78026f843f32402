// ditkit t2i: FLUX.1 text-to-image as the official code runs it (src/flux/cli.py, sampling.py):
// CLIP-L pooled vector and T5 rows (padding included, no mask) for each prompt, noise
// [16, 2 ceil(H/16), 2 ceil(W/16)] from torch's CPU generator (or a file), 2x2 packing, the
// flow schedule with the resolution-dependent shift (dev-like models) or without (schnell-like),
// Euler steps with distilled guidance (UniPC / DPM++ on request), AE decode, PNGs with the
// generation parameters. Attention kinds or a plan and PAG / SoftPAG come from the options in
// apps/components.h. Also `ditkit encode-prompt`, which saves the text conditioning in diffusers'
// names (prompt_embeds [N, L, D], pooled_prompt_embeds [N, D]) for `t2i --prompt-embeds`.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>

#include "apps/commands.h"
#include "apps/components.h"
#include "apps/pipelines.h"
#include "core/atomic_file.h"
#include "core/ops.h"
#include "core/progress.h"
#include "dit/flux.h"
#include "io/image.h"
#include "io/video.h"
#include "samplers/denoise.h"
#include "samplers/torch_rng.h"
#include "text/clip.h"
#include "text/tokenizer.h"
#include "text/umt5.h"
#include "vae/flux_ae.h"
#include "weights/checkpoint.h"

namespace ditkit::apps {
namespace {

using weights::Family;

constexpr const char* kEmbedsName = "prompt_embeds";
constexpr const char* kPooledName = "pooled_prompt_embeds";

void save_prompt_embeds(const std::string& path, const PromptEmbeds& e, const std::vector<std::string>& prompts) {
  weights::save_safetensors(path, {{kEmbedsName, e.txt}, {kPooledName, e.vec}},
                            {{"prompts", nlohmann::json(prompts).dump()}});
}

// prompt_embeds [N, L, D] or [L, D] and pooled_prompt_embeds [N, D] or [D]; the prompts saved
// with them when the file has them.
PromptEmbeds read_prompt_embeds(const std::string& path, std::vector<std::string>* prompts) {
  const auto ck = weights::Checkpoint::open(path);
  for (const char* name : {kEmbedsName, kPooledName})
    DK_CHECK(ck.contains(name), "--prompt-embeds ", path, ": no tensor '", name, "' (expected ", kEmbedsName,
             " [1, L, D] and ", kPooledName, " [1, D], as `ditkit encode-prompt` writes them)");
  PromptEmbeds e{ck.get(kEmbedsName).to(DType::F32).contiguous(), ck.get(kPooledName).to(DType::F32).contiguous()};
  if (e.txt.ndim() == 2) e.txt = e.txt.unsqueeze(0);
  if (e.vec.ndim() == 1) e.vec = e.vec.unsqueeze(0);
  DK_CHECK(e.txt.ndim() == 3 && e.vec.ndim() == 2 && e.txt.dim(0) == e.vec.dim(0), "--prompt-embeds ", path, ": ",
           kEmbedsName, " ", e.txt.str(), " and ", kPooledName, " ", e.vec.str(),
           " must be [N, L, D] and [N, D] with the same N");
  const auto it = ck.metadata().find("prompts");
  if (prompts && it != ck.metadata().end()) {
    const auto j = nlohmann::json::parse(it->second, nullptr, /*allow_exceptions=*/false);
    if (j.is_array() && j.size() == size_t(e.txt.dim(0))) *prompts = j.get<std::vector<std::string>>();
  }
  return e;
}

// --noise: [C, h, w] (every image), [1, C, h, w] or [count, C, h, w]. Returns [count or 1, C, h, w].
Tensor read_noise(const std::string& path, const Shape& latent, int64_t count) {
  const auto ck = weights::Checkpoint::open(path);
  DK_CHECK(ck.size() == 1, "--noise ", path, ": expected one tensor, found ", ck.size());
  Tensor t = ck.get(ck.names().front());
  if (t.ndim() == int64_t(latent.size())) t = t.unsqueeze(0);
  Shape batch_free = t.shape();
  if (!batch_free.empty()) batch_free.erase(batch_free.begin());
  DK_CHECK(t.ndim() == 4 && batch_free == latent && (t.dim(0) == 1 || t.dim(0) == count), "--noise ", path,
           ": tensor '", ck.names().front(), "' has shape ", shape_str(ck.get(ck.names().front()).shape()),
           ", expected ", shape_str(latent), " with an optional leading batch of 1 or ", count);
  return t.to(DType::F32).contiguous();
}

struct T2iOptions {
  std::string prompt, prompts_file, prompt_embeds;
  FluxPaths paths;
  int64_t width = 1024, height = 1024;
  int steps = 0;                           // 0: 28 dev-like, 4 schnell-like
  double guidance = 3.5;                   // distilled guidance (dev-like models)
  std::string shift = "auto", sampler = "euler";
  int64_t seed = -1, batch = 1, max_sequence_length = 0;
  std::string noise, out = "out.png", save_latents;
  AttentionOptions attention;
};

void run_t2i(const T2iOptions& o, const GlobalOptions& global) {
  Device device = apply_global_options(global);
  check_output_path(o.out, "-o/--out");
  check_output_path(o.save_latents, "--save-latents");
  DK_CHECK(!o.prompt.empty() || !o.prompts_file.empty() || !o.prompt_embeds.empty(),
           "give -p/--prompt, --prompts FILE or --prompt-embeds FILE");
  DK_CHECK(o.prompt.empty() || o.prompts_file.empty(), "give either -p/--prompt or --prompts, not both");
  DK_CHECK(o.batch >= 1, "--batch ", o.batch, ": must be at least 1");
  DK_CHECK(o.max_sequence_length >= 0, "--max-sequence-length ", o.max_sequence_length, ": must be positive");
  DK_CHECK(o.shift == "auto" || o.shift == "on" || o.shift == "off", "--shift ", o.shift,
           ": expected auto, on or off");
  const int64_t width = image_side(o.width, "-W/--width"), height = image_side(o.height, "-H/--height");
  const auto kind = samplers::parse_sampler(o.sampler);

  auto dit_c = std::make_optional(o.paths.load(Family::flux_dit));
  const auto dit_cfg = dit_c->config.as<weights::FluxDitConfig>();
  // Dev-like (guidance embedding): shift on, 28 steps, T5 512; schnell-like: no shift, 4 steps, T5 256.
  const bool dev = dit_cfg.guidance_embed;
  DK_CHECK(o.steps >= 0, "--steps ", o.steps, ": must be at least 1");
  const int steps = o.steps > 0 ? o.steps : dev ? 28 : 4;
  const bool shift = o.shift == "auto" ? dev : o.shift == "on";
  const double guidance = o.guidance;
  const int64_t text_len = o.max_sequence_length > 0 ? o.max_sequence_length : flux_default_text_len(dev);
  const AttentionSetup attn =
      make_attention_setup(o.attention, dit_cfg.depth + dit_cfg.depth_single_blocks, dit_cfg.num_heads, false);

  // Text.
  std::vector<std::string> prompts = o.prompts_file.empty() ? std::vector<std::string>{o.prompt}
                                                            : read_prompts(o.prompts_file);
  PromptEmbeds embeds;
  if (!o.prompt_embeds.empty()) {
    std::vector<std::string> saved;
    embeds = read_prompt_embeds(o.prompt_embeds, &saved);
    const int64_t n = embeds.txt.dim(0);
    if (o.prompt.empty() && o.prompts_file.empty()) prompts = saved.empty() ? std::vector<std::string>(n) : saved;
    DK_CHECK(int64_t(prompts.size()) == n, "--prompt-embeds ", o.prompt_embeds, " holds ", n,
             " prompts, the prompt options give ", prompts.size());
  } else {
    embeds = flux_encode_prompts(o.paths, prompts, text_len, device);
  }
  DK_CHECK(embeds.txt.dim(2) == dit_cfg.context_in_dim, "T5 width ", embeds.txt.dim(2),
           " does not match the DiT's context_in_dim ", dit_cfg.context_in_dim);
  DK_CHECK(embeds.vec.dim(1) == dit_cfg.vec_in_dim, "CLIP width ", embeds.vec.dim(1),
           " does not match the DiT's vec_in_dim ", dit_cfg.vec_in_dim);

  // Noise: get_noise(count, H, W) draws every image's noise in one call.
  const int64_t count = int64_t(prompts.size()) * o.batch;
  const Shape latent{dit_cfg.in_channels / 4, height / 8, width / 8};
  int64_t seed = o.seed;
  if (o.noise.empty() && seed < 0) {
    seed = int64_t(std::random_device{}() & 0x7fffffff);
    std::fprintf(stderr, "seed: %lld\n", static_cast<long long>(seed));
  }
  const Tensor noise = o.noise.empty() ? samplers::TorchGenerator(uint64_t(seed)).randn({count, latent[0], latent[1], latent[2]})
                                       : read_noise(o.noise, latent, count);

  // Denoising, one image at a time.
  const samplers::FlowSchedule schedule = samplers::flux_schedule(steps, (height / 16) * (width / 16), shift);
  std::vector<Tensor> latents;
  {
    const dit::FluxModel model(*dit_c->weights, dit_cfg, device);
    for (int64_t i = 0; i < count; ++i) {
      const int64_t p = i / o.batch;
      FluxConditioning cond{embeds.txt.select(0, p).to(device), Tensor::zeros({embeds.txt.dim(1), 3}, DType::F32),
                            embeds.vec.select(0, p).to(device), dit::image_ids(height / 16, width / 16), guidance};
      samplers::FlowSampler sampler(kind, schedule);
      Progress progress(steps, "denoise " + std::to_string(i + 1) + "/" + std::to_string(count),
                        {stderr, global.verbose});
      const Tensor x = dit::pack_latents(noise.select(0, noise.dim(0) == 1 ? 0 : i).to(device));
      const auto velocity = flux_velocity(model, sampler.schedule().timesteps, cond, attn);
      const Tensor out = samplers::denoise(sampler, x, velocity, {1.0, attn.pag_scale}, &progress);
      progress.finish();
      latents.push_back(dit::unpack_latents(out, latent[1], latent[2]));
    }
  }
  dit_c.reset();
  if (!o.save_latents.empty()) {
    std::vector<Tensor> batch;
    for (const Tensor& z : latents) batch.push_back(z.unsqueeze(0));
    weights::save_safetensors(o.save_latents, {{"latents", ops::concat(batch, 0)}});
  }

  // Images.
  const auto ae_c = o.paths.load(Family::flux_ae);
  const vae::FluxAE ae(*ae_c.weights, ae_c.config.as<weights::FluxAeConfig>(), device);
  char mu[32];
  std::snprintf(mu, sizeof mu, "mu %.6g", samplers::flux_mu((height / 16) * (width / 16)));
  for (int64_t i = 0; i < count; ++i) {
    std::vector<std::pair<std::string, std::string>> settings{
        {"model", dev ? "flux.1 (dev-like: guidance embedding)" : "flux.1 (schnell-like: no guidance embedding)"},
        {"steps", std::to_string(steps)},
        {"sampler", samplers::sampler_name(kind)},
        {"shift", shift ? mu : "off"},
        {"seed", o.noise.empty() ? std::to_string(seed) : "noise file " + o.noise},
        {"size", std::to_string(width) + "x" + std::to_string(height)},
        {"max-sequence-length", std::to_string(embeds.txt.dim(1))}};
    if (dev) settings.push_back({"guidance", std::to_string(guidance)});
    if (count > 1) settings.push_back({"image", std::to_string(i) + " of " + std::to_string(count)});
    if (!o.prompt_embeds.empty()) settings.push_back({"prompt-embeds", o.prompt_embeds});
    settings.insert(settings.end(), attn.metadata.begin(), attn.metadata.end());
    const Image image = tensor_to_image(ae.decode(latents[size_t(i)]));
    const std::string path = numbered_path(o.out, i, count);
    write_png(path, image, generation_text(prompts[size_t(i / o.batch)], "", settings));
    if (global.verbose) std::fprintf(stderr, "wrote %s\n", path.c_str());
  }
}

}  // namespace

void register_t2i(CLI::App& app, const GlobalOptions& global) {
  auto o = std::make_shared<T2iOptions>();
  auto* cmd = app.add_subcommand("t2i", "FLUX.1 text-to-image");
  cmd->add_option("-p,--prompt", o->prompt, "what the image shows");
  cmd->add_option("--prompts", o->prompts_file, "a file of prompts, one per line (one image each, times --batch)");
  cmd->add_option("--prompt-embeds", o->prompt_embeds,
                  "saved text conditioning (prompt_embeds [1, L, D], pooled_prompt_embeds [1, D]; "
                  "`ditkit encode-prompt`) instead of running the text encoders");
  o->paths.add_to(*cmd, true);
  cmd->add_option("-W,--width", o->width, "width in pixels (rounded down to a multiple of 16)")->capture_default_str();
  cmd->add_option("-H,--height", o->height, "height in pixels (rounded down to a multiple of 16)")
      ->capture_default_str();
  cmd->add_option("--steps", o->steps, "sampling steps (default: 28 for dev-like models, 4 for schnell-like)");
  cmd->add_option("--guidance", o->guidance, "distilled guidance (dev-like models)")->capture_default_str();
  cmd->add_option("--shift", o->shift, "resolution-dependent time shift: auto (on for dev-like models), on, off")
      ->capture_default_str();
  cmd->add_option("--sampler", o->sampler, "euler (official), unipc or dpm++")->capture_default_str();
  cmd->add_option("--seed", o->seed, "noise seed (torch CPU generator, as flux get_noise; default random)");
  cmd->add_option("--noise", o->noise, "start from this noise (safetensors, one tensor [16, H/8, W/8], batch dim optional)");
  cmd->add_option("--batch", o->batch, "images per prompt (noise drawn for all at once; outputs numbered)")
      ->capture_default_str();
  o->attention.add_to(*cmd);
  cmd->add_option("--max-sequence-length", o->max_sequence_length,
                  "T5 tokens (default: 512 for dev-like models, 256 for schnell-like)");
  cmd->add_option("-o,--out", o->out, "output PNG (numbered out_0.png ... for several images, or a %d pattern)")
      ->capture_default_str();
  cmd->add_option("--save-latents", o->save_latents, "also save the final latents [N, 16, H/8, W/8] (safetensors)");
  cmd->callback([o, &global] { run_t2i(*o, global); });
}

void register_encode_prompt(CLI::App& app, const GlobalOptions& global) {
  struct EncodeOptions {
    std::string prompt, prompts_file, out = "prompt_embeds.safetensors";
    FluxPaths paths;
    int64_t max_sequence_length = 0;
  };
  auto o = std::make_shared<EncodeOptions>();
  auto* cmd = app.add_subcommand("encode-prompt", "FLUX.1 text conditioning (T5 + CLIP pooled) for t2i --prompt-embeds");
  cmd->add_option("-p,--prompt", o->prompt, "the prompt");
  cmd->add_option("--prompts", o->prompts_file, "a file of prompts, one per line (saved as a batch)");
  o->paths.add_to(*cmd, false);
  cmd->add_option("--max-sequence-length", o->max_sequence_length,
                  "T5 tokens (default: 256 when --dit/--model holds a schnell-like DiT, else 512)");
  cmd->add_option("-o,--out", o->out, "safetensors with prompt_embeds and pooled_prompt_embeds")->capture_default_str();
  cmd->callback([o, &global] {
    Device device = apply_global_options(global);
    DK_CHECK(o->prompt.empty() || o->prompts_file.empty(), "give either -p/--prompt or --prompts, not both");
    DK_CHECK(!o->prompt.empty() || !o->prompts_file.empty(), "give -p/--prompt or --prompts FILE");
    DK_CHECK(o->max_sequence_length >= 0, "--max-sequence-length ", o->max_sequence_length, ": must be positive");
    const std::vector<std::string> prompts =
        o->prompts_file.empty() ? std::vector<std::string>{o->prompt} : read_prompts(o->prompts_file);
    int64_t text_len = o->max_sequence_length;
    if (text_len == 0) {
      const auto dit = o->paths.find_dit_config();
      text_len = flux_default_text_len(!dit || dit->guidance_embed);
    }
    save_prompt_embeds(o->out, flux_encode_prompts(o->paths, prompts, text_len, device), prompts);
    if (global.verbose) std::fprintf(stderr, "wrote %s\n", o->out.c_str());
  });
}

}  // namespace ditkit::apps
