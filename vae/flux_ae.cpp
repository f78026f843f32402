// FLUX.1 autoencoder forward passes; module and parameter names follow
// black-forest-labs/flux src/flux/modules/autoencoder.py.
#include "vae/flux_ae.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "attention/attention.h"
#include "core/allocator.h"
#include "core/ops.h"

namespace ditkit::vae {
namespace {

constexpr int64_t kGroups = 32;  // Normalize(): GroupNorm(32, C, eps=1e-6, affine=True)
constexpr float kNormEps = 1e-6f;

// softmax(q kᵀ / √C) v for one head, q, k, v [L, C]. On the CPU the flash-style kernel streams
// the keys (no L x L scores). CUDA's kernel takes head dims up to 256 and the real AE's mid width
// is 512, so other devices take query blocks of bounded score size through GEMMs.
Tensor single_head_attention(const Tensor& q, const Tensor& k, const Tensor& v, int64_t work_floats) {
  const int64_t L = q.dim(0), C = q.dim(1);
  const float scale = float(1.0 / std::sqrt(double(C)));
  if (q.device().is_cpu())
    return attention::dense_attention(q.reshape({1, L, 1, C}), k.reshape({1, L, 1, C}), v.reshape({1, L, 1, C}), scale)
        .reshape({L, C});
  const int64_t block = std::clamp<int64_t>(work_floats / std::max<int64_t>(L, 1), 1, L);
  std::vector<Tensor> parts;
  for (int64_t i = 0; i < L; i += block) {
    const Tensor scores = ops::affine(ops::matmul(q.narrow(0, i, std::min(block, L - i)), k, false, true), scale, 0.0f);
    parts.push_back(ops::matmul(ops::softmax(scores, -1), v));
  }
  return parts.size() == 1 ? parts[0] : ops::concat(parts, 0);
}

Tensor scalar(float value, Device device) { return Tensor::full({1}, value, DType::F32, device); }

}  // namespace

FluxAE::FluxAE(const weights::ModelWeights& weights, const weights::FluxAeConfig& config, Device device)
    : config_(config), device_(device) {
  for (int64_t m : config.ch_mult)
    DK_CHECK(config.ch * m % kGroups == 0, "FLUX autoencoder config: every width ch * ch_mult must be a multiple of ",
             kGroups, " (GroupNorm groups), got ch ", config.ch, " with ch_mult ", m);
  weights::ModelConfig mc{weights::Family::flux_ae, config};
  weights::validate(mc, weights.shapes(), "FLUX autoencoder weights");
  for (const auto& e : weights::expected_tensors(mc)) params_[e.name] = weights.get(e.name).to(device);
  factor_ = int64_t(1) << (config.ch_mult.size() - 1);
}

void FluxAE::set_work_floats(int64_t floats) {
  DK_CHECK(floats >= 1, "FLUX autoencoder: the work bound must be at least 1 float, got ", floats);
  work_floats_ = floats;
}

const Tensor& FluxAE::param(const std::string& name) const {
  auto it = params_.find(name);
  DK_CHECK(it != params_.end(), "FLUX autoencoder: no parameter ", name);
  return it->second;
}

Tensor FluxAE::conv(const Tensor& x, const std::string& prefix, int64_t padding) const {
  return ops::conv2d(x, param(prefix + ".weight"), param(prefix + ".bias"), {1, 1}, {padding, padding});
}

Tensor FluxAE::norm(const Tensor& x, const std::string& prefix) const {
  return ops::group_norm(x, kGroups, param(prefix + ".weight"), param(prefix + ".bias"), kNormEps);
}

// swish(norm(x)). GroupNorm's groups are runs of consecutive channels, so slices of whole groups
// normalise on their own; going slice by slice makes one full-size result where norm and swish
// would make two (the 2ch-wide full-resolution decoder input alone is 1 GiB at 1024x1024).
Tensor FluxAE::norm_swish(const Tensor& x, const std::string& prefix) const {
  const Tensor& w = param(prefix + ".weight");
  const Tensor& b = param(prefix + ".bias");
  const int64_t C = x.dim(1), group = C / kGroups, group_floats = group * (x.numel() / C);
  const int64_t per_slice = std::clamp<int64_t>(work_floats_ / std::max<int64_t>(group_floats, 1), 1, kGroups);
  if (per_slice == kGroups) return ops::silu(ops::group_norm(x, kGroups, w, b, kNormEps));
  Tensor out = Tensor::empty(x.shape(), x.dtype(), x.device());
  for (int64_t g = 0; g < kGroups; g += per_slice) {
    const int64_t n = std::min(per_slice, kGroups - g), c0 = g * group, nc = n * group;
    Tensor dst = out.narrow(1, c0, nc);
    ops::copy_(dst, ops::silu(ops::group_norm(x.narrow(1, c0, nc), n, w.narrow(0, c0, nc), b.narrow(0, c0, nc),
                                              kNormEps)));
  }
  return out;
}

// ResnetBlock: conv1(swish(norm1(x))), conv2(swish(norm2(h))) (dropout is identity), plus x
// through nin_shortcut when the channel count changes. One statement per step so that every
// full-size temporary is freed before the next one is made.
Tensor FluxAE::resnet_block(const Tensor& x, const std::string& prefix) const {
  Tensor h = norm_swish(x, prefix + ".norm1");
  h = conv(h, prefix + ".conv1", 1);
  h = norm_swish(h, prefix + ".norm2");
  h = conv(h, prefix + ".conv2", 1);
  const bool shortcut = params_.count(prefix + ".nin_shortcut.weight") != 0;
  return ops::add(shortcut ? conv(x, prefix + ".nin_shortcut", 0) : x, h);
}

// AttnBlock: x + proj_out(attention(norm(x))) with q, k, v 1x1 convs and one head over the
// H*W positions ("b c h w -> b 1 (h w) c").
Tensor FluxAE::attn_block(const Tensor& x, const std::string& prefix) const {
  const int64_t C = x.dim(1), H = x.dim(2), W = x.dim(3);
  const Tensor h = norm(x, prefix + ".norm");
  auto tokens = [&](const char* m) { return ops::permute(conv(h, prefix + "." + m, 0).reshape({C, H * W}), {1, 0}); };
  const Tensor out = single_head_attention(tokens("q"), tokens("k"), tokens("v"), work_floats_);  // [HW, C]
  const Tensor a = ops::permute(out, {1, 0}).reshape({1, C, H, W});
  return ops::add(x, conv(a, prefix + ".proj_out", 0));
}

Tensor FluxAE::mid(const Tensor& x, const std::string& prefix) const {
  Tensor h = resnet_block(x, prefix + ".block_1");
  h = attn_block(h, prefix + ".attn_1");
  return resnet_block(h, prefix + ".block_2");
}

// Encoder.forward (the official list of all level outputs is only ever read at its end).
Tensor FluxAE::encoder_moments(const Tensor& image) const {
  check_input(image, config_.in_channels, "image");
  Tensor h = conv(image.to(DType::F32).unsqueeze(0), "encoder.conv_in", 1);
  const int64_t levels = int64_t(config_.ch_mult.size());
  for (int64_t l = 0; l < levels; ++l) {
    for (int64_t b = 0; b < config_.num_res_blocks; ++b) h = resnet_block(h, cat("encoder.down.", l, ".block.", b));
    if (l + 1 != levels) {
      // Downsample: pad (0, 1, 0, 1) - right and bottom only - then a 3x3 stride-2 conv. As a
      // conv3d with per-side padding over a unit time axis, the padded copy is never made.
      const std::string p = cat("encoder.down.", l, ".downsample.conv");
      h = ops::conv3d(h.unsqueeze(2), param(p + ".weight").unsqueeze(2), param(p + ".bias"), {1, 2, 2},
                      {0, 0, 0, 1, 0, 1})
              .squeeze(2);
    }
  }
  h = mid(h, "encoder.mid");
  h = norm_swish(h, "encoder.norm_out");
  return conv(h, "encoder.conv_out", 1).squeeze(0);
}

// Decoder.forward: the up levels run from the lowest resolution (index levels-1) to full
// resolution (index 0), each with num_res_blocks + 1 blocks, upsampling after all but level 0.
Tensor FluxAE::decoder(const Tensor& latent) const {
  check_input(latent, config_.z_channels, "latent");
  Tensor h = conv(latent.to(DType::F32).unsqueeze(0), "decoder.conv_in", 1);
  h = mid(h, "decoder.mid");
  for (int64_t l = int64_t(config_.ch_mult.size()) - 1; l >= 0; --l) {
    for (int64_t b = 0; b <= config_.num_res_blocks; ++b) h = resnet_block(h, cat("decoder.up.", l, ".block.", b));
    if (l != 0) {
      // Every level's tensors are 4x the size of the last one's, so blocks the allocator keeps
      // for the smaller sizes would only add up: give them back before the next level allocates.
      allocator_release_cached(device_);
      // Upsample: F.interpolate(scale_factor=2.0, mode="nearest"), then a 3x3 conv.
      h = ops::resize(h, 2 * h.dim(2), 2 * h.dim(3), ops::Resize::Nearest);
      h = conv(h, cat("decoder.up.", l, ".upsample.conv"), 1);
    }
  }
  h = norm_swish(h, "decoder.norm_out");
  return conv(h, "decoder.conv_out", 1).squeeze(0);
}

void FluxAE::check_input(const Tensor& x, int64_t channels, const char* what) const {
  DK_CHECK(x.defined() && x.ndim() == 3 && x.dim(0) == channels, "FLUX autoencoder ", what, ": expected [", channels,
           ", height, width], got ", x.defined() ? x.str() : "an undefined tensor");
  DK_CHECK(x.dim(1) > 0 && x.dim(2) > 0, "FLUX autoencoder ", what, ": empty tensor ", x.str());
  DK_CHECK(x.device() == device_, "FLUX autoencoder ", what, ": tensor is on ", x.device().str(), ", the weights on ",
           device_.str());
}

// The official code divides by the scale factor (not a multiplication by its inverse), in f32.
Tensor FluxAE::unscale(const Tensor& z) const {
  check_input(z, config_.z_channels, "latent");
  return ops::add(ops::div(z.to(DType::F32), scalar(float(config_.scale_factor), device_)),
                  scalar(float(config_.shift_factor), device_));
}

Tensor FluxAE::scale(const Tensor& mean) const {
  check_input(mean, config_.z_channels, "mean");
  return ops::mul(ops::sub(mean.to(DType::F32), scalar(float(config_.shift_factor), device_)),
                  scalar(float(config_.scale_factor), device_));
}

Tensor FluxAE::decode(const Tensor& z) const { return decoder(unscale(z)); }

// DiagonalGaussian with sample=False: the mean, i.e. the first z_channels moments.
Tensor FluxAE::encode(const Tensor& image) const {
  return scale(encoder_moments(image).narrow(0, 0, config_.z_channels));
}

}  // namespace ditkit::vae
