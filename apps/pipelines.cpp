// Pipeline pieces shared by the generating commands (see pipelines.h).
#include "apps/pipelines.h"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <optional>

#include "io/video.h"
#include "text/clip.h"
#include "text/tokenizer.h"
#include "text/umt5.h"

namespace ditkit::apps {

using weights::Family;

PromptEmbeds flux_encode_prompts(const FluxPaths& paths, const std::vector<std::string>& prompts, int64_t text_len,
                                 Device device) {
  PromptEmbeds e;
  {
    const auto clip_c = paths.load(Family::clip_l);
    const std::string tok_path = paths.clip_tokenizer_path();
    std::optional<text::ClipTokenizer> loaded;
    const text::ClipTokenizer& tok =
        tok_path.empty() ? text::ClipTokenizer::builtin() : loaded.emplace(text::ClipTokenizer::load(tok_path));
    const text::ClipTextEncoder clip(*clip_c.weights, clip_c.config.as<weights::ClipTextConfig>(), device);
    e.vec = clip.forward(tok.encode_batch(prompts, text::ClipTokenizer::kContextLength).to(device))
                .pooled.to(Device::cpu());
  }
  {
    const auto t5_c = paths.load(Family::t5_xxl);
    const auto tok = text::load_t5_tokenizer(paths.t5_tokenizer_path(), text::Clean::none);
    const text::UMT5Encoder t5(*t5_c.weights, t5_c.config.as<weights::T5Config>(), device);
    const Tensor ids = tok->encode_batch(prompts, text_len).ids;
    e.txt = t5.forward(ids.to(device), Tensor::full(ids.shape(), 1.0f, DType::I64).to(device)).to(Device::cpu());
  }
  return e;
}

std::vector<std::string> read_prompts(const std::string& path) {
  std::ifstream in(path);
  DK_CHECK(in.good(), "--prompts ", path, ": cannot read the file");
  std::vector<std::string> prompts;
  for (std::string line; std::getline(in, line);) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (!line.empty()) prompts.push_back(line);
  }
  DK_CHECK(!prompts.empty(), "--prompts ", path, ": no prompts (one per line)");
  return prompts;
}

std::string numbered_path(const std::string& out, int64_t index, int64_t count) {
  if (count == 1) return out;
  if (out.find('%') != std::string::npos) return format_frame_path(out, index);
  const std::filesystem::path p(out);
  return (p.parent_path() / (p.stem().string() + "_" + std::to_string(index) + p.extension().string())).string();
}

int64_t image_side(int64_t value, const char* flag) {
  DK_CHECK(value >= 16, flag, " ", value, ": must be at least 16 pixels");
  if (value % 16 != 0) std::fprintf(stderr, "%s %lld rounded down to %lld (a multiple of 16)\n", flag,
                                    static_cast<long long>(value), static_cast<long long>(value / 16 * 16));
  return value / 16 * 16;
}

const char* const kWanNegativePrompt =
    "色调艳丽，过曝，静态，细节模糊不清，字幕，风格，作品，画作，画面，静止，整体发灰，最差质量，低质量，JPEG压缩残留，丑陋的，"
    "残缺的，多余的手指，画得不好的手部，画得不好的脸部，畸形的，毁容的，形态畸形的肢体，手指融合，静止不动的画面，杂乱的背景，"
    "三条腿，背景人很多，倒着走";

void WanPaths::add_to(CLI::App& cmd) {
  cmd.add_option("--model", model, "model folder (official, diffusers or ComfyUI files)");
  cmd.add_option("--dit", dit, "DiT weights (file or folder); overrides --model");
  cmd.add_option("--text-encoder", text_encoder, "umT5 weights; overrides --model");
  cmd.add_option("--vae", vae, "Wan VAE weights; overrides --model");
  cmd.add_option("--tokenizer", tokenizer, "spiece.model, tokenizer.json or their folder");
}

WanPaths::Loaded WanPaths::load() const {
  auto from = [&](const std::string& value, const char* flag) {
    DK_CHECK(!value.empty() || !model.empty(), "give --model DIR or ", flag);
    return std::make_pair(value.empty() ? model : value, std::string(value.empty() ? "--model" : flag));
  };
  Loaded l;
  const auto [dit_path, dit_flag] = from(dit, "--dit");
  l.dit = load_family(dit_path, Family::wan_dit, dit_flag);
  const auto [t5_path, t5_flag] = from(text_encoder, "--text-encoder");
  l.t5 = load_family(t5_path, Family::umt5, t5_flag);
  const auto [vae_path, vae_flag] = from(vae, "--vae");
  l.vae = load_family(vae_path, Family::wan_vae, vae_flag);
  const auto [tok_path, tok_flag] = from(tokenizer, "--tokenizer");
  l.tokenizer = find_tokenizer(tok_path, tok_flag);
  return l;
}

void write_frames(const Tensor& video, const VideoOutput& out, const PngText& text) {
  auto frames = video_tensor_frames(video);
  if (out.path.find('%') != std::string::npos) {
    Image frame;
    int64_t index = 0;
    while (frames(frame)) write_png(format_frame_path(out.path, index++), frame, text);
    return;
  }
  VideoOptions options;
  options.fps = out.fps;
  options.crf = out.crf;
  write_video(out.path, frames, options);
}

}  // namespace ditkit::apps
