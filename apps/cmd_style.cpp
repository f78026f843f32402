// ditkit style: a style-aligned set (AlignedGen, ../shared/spec/hooks.md §1.2) from FLUX.1
// (images, as t2i) or Wan2.1 (videos, as t2v) models. The prompts are rows of one lockstep
// batch (samplers::denoise_rows): row 0 is the reference every other row shares attention with
// (attention/aligned_gen.h), on top of the attention kinds and PAG of apps/components.h.
//
// Noise is drawn as the plain commands draw it, so --share-strength 0 writes the pixels they
// write: FLUX draws every image's noise in one call from --seed (t2i --prompts FILE --seed N);
// Wan video i uses --seed N + i (t2v -p PROMPT_i --seed N+i).
//
// --reference FILE: the reference is a user image (FLUX; Wan: a video, or an image held still)
// encoded by the VAE; it becomes row 0 with --reference-prompt as its caption, and at the start
// of every step its latent is the forward-noised reference (1 - sigma) x0 + sigma n with one
// fixed noise n (FLUX: the next draw of the seed's generator after the images' noise; Wan:
// seed N + count). That row is not written; every prompt is a target and written.
// Outputs: DIR/000.png ... (FLUX) or DIR/000.mp4 ... (Wan), written atomically, parameters in
// the PNG text / MP4 metadata.
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <random>

#include "apps/commands.h"
#include "apps/components.h"
#include "apps/pipelines.h"
#include "attention/aligned_gen.h"
#include "core/atomic_file.h"
#include "core/ops.h"
#include "core/progress.h"
#include "dit/flux.h"
#include "dit/wan.h"
#include "io/image.h"
#include "io/video.h"
#include "samplers/denoise.h"
#include "samplers/torch_rng.h"
#include "text/tokenizer.h"
#include "text/umt5.h"
#include "vae/flux_ae.h"
#include "vae/wan_vae.h"
#include "weights/checkpoint.h"

namespace ditkit::apps {
namespace {

using weights::Family;

struct StyleOptions {
  std::vector<std::string> prompts;
  std::string prompts_file, style, reference, reference_prompt, negative_prompt = kWanNegativePrompt;
  FluxPaths paths;  // --model, --dit, --vae and FLUX's encoders; Wan's encoder flags below
  std::string text_encoder, tokenizer, share_layers;
  double strength = 1.0, lambda = 1.1;
  bool no_shift_pe = false, no_adain = false;
  int64_t width = 0, height = 0, frames = 81;  // 0: the model's default size
  int64_t frame_stride = 1;
  int steps = 0;
  std::string sampler, shift;  // "": the model's default
  double guidance = 3.5, cfg = 5.0;
  int64_t seed = -1, max_sequence_length = 0;
  AttentionOptions attention;
  std::string out, save_latents;
  double fps = 16;
  int crf = 18;
};

// What every model shares: prompts (style appended), the reference, the noise seed, the hooks.
struct StyleRun {
  std::vector<std::string> prompts;  // the written rows, style appended
  bool external = false;             // row 0 is the --reference
  int64_t seed = 0;
  attention::AlignedGenOptions aligned;
  std::vector<std::pair<std::string, std::string>> settings;  // style settings for the outputs
};

bool is_wan(const StyleOptions& o) {
  const std::string path = o.paths.dit.empty() ? o.paths.model : o.paths.dit;
  DK_CHECK(!path.empty(), "give --model DIR or --dit FILE");
  for (const auto& c : weights::find_components(path).components) {
    const Family f = weights::load_component(c).detected.family;
    if (f == Family::wan_dit) return true;
    if (f == Family::flux_dit) return false;
  }
  fail(o.paths.dit.empty() ? "--model " : "--dit ", path, ": no FLUX.1 or Wan2.1 DiT found");
}

StyleRun prepare(const StyleOptions& o) {
  DK_CHECK(!o.prompts.empty() || !o.prompts_file.empty(), "give -p/--prompt (once per image) or --prompts FILE");
  DK_CHECK(o.prompts.empty() || o.prompts_file.empty(), "give either -p/--prompt or --prompts, not both");
  DK_CHECK(std::isfinite(o.strength) && o.strength >= 0.0, "--share-strength ", o.strength,
           ": expected a value >= 0 (1 = AlignedGen, 0 = no sharing)");
  DK_CHECK(std::isfinite(o.lambda) && o.lambda > 0.0, "--lambda ", o.lambda, ": expected a value > 0");
  DK_CHECK(o.reference.empty() || std::filesystem::is_regular_file(o.reference), "--reference ", o.reference,
           ": no such file");
  DK_CHECK(o.reference_prompt.empty() || !o.reference.empty(), "--reference-prompt needs --reference FILE");
  StyleRun r;
  r.prompts = o.prompts_file.empty() ? o.prompts : read_prompts(o.prompts_file);
  DK_CHECK(!r.prompts.empty(), "--prompts ", o.prompts_file, ": no prompts");
  // As StyleAligned appends the style description to every prompt.
  if (!o.style.empty())
    for (std::string& p : r.prompts) p += ", " + o.style;
  r.external = !o.reference.empty();
  r.seed = o.seed;
  if (r.seed < 0) {
    r.seed = int64_t(std::random_device{}() & 0x7fffffff);
    std::fprintf(stderr, "seed: %lld\n", static_cast<long long>(r.seed));
  }
  DK_CHECK(o.frame_stride >= 1, "--share-frame-stride ", o.frame_stride, ": must be at least 1");
  r.aligned = {o.strength, o.lambda, {}, !o.no_shift_pe, !o.no_adain, o.frame_stride};
  r.settings = {{"share-strength", std::to_string(o.strength)},
                {"lambda", std::to_string(o.lambda)},
                {"shift-pe", o.no_shift_pe ? "off" : "on"},
                {"adain", o.no_adain ? "off" : "on"}};
  if (o.frame_stride > 1) r.settings.push_back({"share-frame-stride", std::to_string(o.frame_stride)});
  if (!o.style.empty()) r.settings.push_back({"style", o.style});
  if (r.external) r.settings.push_back({"reference", o.reference + " (caption: " + o.reference_prompt + ")"});
  return r;
}

std::string join(const std::vector<int>& v) {
  std::string s;
  for (int x : v) s += (s.empty() ? "" : ",") + std::to_string(x);
  return s;
}

// The AlignedGen hooks first (the merge needs the kernel's own output), then the setup's (PAG
// replaces the shared attention's output in its perturbed pass).
attention::Hooks combined_hooks(const attention::AlignedGen& aligned, const AttentionSetup& setup) {
  attention::Hooks hooks = aligned.hooks();
  hooks.insert(hooks.end(), setup.hooks.begin(), setup.hooks.end());
  return hooks;
}

// Runs the rows in lockstep; with an external reference, row 0's latent is replaced at every
// step by (1 - sigma) x0 + sigma n.
std::vector<Tensor> denoise_style(std::vector<samplers::FlowSampler>& samplers, std::vector<Tensor> xs,
                                  const samplers::RowVelocityFn& velocity, samplers::Guidance guidance,
                                  const Tensor& ref_x0, const Tensor& ref_noise, const std::string& label, bool verbose) {
  std::vector<samplers::FlowSampler*> ptrs;
  for (auto& s : samplers) ptrs.push_back(&s);
  const std::vector<double>& sigmas = samplers[0].schedule().sigmas;
  samplers::StepFn replay;
  if (ref_x0.defined())
    replay = [&](int step, std::vector<Tensor>& x) {
      const float sigma = float(sigmas[size_t(step)]);
      x[0] = ops::add(ops::affine(ref_x0, 1.0f - sigma, 0.0f), ops::affine(ref_noise, sigma, 0.0f));
    };
  Progress progress(samplers[0].steps(), label, {stderr, verbose});
  auto out = samplers::denoise_rows(ptrs, std::move(xs), velocity, guidance, &progress, replay);
  progress.finish();
  return out;
}

// --save-latents: the written rows' final latents [count, ...] (FLUX unpacked, as t2i saves them).
void save_latents(const StyleOptions& o, const std::vector<Tensor>& written) {
  if (o.save_latents.empty()) return;
  std::vector<Tensor> batch;
  for (const Tensor& z : written) batch.push_back(z.unsqueeze(0));
  weights::save_safetensors(o.save_latents, {{"latents", ops::concat(batch, 0)}});
}

std::filesystem::path output_path(const StyleOptions& o, size_t index, const char* ext) {
  char name[32];
  std::snprintf(name, sizeof name, "%03zu%s", index, ext);
  return std::filesystem::path(o.out) / name;
}

// ---- FLUX.1 -------------------------------------------------------------------------------

void run_flux(const StyleOptions& o, StyleRun& r, Device device, const GlobalOptions& global) {
  DK_CHECK(o.shift.empty() || o.shift == "auto" || o.shift == "on" || o.shift == "off", "--shift ", o.shift,
           ": expected auto, on or off for FLUX models");
  const int64_t width = image_side(o.width > 0 ? o.width : 1024, "-W/--width");
  const int64_t height = image_side(o.height > 0 ? o.height : 1024, "-H/--height");
  const auto kind = samplers::parse_sampler(o.sampler.empty() ? "euler" : o.sampler);

  auto dit_c = std::make_optional(o.paths.load(Family::flux_dit));
  const auto cfg = dit_c->config.as<weights::FluxDitConfig>();
  const bool dev = cfg.guidance_embed;
  DK_CHECK(o.steps >= 0, "--steps ", o.steps, ": must be at least 1");
  const int steps = o.steps > 0 ? o.steps : dev ? 28 : 4;
  const bool shift = o.shift.empty() || o.shift == "auto" ? dev : o.shift == "on";
  const int64_t text_len = o.max_sequence_length > 0 ? o.max_sequence_length : flux_default_text_len(dev);
  const AttentionSetup attn = make_attention_setup(o.attention, cfg.depth + cfg.depth_single_blocks, cfg.num_heads, false);
  r.aligned.layers = o.share_layers.empty()
                         ? attention::aligned_gen_flux_layers(cfg.depth, cfg.depth_single_blocks)
                         : parse_indices(o.share_layers, "--share-layers", cfg.depth + cfg.depth_single_blocks, "layer");
  const attention::AlignedGen aligned(r.aligned);
  const attention::Hooks hooks = combined_hooks(aligned, attn);

  // Text: the prompts as t2i encodes them, the reference caption last.
  const int64_t count = int64_t(r.prompts.size());
  std::vector<std::string> texts = r.prompts;
  if (r.external) texts.push_back(o.reference_prompt);
  const PromptEmbeds embeds = flux_encode_prompts(o.paths, texts, text_len, device);
  std::vector<int64_t> text_of;  // row -> prompt index in `texts`
  if (r.external) text_of.push_back(count);
  for (int64_t i = 0; i < count; ++i) text_of.push_back(i);

  // Noise as t2i's get_noise for all images; the reference's fixed noise continues the stream.
  const Shape latent{cfg.in_channels / 4, height / 8, width / 8};
  samplers::TorchGenerator gen(uint64_t(r.seed));
  const Tensor noise = gen.randn({count, latent[0], latent[1], latent[2]});
  Tensor ref_x0, ref_noise;
  if (r.external) {
    ref_noise = dit::pack_latents(gen.randn(latent).to(device));
    const auto ae_c = o.paths.load(Family::flux_ae);
    const vae::FluxAE ae(*ae_c.weights, ae_c.config.as<weights::FluxAeConfig>(), device);
    Image image = read_image(o.reference, 3);
    if (image.width != width || image.height != height) image = resize_image(image, int(width), int(height));
    ref_x0 = dit::pack_latents(ae.encode(image_to_tensor(image).to(device)));
  }

  const samplers::FlowSchedule schedule = samplers::flux_schedule(steps, (height / 16) * (width / 16), shift);
  std::vector<samplers::FlowSampler> samplers_;
  std::vector<Tensor> xs;
  if (r.external) {
    samplers_.emplace_back(kind, schedule);
    xs.push_back(ref_noise);
  }
  for (int64_t i = 0; i < count; ++i) {
    samplers_.emplace_back(kind, schedule);
    xs.push_back(dit::pack_latents(noise.select(0, i).to(device)));
  }
  std::vector<Tensor> latents;
  {
    const dit::FluxModel model(*dit_c->weights, cfg, device);
    std::vector<FluxConditioning> conds;
    for (int64_t t : text_of)
      conds.push_back({embeds.txt.select(0, t).to(device), Tensor::zeros({embeds.txt.dim(1), 3}, DType::F32),
                       embeds.vec.select(0, t).to(device), dit::image_ids(height / 16, width / 16), o.guidance});
    const std::vector<double>& timesteps = schedule.timesteps;
    auto velocity = [&](const Tensor& x, int step, attention::Pass pass, int row) {
      const FluxConditioning& c = conds[size_t(row)];
      return model.forward(x, c.img_ids, c.txt, c.txt_ids, timesteps[size_t(step)], c.vec, c.guidance, step,
                           {&attn.plan, &hooks, row}, pass);
    };
    latents = denoise_style(samplers_, xs, velocity, {1.0, attn.pag_scale}, ref_x0, ref_noise,
                            "style " + std::to_string(xs.size()) + " rows", global.verbose);
  }
  dit_c.reset();
  std::vector<Tensor> written;
  for (int64_t i = 0; i < count; ++i)
    written.push_back(dit::unpack_latents(latents[size_t(i + (r.external ? 1 : 0))], latent[1], latent[2]));
  save_latents(o, written);

  const auto ae_c = o.paths.load(Family::flux_ae);
  const vae::FluxAE ae(*ae_c.weights, ae_c.config.as<weights::FluxAeConfig>(), device);
  char mu[32];
  std::snprintf(mu, sizeof mu, "mu %.6g", samplers::flux_mu((height / 16) * (width / 16)));
  std::filesystem::create_directories(o.out);
  for (int64_t i = 0; i < count; ++i) {
    std::vector<std::pair<std::string, std::string>> settings{
        {"model", dev ? "flux.1 (dev-like: guidance embedding)" : "flux.1 (schnell-like: no guidance embedding)"},
        {"steps", std::to_string(steps)},
        {"sampler", samplers::sampler_name(kind)},
        {"shift", shift ? mu : "off"},
        {"seed", std::to_string(r.seed)},
        {"size", std::to_string(width) + "x" + std::to_string(height)},
        {"max-sequence-length", std::to_string(embeds.txt.dim(1))}};
    if (dev) settings.push_back({"guidance", std::to_string(o.guidance)});
    settings.push_back({"image", std::to_string(i) + " of " + std::to_string(count)});
    settings.push_back({"shared-layers", join(r.aligned.layers)});
    settings.insert(settings.end(), r.settings.begin(), r.settings.end());
    settings.insert(settings.end(), attn.metadata.begin(), attn.metadata.end());
    const std::string path = output_path(o, size_t(i), ".png").string();
    write_png(path, tensor_to_image(ae.decode(written[size_t(i)])), generation_text(r.prompts[size_t(i)], "", settings));
    if (global.verbose) std::fprintf(stderr, "wrote %s\n", path.c_str());
  }
}

// ---- Wan2.1 -------------------------------------------------------------------------------

// The reference as a video [3, frames, H, W] in [-1, 1]: the first `frames` frames of a video,
// or an image held for every frame; resized to width x height.
Tensor reference_video(const std::string& path, int64_t frames, int64_t width, int64_t height) {
  const std::string ext = std::filesystem::path(path).extension().string();
  const bool still = ext == ".png" || ext == ".jpg" || ext == ".jpeg" || ext == ".webp" || ext == ".bmp";
  std::vector<Image> images = still ? std::vector<Image>{read_image(path, 3)} : read_video_frames(path);
  DK_CHECK(still || int64_t(images.size()) >= frames, "--reference ", path, ": ", images.size(),
           " frames, --frames asks for ", frames);
  std::vector<Tensor> columns;
  for (int64_t f = 0; f < frames; ++f) {
    Image image = images[still ? 0 : size_t(f)];
    if (image.width != width || image.height != height) image = resize_image(image, int(width), int(height));
    columns.push_back(image_to_tensor(image).unsqueeze(1));
  }
  return ops::concat(columns, 1);
}

void run_wan(const StyleOptions& o, StyleRun& r, Device device, const GlobalOptions& global) {
  const int64_t width = o.width > 0 ? o.width : 832, height = o.height > 0 ? o.height : 480;
  check_wan_video_size(o.frames, width, height);
  DK_CHECK(o.steps >= 0, "--steps ", o.steps, ": must be at least 1");
  const int steps = o.steps > 0 ? o.steps : 50;
  double shift = 5.0;
  if (!o.shift.empty()) {
    size_t used = 0;
    try {
      shift = std::stod(o.shift, &used);
    } catch (const std::exception&) {
    }
    DK_CHECK(used == o.shift.size() && used > 0, "--shift ", o.shift, ": expected a number for Wan models");
  }
  const auto kind = samplers::parse_sampler(o.sampler.empty() ? "unipc" : o.sampler);

  WanPaths paths{o.paths.model, o.paths.dit, o.text_encoder, o.paths.vae, o.tokenizer};
  auto [dit_c, t5_c, vae_c, tok_path] = paths.load();
  auto cfg = dit_c.config.as<weights::WanDitConfig>();
  const auto& vae_cfg = vae_c.config.as<weights::WanVaeConfig>();
  if (o.max_sequence_length > 0) cfg.text_len = o.max_sequence_length;
  const AttentionSetup attn = make_attention_setup(o.attention, cfg.num_layers, cfg.num_heads);
  DK_CHECK(!attn.dual_path, "--attention ", o.attention.kind,
           ": FreeSwim's dual path is not available with style rows; give dual_path=false");
  r.aligned.layers = o.share_layers.empty() ? attention::aligned_gen_wan_layers(cfg.num_layers)
                                            : parse_indices(o.share_layers, "--share-layers", cfg.num_layers, "layer");
  const attention::AlignedGen aligned(r.aligned);
  const attention::Hooks hooks = combined_hooks(aligned, attn);

  // Text: each row's prompt and the negative prompt, encoded together as t2v does.
  const int64_t count = int64_t(r.prompts.size());
  std::vector<std::string> row_prompts;
  if (r.external) row_prompts.push_back(o.reference_prompt);
  row_prompts.insert(row_prompts.end(), r.prompts.begin(), r.prompts.end());
  std::vector<std::vector<Tensor>> contexts;
  {
    auto tokenizer = text::load_t5_tokenizer(tok_path);
    const text::UMT5Encoder t5(*t5_c.weights, t5_c.config.as<weights::T5Config>(), device);
    for (const std::string& p : row_prompts) {
      auto batch = tokenizer->encode_batch({p, o.negative_prompt}, cfg.text_len);
      contexts.push_back(t5.encode(batch.ids.to(device), batch.mask.to(device)));
    }
  }

  // Noise: video i as t2v --seed N+i; the reference's fixed noise from N + count.
  const Shape latent{vae_cfg.z_dim, (o.frames - 1) / 4 + 1, height / 8, width / 8};
  const vae::WanVAE vae(*vae_c.weights, vae_cfg, device);
  const samplers::FlowSchedule schedule = samplers::wan_schedule(kind, steps, shift);
  std::vector<samplers::FlowSampler> samplers_;
  std::vector<Tensor> xs;
  Tensor ref_x0, ref_noise;
  if (r.external) {
    ref_noise = samplers::TorchGenerator(uint64_t(r.seed + count)).randn(latent).to(device);
    ref_x0 = vae.encode(reference_video(o.reference, o.frames, width, height).to(device));
    samplers_.emplace_back(kind, schedule);
    xs.push_back(ref_noise);
  }
  for (int64_t i = 0; i < count; ++i) {
    samplers_.emplace_back(kind, schedule);
    xs.push_back(samplers::TorchGenerator(uint64_t(r.seed + i)).randn(latent).to(device));
  }
  const dit::WanModel model(*dit_c.weights, cfg, device);
  const std::vector<double>& timesteps = schedule.timesteps;
  auto velocity = [&](const Tensor& x, int step, attention::Pass pass, int row) {
    const Tensor& context = contexts[size_t(row)][pass == attention::Pass::Uncond ? 1 : 0];
    return model.forward(x, timesteps[size_t(step)], context, step, {&attn.plan, &hooks, row}, pass);
  };
  const std::vector<Tensor> latents = denoise_style(samplers_, xs, velocity, {o.cfg, attn.pag_scale}, ref_x0,
                                                    ref_noise, "style " + std::to_string(xs.size()) + " rows",
                                                    global.verbose);
  const std::vector<Tensor> written(latents.begin() + (r.external ? 1 : 0), latents.end());
  save_latents(o, written);

  std::filesystem::create_directories(o.out);
  for (int64_t i = 0; i < count; ++i) {
    std::vector<std::pair<std::string, std::string>> settings{
        {"model", "wan2.1-t2v"},
        {"steps", std::to_string(steps)},
        {"sampler", samplers::sampler_name(kind)},
        {"cfg", std::to_string(o.cfg)},
        {"shift", std::to_string(shift)},
        {"seed", std::to_string(r.seed + i)},
        {"size", std::to_string(width) + "x" + std::to_string(height)},
        {"frames", std::to_string(o.frames)},
        {"video", std::to_string(i) + " of " + std::to_string(count)},
        {"shared-layers", join(r.aligned.layers)}};
    settings.insert(settings.end(), r.settings.begin(), r.settings.end());
    settings.insert(settings.end(), attn.metadata.begin(), attn.metadata.end());
    const std::string path = output_path(o, size_t(i), ".mp4").string();
    write_frames(vae.decode(written[size_t(i)]), {path, o.fps, o.crf},
                 generation_text(r.prompts[size_t(i)], o.negative_prompt, settings));
    if (global.verbose) std::fprintf(stderr, "wrote %s\n", path.c_str());
  }
}

void run_style(const StyleOptions& o, const GlobalOptions& global) {
  const Device device = apply_global_options(global);
  check_output_path(o.save_latents, "--save-latents");
  StyleRun r = prepare(o);
  if (is_wan(o))
    run_wan(o, r, device, global);
  else
    run_flux(o, r, device, global);
}

}  // namespace

void register_style(CLI::App& app, const GlobalOptions& global) {
  auto o = std::make_shared<StyleOptions>();
  auto* cmd = app.add_subcommand("style", "style-aligned images (FLUX.1) or videos (Wan2.1) with AlignedGen");
  cmd->add_option("-p,--prompt", o->prompts, "a prompt (repeat for each image; the first is the style reference)");
  cmd->add_option("--prompts", o->prompts_file, "a file of prompts, one per line (the first is the style reference)");
  cmd->add_option("--style", o->style, "appended to every prompt as \", STYLE\" (e.g. \"in watercolor\")");
  cmd->add_option("--reference", o->reference,
                  "reference image (FLUX) or video / still image (Wan) that every prompt shares the style of");
  cmd->add_option("--reference-prompt", o->reference_prompt, "caption of the --reference (default: empty)");
  cmd->add_option("--share-strength", o->strength,
                  "weight s of the shared reference attention (1 = AlignedGen, 0 = independent rows)")
      ->capture_default_str();
  cmd->add_option("--share-layers", o->share_layers,
                  "the shared layers, e.g. 19-56 (default: FLUX's single-stream blocks, every Wan layer; FLUX "
                  "numbers double blocks 0..18, then single blocks)");
  cmd->add_option("--lambda", o->lambda, "scale of the reference keys (AlignedGen's fixed lambda)")
      ->capture_default_str();
  cmd->add_flag("--no-shift-pe", o->no_shift_pe, "keep the reference keys at their own positions (no ShiftPE)");
  cmd->add_flag("--no-adain", o->no_adain, "no AdaIN of the targets' queries and keys");
  cmd->add_option("--share-frame-stride", o->frame_stride,
                  "Wan: share every k-th latent frame of the reference (memory and cost of the shared keys / k)")
      ->capture_default_str();
  o->paths.add_to(*cmd, true);
  cmd->add_option("--text-encoder", o->text_encoder, "Wan umT5 weights; overrides --model");
  cmd->add_option("--tokenizer", o->tokenizer, "Wan spiece.model, tokenizer.json or their folder");
  cmd->add_option("-W,--width", o->width, "width in pixels (default: 1024 FLUX, 832 Wan)");
  cmd->add_option("-H,--height", o->height, "height in pixels (default: 1024 FLUX, 480 Wan)");
  cmd->add_option("--frames", o->frames, "frames of each video (Wan; 4k+1)")->capture_default_str();
  cmd->add_option("--steps", o->steps, "sampling steps (default: FLUX 28 dev-like / 4 schnell-like, Wan 50)");
  cmd->add_option("--sampler", o->sampler, "euler, unipc or dpm++ (default: FLUX euler, Wan unipc)");
  cmd->add_option("--shift", o->shift, "FLUX: auto, on or off (default auto); Wan: the timestep shift (default 5)");
  cmd->add_option("--guidance", o->guidance, "distilled guidance (FLUX dev-like models)")->capture_default_str();
  cmd->add_option("--cfg", o->cfg, "classifier-free guidance scale (Wan)")->capture_default_str();
  cmd->add_option("-n,--negative-prompt", o->negative_prompt, "(Wan; default: the official Wan negative prompt)");
  cmd->add_option("--seed", o->seed, "noise seed (FLUX: as t2i; Wan: video i uses seed + i as t2v; default random)");
  o->attention.add_to(*cmd);
  cmd->add_option("--max-sequence-length", o->max_sequence_length, "text tokens (default: the model's)");
  cmd->add_option("-o,--out", o->out, "output folder: 000.png, 001.png ... (Wan: 000.mp4 ...)")->required();
  cmd->add_option("--save-latents", o->save_latents,
                  "also save the written rows' final latents [N, ...] (safetensors; FLUX [N, 16, H/8, W/8])");
  cmd->add_option("--fps", o->fps, "frames per second of the MP4s (Wan)")->capture_default_str();
  cmd->add_option("--crf", o->crf, "H.264 quality (Wan; 0 lossless .. 51)")->capture_default_str();
  cmd->callback([o, &global] { run_style(*o, global); });
}

}  // namespace ditkit::apps
