// ditkit edit: ConsistEdit (../shared/spec/hooks.md §2) on a real image (FLUX.1) or video
// (Wan2.1). The input is encoded and inverted with the source prompt (Uni-Inv, CFG 1,
// samplers/inversion.h); the edit runs two rows in lockstep from the inverted noise: the source
// row either replays the inverted trajectory ([ours], no memory) or denoises with the Q/K the
// inversion recorded at every step and layer (--source-features inversion, the released code's
// cache), the target row denoises with the target prompt, with ConsistEdit's fusion active (and
// the PAG / attention-kind options). The keep mask comes from --mask or from a source-only pass
// recording the attention on the edit word. Each further --target-prompt edits the previous
// round's result: its target row's trajectory (or recorded features) becomes the next source.
#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <set>

#include "apps/commands.h"
#include "apps/components.h"
#include "apps/pipelines.h"
#include "attention/consist_edit.h"
#include "core/atomic_file.h"
#include "core/ops.h"
#include "core/progress.h"
#include "dit/flux.h"
#include "dit/wan.h"
#include "io/image.h"
#include "io/metrics.h"
#include "io/video.h"
#include "samplers/inversion.h"
#include "text/tokenizer.h"
#include "text/umt5.h"
#include "vae/flux_ae.h"
#include "vae/wan_vae.h"

namespace ditkit::apps {
namespace {

using attention::Pass;
using weights::Family;

struct EditOptions {
  WanPaths paths;  // --model, --dit, --vae serve FLUX too
  FluxPaths flux;  // FLUX's text encoders and tokenizers
  std::string input, source_prompt, negative_prompt = kWanNegativePrompt, mask, edit_word, out, save_reconstruction;
  std::string flux_layers = "all", source_features = "replay";
  bool no_mask = false;
  std::vector<std::string> target_prompts;
  double consistency = 0.1, guidance = 3.5, cfg = 5.0, shift = 5.0;
  int steps = 0;
  int64_t max_sequence_length = 0;
  AttentionOptions attention;
  double fps = 16;
  int crf = 18;
};

// The image or video frames [3, T, H, W] in [-1, 1] as 8-bit frames.
std::vector<Image> frames_of(const Tensor& pixels) {
  std::vector<Image> frames;
  for (int64_t t = 0; t < pixels.dim(1); ++t) frames.push_back(tensor_to_image(pixels.select(1, t)));
  return frames;
}

// The T5 positions of `word` (a whole word of `prompt` as the tokenizer cleans it): the pieces
// covering its characters, as the released code's offset-mapping search.
std::vector<int64_t> word_tokens(const text::Tokenizer& tok, const std::string& prompt, const std::string& word,
                                 int64_t text_len) {
  const std::string text = tok.cleaned(prompt);
  auto is_word = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || (c & 0x80); };
  size_t at = 0;
  for (at = text.find(word); at != std::string::npos; at = text.find(word, at + 1))
    if ((at == 0 || !is_word(text[at - 1])) && (at + word.size() == text.size() || !is_word(text[at + word.size()])))
      break;
  DK_CHECK(!word.empty() && at != std::string::npos, "--edit-word '", word, "': not a word of the source prompt '",
           prompt, "'");
  std::string before = text.substr(0, at);
  while (!before.empty() && before.back() == ' ') before.pop_back();
  const int64_t first = before.empty() ? 0 : int64_t(tok.encode_pieces(before).size());
  const int64_t end = int64_t(tok.encode_pieces(text.substr(0, at + word.size())).size());
  DK_CHECK(end > first && end < text_len, "--edit-word '", word, "': its tokens ", first, "..", end - 1,
           " are not among the ", text_len - 1, " text tokens of '", prompt, "'");
  std::vector<int64_t> ids;
  for (int64_t i = first; i < end; ++i) ids.push_back(i);
  return ids;
}

// The words of `source` that `target` lacks (ASCII letters and digits, UTF-8 bytes kept in words).
std::vector<std::string> removed_words(const std::string& source, const std::string& target) {
  auto words = [](const std::string& s) {
    std::vector<std::string> out(1);
    for (char c : s) {
      if (std::isalnum(static_cast<unsigned char>(c)) || (c & 0x80))
        out.back() += c;
      else if (!out.back().empty())
        out.emplace_back();
    }
    if (out.back().empty()) out.pop_back();
    return out;
  };
  const std::vector<std::string> in_target = words(target);
  const std::set<std::string> kept(in_target.begin(), in_target.end());
  std::vector<std::string> removed;
  for (const std::string& w : words(source))
    if (!kept.count(w)) removed.push_back(w);
  return removed;
}

// What the edit needs from a model family; the edit itself is shared.
class Editor {
 public:
  virtual ~Editor() = default;
  // The input as the DiT's latent (FLUX: packed tokens; Wan: [z, T', h, w]) and back to pixels [3, T, H, W].
  virtual Tensor encode(const std::vector<Image>& frames) const = 0;
  virtual Tensor decode(const Tensor& latent) const = 0;
  // The velocity for prompt `prompt` (0 = source, i = target prompt i) at inversion_timesteps()[step].
  virtual Tensor velocity(const Tensor& x, int step, Pass pass, size_t prompt, const attention::Control& c) const = 0;
  virtual std::vector<int64_t> word_tokens(const std::string& prompt, const std::string& word) const = 0;
  virtual void write(const std::string& path, const Tensor& pixels, const PngText& text) const = 0;

  samplers::FlowSchedule schedule;
  std::vector<double> timesteps;              // inversion_timesteps(schedule)
  int64_t frames = 1, height = 0, width = 0;  // the token grid
  int from_layer = 0;                         // ConsistEdit's controlled layers: from_layer and up
  double cfg = 1.0;                           // Wan's CFG with the negative prompt
  AttentionSetup attention;
  std::vector<std::pair<std::string, std::string>> settings;
};

// FLUX.1: the input PNG cropped to multiples of 16, the AE, distilled guidance, no CFG.
class FluxEditor final : public Editor {
 public:
  FluxEditor(const EditOptions& o, const FluxPaths& paths, weights::LoadedComponent dit_c,
             const std::vector<std::string>& prompts, const std::vector<Image>& input, Device device)
      : config_(dit_c.config.as<weights::FluxDitConfig>()), dit_c_(std::move(dit_c)), guidance_(o.guidance) {
    const bool dev = config_.guidance_embed;
    const int64_t text_len = o.max_sequence_length > 0 ? o.max_sequence_length : flux_default_text_len(dev);
    const PromptEmbeds embeds = flux_encode_prompts(paths, prompts, text_len, device);
    for (int64_t i = 0; i < embeds.txt.dim(0); ++i)
      conds_.push_back({embeds.txt.select(0, i).to(device), Tensor::zeros({text_len, 3}, DType::F32).to(device),
                        embeds.vec.select(0, i).to(device), Tensor(), o.guidance});
    tokenizer_ = text::load_t5_tokenizer(paths.t5_tokenizer_path(), text::Clean::none);
    text_len_ = text_len;
    height = input[0].height / 16, width = input[0].width / 16;
    img_ids_ = dit::image_ids(height, width).to(device);
    model_ = std::make_unique<dit::FluxModel>(*dit_c_.weights, config_, device);
    const auto ae_c = paths.load(Family::flux_ae);
    ae_ = std::make_unique<vae::FluxAE>(*ae_c.weights, ae_c.config.as<weights::FluxAeConfig>(), device);
    device_ = device;
    const int steps = o.steps > 0 ? o.steps : dev ? 28 : 4;
    schedule = samplers::flux_schedule(steps, height * width, dev);
    // The paper controls every layer; the released FLUX code only the single-stream blocks.
    from_layer = o.flux_layers == "single" ? int(config_.depth) : 0;
    attention =
        make_attention_setup(o.attention, config_.depth + config_.depth_single_blocks, config_.num_heads, false);
    settings = {{"model", "flux.1"}, {"steps", std::to_string(steps)}, {"shift", dev ? "on" : "off"}};
    if (dev) settings.push_back({"guidance", std::to_string(o.guidance)});
  }
  Tensor encode(const std::vector<Image>& frames) const override {
    return dit::pack_latents(ae_->encode(image_to_tensor(frames[0]).to(device_)));
  }
  Tensor decode(const Tensor& latent) const override {
    return ae_->decode(dit::unpack_latents(latent, height * 2, width * 2)).to(Device::cpu()).unsqueeze(1);
  }
  Tensor velocity(const Tensor& x, int step, Pass pass, size_t prompt, const attention::Control& c) const override {
    const FluxConditioning& cond = conds_[prompt];
    return model_->forward(x, img_ids_, cond.txt, cond.txt_ids, timesteps[size_t(step)], cond.vec, guidance_, step, c,
                           pass);
  }
  std::vector<int64_t> word_tokens(const std::string& prompt, const std::string& word) const override {
    return apps::word_tokens(*tokenizer_, prompt, word, text_len_);
  }
  void write(const std::string& path, const Tensor& pixels, const PngText& text) const override {
    write_png(path, tensor_to_image(pixels.select(1, 0)), text);
  }

 private:
  weights::FluxDitConfig config_;
  weights::LoadedComponent dit_c_;
  double guidance_;
  std::vector<FluxConditioning> conds_;
  std::unique_ptr<text::Tokenizer> tokenizer_;
  int64_t text_len_ = 0;
  Tensor img_ids_;
  std::unique_ptr<dit::FluxModel> model_;
  std::unique_ptr<vae::FluxAE> ae_;
  Device device_ = Device::cpu();
};

// Wan2.1: the input video (4k+1 frames, sides multiples of 16), the Wan VAE, CFG with the
// negative prompt for both rows, Euler steps on the shifted schedule.
class WanEditor final : public Editor {
 public:
  WanEditor(const EditOptions& o, const std::vector<std::string>& prompts, const std::vector<Image>& input,
            Device device)
      : fps_(o.fps), crf_(o.crf) {
    auto [dit_c, t5_c, vae_c, tok_path] = o.paths.load();
    auto dit_cfg = dit_c.config.as<weights::WanDitConfig>();
    if (o.max_sequence_length > 0) dit_cfg.text_len = o.max_sequence_length;
    text_len_ = dit_cfg.text_len;
    tokenizer_ = text::load_t5_tokenizer(tok_path);
    {
      const text::UMT5Encoder t5(*t5_c.weights, t5_c.config.as<weights::T5Config>(), device);
      std::vector<std::string> all = prompts;
      all.push_back(o.negative_prompt);
      const auto batch = tokenizer_->encode_batch(all, text_len_);
      for (const Tensor& c : t5.encode(batch.ids.to(device), batch.mask.to(device)))
        contexts_.push_back(c.contiguous());
    }
    model_ = std::make_unique<dit::WanModel>(*dit_c.weights, dit_cfg, device);
    vae_ = std::make_unique<vae::WanVAE>(*vae_c.weights, vae_c.config.as<weights::WanVaeConfig>(), device);
    dit_c_ = std::move(dit_c);
    vae_c_ = std::move(vae_c);
    device_ = device;
    frames = (int64_t(input.size()) - 1) / 4 + 1, height = input[0].height / 16, width = input[0].width / 16;
    const int steps = o.steps > 0 ? o.steps : 50;
    schedule = samplers::wan_schedule(samplers::SamplerKind::Euler, steps, o.shift);
    cfg = o.cfg;
    attention = make_attention_setup(o.attention, dit_cfg.num_layers, dit_cfg.num_heads);
    settings = {{"model", "wan2.1-t2v"},
                {"steps", std::to_string(steps)},
                {"shift", std::to_string(o.shift)},
                {"cfg", std::to_string(o.cfg)}};
  }
  Tensor encode(const std::vector<Image>& frames_in) const override {
    std::vector<Tensor> frames_t;
    for (const Image& im : frames_in) frames_t.push_back(image_to_tensor(im).unsqueeze(1));
    return vae_->encode(ops::concat(frames_t, 1).to(device_));
  }
  Tensor decode(const Tensor& latent) const override { return vae_->decode(latent).to(Device::cpu()); }
  Tensor velocity(const Tensor& x, int step, Pass pass, size_t prompt, const attention::Control& c) const override {
    const Tensor& context = contexts_[pass == Pass::Uncond ? contexts_.size() - 1 : prompt];
    const double t = timesteps[size_t(step)];
    // FreeSwim's full branch only fills the cross-attention store (as wan_velocity).
    if (attention.dual_path && attention.dual_path->full_branch_before(step, pass))
      model_->forward(x, t, context, step, c, Pass::FullBranch);
    return model_->forward(x, t, context, step, c, pass);
  }
  std::vector<int64_t> word_tokens(const std::string& prompt, const std::string& word) const override {
    return apps::word_tokens(*tokenizer_, prompt, word, text_len_);
  }
  void write(const std::string& path, const Tensor& pixels, const PngText& text) const override {
    write_frames(pixels, {path, fps_, crf_}, text);
  }

 private:
  double fps_;
  int crf_;
  int64_t text_len_ = 0;
  std::unique_ptr<text::Tokenizer> tokenizer_;
  std::vector<Tensor> contexts_;  // one per prompt, then the negative prompt
  weights::LoadedComponent dit_c_, vae_c_;
  std::unique_ptr<dit::WanModel> model_;
  std::unique_ptr<vae::WanVAE> vae_;
  Device device_ = Device::cpu();
};

// The DiT under --dit (else --model) and whether it is FLUX or Wan.
weights::LoadedComponent find_dit(const EditOptions& o) {
  const std::string& path = o.paths.dit.empty() ? o.paths.model : o.paths.dit;
  const char* flag = o.paths.dit.empty() ? "--model" : "--dit";
  DK_CHECK(!path.empty(), "give --model DIR or --dit FILE (a FLUX.1 or Wan2.1 DiT)");
  std::string seen;
  for (const weights::Component& c : weights::find_components(path).components) {
    weights::LoadedComponent lc = weights::load_component(c);
    const Family f = lc.detected.family;
    if (f == Family::flux_dit || f == Family::wan_dit) {
      DK_CHECK(lc.weights && lc.config.family == f, flag, " ", path, ": cannot determine the ", weights::family_name(f),
               " config (", lc.config_error, ")");
      return lc;
    }
    seen += (seen.empty() ? "" : ", ") + c.name + " (" + weights::family_name(f) + ")";
  }
  fail(flag, " ", path, ": no FLUX.1 or Wan2.1 DiT found", seen.empty() ? std::string() : " (found " + seen + ")");
}

// The input PNG (FLUX) cropped to multiples of 16 about its centre, or the video (Wan) as it is.
std::vector<Image> read_input(const std::string& path, bool video) {
  DK_CHECK(std::filesystem::is_regular_file(path), "--input ", path, ": no such file");
  if (video) {
    std::vector<Image> frames = read_video_frames(path);
    const int64_t n = int64_t(frames.size());
    DK_CHECK(n >= 1 && (n - 1) % 4 == 0, "--input ", path, ": ", n, " frames, Wan needs 4k+1 (1, 5, ..., 81)");
    DK_CHECK(frames[0].width % 16 == 0 && frames[0].height % 16 == 0, "--input ", path, ": frames of ", frames[0].width,
             "x", frames[0].height, ", Wan needs width and height multiples of 16");
    return frames;
  }
  const Image image = read_image(path, 3);
  const int w = image.width / 16 * 16, h = image.height / 16 * 16;
  DK_CHECK(w > 0 && h > 0, "--input ", path, ": ", image.width, "x", image.height, " is smaller than 16x16");
  if (w == image.width && h == image.height) return {image};
  std::fprintf(stderr, "--input %s: %dx%d cropped to %dx%d about the centre (FLUX needs multiples of 16)\n",
               path.c_str(), image.width, image.height, w, h);
  Image cropped(w, h, 3);
  const int x0 = (image.width - w) / 2, y0 = (image.height - h) / 2;
  for (int y = 0; y < h; ++y) std::copy_n(image.at(x0, y0 + y), size_t(w) * 3, cropped.at(0, y));
  return {cropped};
}

// --mask: white = edit. Any size of the input's aspect ratio; resampled nearest to the token grid
// (one mask for every frame of a video).
attention::EditMask read_user_mask(const std::string& path, const Image& input, const Editor& e) {
  DK_CHECK(std::filesystem::is_regular_file(path), "--mask ", path, ": no such file");
  const Tensor m = read_mask(path);
  const int64_t mh = m.dim(0), mw = m.dim(1);
  const double ratio = double(mw) / double(mh), want = double(input.width) / double(input.height);
  DK_CHECK(std::abs(ratio / want - 1.0) < 0.02, "--mask ", path, ": ", mw, "x", mh, " does not have the input's ",
           "aspect ratio (", input.width, "x", input.height, ")");
  attention::EditMask full{1, mh, mw, {}};
  for (float v : m.to_vector()) full.keep.push_back(v < 0.5f);
  return attention::resize_mask(full, e.frames, e.height, e.width);
}

// The keep mask on the pixels of `count` frames (video frame f lies in latent frame ceil(f / 4)).
PixelMask keep_pixels(const attention::EditMask& keep, int64_t count, int width, int height) {
  if (keep.empty()) return {};
  PixelMask m{width, height, {}};
  for (int64_t f = 0; f < count; ++f) {
    const int64_t lf = std::min(keep.frames - 1, f == 0 ? 0 : (f - 1) / 4 + 1);
    for (int y = 0; y < height; ++y)
      for (int x = 0; x < width; ++x)
        m.values.push_back(
            keep.keep[size_t((lf * keep.height + y * keep.height / height) * keep.width + x * keep.width / width)]);
  }
  return m;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

void run_edit(const EditOptions& o, const GlobalOptions& global) {
  const Device device = apply_global_options(global);
  check_output_path(o.out, "-o/--out");
  check_output_path(o.save_reconstruction, "--save-reconstruction");
  DK_CHECK(!o.target_prompts.empty(), "give --target-prompt (once per round)");
  DK_CHECK(o.consistency >= 0.0 && o.consistency <= 1.0, "--consistency ", o.consistency, ": expected [0, 1]");
  DK_CHECK(o.steps >= 0, "--steps ", o.steps, ": must be at least 1");
  DK_CHECK(o.flux_layers == "all" || o.flux_layers == "single", "--flux-layers ", o.flux_layers,
           ": expected all or single");
  DK_CHECK(!o.no_mask || (o.mask.empty() && o.edit_word.empty()), "--no-mask: give neither --mask nor --edit-word");
  DK_CHECK(o.source_features == "replay" || o.source_features == "inversion", "--source-features ",
           o.source_features, ": expected replay or inversion");
  const bool cached = o.source_features == "inversion";
  weights::LoadedComponent dit_c = find_dit(o);
  const bool video = dit_c.detected.family == Family::wan_dit;
  const std::vector<Image> input = read_input(o.input, video);

  std::vector<std::string> prompts{o.source_prompt};
  prompts.insert(prompts.end(), o.target_prompts.begin(), o.target_prompts.end());
  std::unique_ptr<Editor> editor;
  if (video) {
    editor = std::make_unique<WanEditor>(o, prompts, input, device);
  } else {
    FluxPaths flux = o.flux;
    flux.model = o.paths.model, flux.dit = o.paths.dit, flux.vae = o.paths.vae;
    editor = std::make_unique<FluxEditor>(o, flux, std::move(dit_c), prompts, input, device);
  }
  Editor& e = *editor;
  e.timesteps = samplers::inversion_timesteps(e.schedule);
  const int steps = int(e.schedule.timesteps.size());
  const std::optional<attention::EditMask> user_mask =
      o.mask.empty() ? std::nullopt : std::make_optional(read_user_mask(o.mask, input[0], e));
  auto control = [&](const attention::Hooks& hooks, int row) {
    return attention::Control{&e.attention.plan, &hooks, row};
  };

  // Inversion of the input with the source prompt (recording the source's features when cached).
  const Tensor clean = e.encode(input);
  auto t0 = std::chrono::steady_clock::now();
  std::vector<Tensor> trajectory;
  auto features = std::make_unique<attention::FeatureCache>(e.from_layer);
  {
    Progress progress(steps + 1, "invert", {stderr, global.verbose});
    attention::Hooks hooks = e.attention.hooks;
    if (cached) {
      const attention::Hooks record = features->record(0);
      hooks.insert(hooks.end(), record.begin(), record.end());
    }
    const attention::Control c = control(hooks, 0);
    trajectory = samplers::invert(
                     e.schedule, clean,
                     [&](const Tensor& x, int step, Pass pass) { return e.velocity(x, step, pass, 0, c); }, &progress)
                     .trajectory;
  }
  const double invert_seconds = seconds_since(t0) / (steps + 1);
  // What the VAE alone keeps of the input: the ceiling of the reconstruction's PSNR.
  std::printf("vae round trip psnr vs input %.2f dB\n", psnr(frames_of(e.decode(trajectory.back())), input));

  std::vector<Image> source = input;
  const size_t rounds = o.target_prompts.size();
  for (size_t r = 0; r < rounds; ++r) {
    const std::string& source_prompt = prompts[r];
    const std::string& target_prompt = prompts[r + 1];
    // The keep mask: --mask, else the source row's attention on the edit word.
    attention::EditMask keep;
    std::string mask_from = "--mask " + o.mask;
    if (user_mask) {
      keep = *user_mask;
    } else if (!o.no_mask) {
      std::vector<std::string> words =
          o.edit_word.empty() ? removed_words(source_prompt, target_prompt) : std::vector<std::string>{o.edit_word};
      DK_CHECK(!words.empty(), "the source prompt '", source_prompt, "' and the target prompt '", target_prompt,
               "' differ in no word of the source: give --edit-word WORD or --mask");
      std::vector<int64_t> tokens;
      mask_from = "attention on";
      for (const std::string& w : words) {
        const std::vector<int64_t> t = e.word_tokens(source_prompt, w);
        tokens.insert(tokens.end(), t.begin(), t.end());
        mask_from += " '" + w + "'";
      }
      attention::AttentionMaskRecorder recorder(tokens, 0, e.from_layer);
      attention::Hooks hooks = e.attention.hooks;
      hooks.insert(hooks.end(), recorder.hooks().begin(), recorder.hooks().end());
      const attention::Control c = control(hooks, 0);
      samplers::FlowSampler sampler(samplers::SamplerKind::Euler, e.schedule);
      Progress progress(steps, "mask", {stderr, global.verbose});
      samplers::denoise_rows(
          {&sampler}, {trajectory[0]},
          [&](const Tensor& x, int step, Pass pass, int) { return e.velocity(x, step, pass, r, c); }, {}, &progress,
          samplers::replay(trajectory, 0));
      keep = recorder.keep_mask(0.1);
    }

    // The edit: the source row replayed (or, with cached features, denoised with the recorded Q/K),
    // the target row from the inverted noise, ConsistEdit between them.
    const attention::ConsistEdit edit({o.consistency, steps, {}, 0, 1, e.from_layer}, keep);
    auto next_features = std::make_unique<attention::FeatureCache>(e.from_layer);
    attention::Hooks hooks = e.attention.hooks;
    auto add = [&](const attention::Hooks& more) { hooks.insert(hooks.end(), more.begin(), more.end()); };
    if (cached) add(features->overwrite(0));
    add(edit.hooks());
    if (cached) add(next_features->record(1));
    const attention::Control controls[2] = {control(hooks, 0), control(hooks, 1)};
    samplers::FlowSampler s0(samplers::SamplerKind::Euler, e.schedule), s1(samplers::SamplerKind::Euler, e.schedule);
    std::vector<Tensor> target_trajectory;
    const samplers::StepFn replay = cached ? samplers::StepFn() : samplers::replay(trajectory, 0);
    t0 = std::chrono::steady_clock::now();
    Progress progress(steps, "edit " + std::to_string(r + 1) + "/" + std::to_string(rounds), {stderr, global.verbose});
    std::vector<Tensor> rows = samplers::denoise_rows(
        {&s0, &s1}, {trajectory[0], trajectory[0]},
        [&](const Tensor& x, int step, Pass pass, int row) {
          return e.velocity(x, step, pass, r + size_t(row), controls[row]);
        },
        {e.cfg, e.attention.pag_scale}, &progress,
        [&](int step, std::vector<Tensor>& xs) {
          if (replay) replay(step, xs);
          target_trajectory.push_back(xs[1]);
        });
    progress.finish();
    const double edit_seconds = seconds_since(t0) / steps;
    target_trajectory.push_back(rows[1]);

    // Outputs and how well the background and the source were kept.
    const Tensor reconstruction = e.decode(rows[0]), edited = e.decode(rows[1]);
    const std::vector<Image> recon_frames = frames_of(reconstruction), edited_frames = frames_of(edited);
    const PixelMask outside =
        keep_pixels(keep, int64_t(edited_frames.size()), edited_frames[0].width, edited_frames[0].height);
    // NaN when the mask leaves no pixel outside.
    const bool any_kept = outside.empty() || std::count(outside.values.begin(), outside.values.end(), 1) > 0;
    const double psnr_bg = any_kept ? psnr(edited_frames, recon_frames, outside, "the edit") : NAN;
    const double ssim_bg = any_kept ? ssim(edited_frames, recon_frames, outside, "the edit") : NAN;
    const double psnr_recon = psnr(recon_frames, source, {}, "the reconstruction");
    std::printf(
        "round %zu: psnr outside the edit mask %.2f dB, ssim %.4f; reconstruction psnr vs input %.2f dB; "
        "%.3f s per edit step (2 rows), %.3f s per inversion step\n",
        r + 1, psnr_bg, ssim_bg, psnr_recon, edit_seconds, invert_seconds);
    char metrics[160];
    std::snprintf(metrics, sizeof metrics,
                  "psnr outside mask %.2f dB, ssim outside mask %.4f, reconstruction psnr %.2f dB", psnr_bg, ssim_bg,
                  psnr_recon);
    std::vector<std::pair<std::string, std::string>> settings = e.settings;
    settings.insert(settings.end(), {{"source-prompt", source_prompt},
                                     {"consistency", std::to_string(o.consistency)},
                                     {"mask", keep.empty() ? "none" : mask_from},
                                     {"round", std::to_string(r + 1) + " of " + std::to_string(rounds)},
                                     {"metrics", metrics}});
    settings.insert(settings.end(), e.attention.metadata.begin(), e.attention.metadata.end());
    e.write(numbered_path(o.out, int64_t(r), int64_t(rounds)), edited, generation_text(target_prompt, "", settings));
    if (!o.save_reconstruction.empty())
      e.write(numbered_path(o.save_reconstruction, int64_t(r), int64_t(rounds)), reconstruction,
              generation_text(source_prompt, "", settings));
    if (cached && global.verbose)
      std::fprintf(stderr, "feature cache: %.1f MB\n", double(features->bytes()) / (1 << 20));
    trajectory = std::move(target_trajectory);
    features = std::move(next_features);
    source = edited_frames;
  }
}

}  // namespace

void register_edit(CLI::App& app, const GlobalOptions& global) {
  auto o = std::make_shared<EditOptions>();
  auto* cmd = app.add_subcommand("edit", "ConsistEdit: edit a real image (FLUX.1) or video (Wan2.1) by prompt");
  o->paths.add_to(*cmd);
  cmd->add_option("--clip-l", o->flux.clip_l, "FLUX: CLIP-L text encoder weights; overrides --model");
  cmd->add_option("--t5", o->flux.t5, "FLUX: T5-XXL encoder weights; overrides --model");
  cmd->add_option("--t5-tokenizer", o->flux.t5_tokenizer, "FLUX: T5 spiece.model, tokenizer.json or their folder");
  cmd->add_option("--clip-tokenizer", o->flux.clip_tokenizer,
                  "FLUX: CLIP tokenizer (default: the standard vocabulary)");
  cmd->add_option("-i,--input", o->input,
                  "image (FLUX; cropped to multiples of 16) or video (Wan; 4k+1 frames, sides multiples of 16)")
      ->required();
  cmd->add_option("-s,--source-prompt", o->source_prompt, "what the input shows")->required();
  cmd->add_option("-t,--target-prompt", o->target_prompts,
                  "what it should show; repeat for further rounds, each editing the previous result")
      ->required();
  cmd->add_option("-n,--negative-prompt", o->negative_prompt, "Wan: (default: the official Wan negative prompt)");
  cmd->add_option("--mask", o->mask,
                  "edit region, white = edit (image of the input's aspect ratio; one for all frames)");
  cmd->add_flag("--no-mask", o->no_mask,
                "no mask: a global edit (style): Q and K of the whole image follow the source while "
                "step < consistency x steps, V never");
  cmd->add_option("--source-features", o->source_features,
                  "where the source row's features come from: replay (its inverted latents, replayed each step; "
                  "no memory) or inversion (Q/K recorded at every step and layer of the inversion, as the "
                  "released code; memory grows with steps x layers x tokens)")
      ->capture_default_str();
  cmd->add_option("--flux-layers", o->flux_layers,
                  "FLUX: the controlled layers: all (the paper) or single (the single-stream blocks, as the released code)")
      ->capture_default_str();
  cmd->add_option(
      "--edit-word", o->edit_word,
      "word of the source prompt whose attention gives the mask (default: the source words the target lacks)");
  cmd->add_option("--consistency", o->consistency,
                  "alpha in [0, 1]: steps in which the edit region keeps the source's structure (0.1: the released "
                  "real-image default; 1 for colour/material edits)")
      ->capture_default_str();
  cmd->add_option("--steps", o->steps, "inversion and edit steps (default: FLUX 28 dev-like / 4 schnell-like, Wan 50)");
  cmd->add_option("--guidance", o->guidance, "FLUX: distilled guidance")->capture_default_str();
  cmd->add_option("--cfg", o->cfg, "Wan: classifier-free guidance of the edit (inversion runs CFG 1)")
      ->capture_default_str();
  cmd->add_option("--shift", o->shift, "Wan: timestep shift")->capture_default_str();
  cmd->add_option("--max-sequence-length", o->max_sequence_length, "T5 tokens (default: the model's)");
  o->attention.add_to(*cmd);
  cmd->add_option("-o,--out", o->out,
                  "edited image (.png) or video (.mp4 or frame_%04d.png); numbered for several rounds")
      ->required();
  cmd->add_option("--save-reconstruction", o->save_reconstruction, "also write the source row's result");
  cmd->add_option("--fps", o->fps, "Wan: frames per second of the MP4")->capture_default_str();
  cmd->add_option("--crf", o->crf, "Wan: H.264 quality (0 lossless .. 51)")->capture_default_str();
  cmd->callback([o, &global] { run_edit(*o, global); });
}

}  // namespace ditkit::apps
