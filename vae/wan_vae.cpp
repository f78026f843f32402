// Wan2.1 VAE forward passes; module and parameter names follow wan/modules/vae.py.
#include "vae/wan_vae.h"

#include <algorithm>
#include <cmath>

#include "core/ops.h"

namespace ditkit::vae {

// The k=3 causal convs see 2 frames of context: their last 2 input frames carry over (CACHE_T).
// `seen` marks a stream that has had its first chunk (the official 'Rep' state of upsample3d and
// the first-chunk case of downsample3d).
struct WanVAE::Slot {
  Tensor frames;
  bool seen = false;
};

struct WanVAE::Stream {
  std::vector<Slot> slots;
  size_t next = 0;
  // Every chunk runs the same modules in the same order, so the n-th call owns the n-th slot.
  Slot& take() {
    if (next == slots.size()) slots.emplace_back();
    return slots[next++];
  }
};

namespace {

constexpr int64_t kCacheFrames = 2;
// Bound on one attention score block (64 MiB of f32), so large frames need no Lq x Lk matrix.
constexpr int64_t kScoreFloats = int64_t(1) << 24;

bool has_attention(const std::vector<double>& attn_scales, double scale) {
  return std::any_of(attn_scales.begin(), attn_scales.end(), [&](double s) { return std::fabs(s - scale) < 1e-9; });
}

// Channel vector [z_dim] -> f32 [z_dim, 1, 1, 1] on `device`, broadcasting over (t, h, w).
Tensor channel_tensor(const std::vector<float>& v, Device device) {
  return Tensor::from_vector(v, {int64_t(v.size()), 1, 1, 1}).to(device);
}

// [O, C, kh, kw] 2D kernels run as [O, C, 1, kh, kw] 3D kernels over each frame.
Tensor as_3d(const Tensor& w) { return w.ndim() == 4 ? w.unsqueeze(2) : w; }

}  // namespace

WanVAE::WanVAE(const weights::ModelWeights& weights, const weights::WanVaeConfig& config, Device device)
    : config_(config), device_(device) {
  weights::ModelConfig mc{weights::Family::wan_vae, config};
  weights::validate(mc, weights.shapes(), "Wan VAE weights");
  for (const auto& e : weights::expected_tensors(mc)) params_[e.name] = weights.get(e.name).to(device);

  const size_t levels = config.dim_mult.size();
  DK_CHECK(config.latent_mean.size() == size_t(config.z_dim) && config.latent_std.size() == size_t(config.z_dim),
           "Wan VAE config: latent_mean and latent_std need z_dim = ", config.z_dim, " values, got ",
           config.latent_mean.size(), " and ", config.latent_std.size());
  // The wrapper's scale = [mean, 1/std], both float32 (1/std rounded to float32 first).
  std::vector<float> mean, inv_std;
  for (int64_t c = 0; c < config.z_dim; ++c) {
    mean.push_back(float(config.latent_mean[size_t(c)]));
    inv_std.push_back(1.0f / float(config.latent_std[size_t(c)]));
  }
  mean_ = channel_tensor(mean, device);
  inv_std_ = channel_tensor(inv_std, device);

  // Encoder3d.downsamples: residual (+attention) blocks per level, then a resample between levels.
  int idx = 0;
  double scale = 1.0;
  for (size_t i = 0; i < levels; ++i) {
    for (int64_t r = 0; r < config.num_res_blocks; ++r) {
      down_.push_back({Kind::Residual, cat("encoder.downsamples.", idx++)});
      if (has_attention(config.attn_scales, scale)) down_.push_back({Kind::Attention, cat("encoder.downsamples.", idx++)});
    }
    if (i + 1 != levels) {
      const bool temporal = config.temperal_downsample[i];
      down_.push_back({temporal ? Kind::Downsample3d : Kind::Downsample2d, cat("encoder.downsamples.", idx++)});
      scale /= 2;
      space_factor_ *= 2;
      if (temporal) time_factor_ *= 2;
    }
  }
  // Decoder3d.upsamples: one more residual block per level; temperal_upsample is the reverse.
  idx = 0;
  scale = 1.0 / std::pow(2.0, double(levels) - 2);
  for (size_t i = 0; i < levels; ++i) {
    for (int64_t r = 0; r < config.num_res_blocks + 1; ++r) {
      up_.push_back({Kind::Residual, cat("decoder.upsamples.", idx++)});
      if (has_attention(config.attn_scales, scale)) up_.push_back({Kind::Attention, cat("decoder.upsamples.", idx++)});
    }
    if (i + 1 != levels) {
      const bool temporal = config.temperal_downsample[levels - 2 - i];
      up_.push_back({temporal ? Kind::Upsample3d : Kind::Upsample2d, cat("decoder.upsamples.", idx++)});
      scale *= 2;
    }
  }
}

const Tensor& WanVAE::param(const std::string& name) const {
  auto it = params_.find(name);
  DK_CHECK(it != params_.end(), "Wan VAE: no parameter ", name);
  return it->second;
}

// CausalConv3d: 2p zero frames in front of the stream and none behind; within a chunk the
// slot's frames stand in for as many of those zeros as it holds.
Tensor WanVAE::causal_conv(const Tensor& x, const std::string& prefix, Slot& slot) const {
  const Tensor& w = param(prefix + ".weight");
  const int64_t kt = w.dim(2), ph = w.dim(3) / 2, pw = w.dim(4) / 2;
  const Tensor in = slot.frames.defined() ? ops::concat({slot.frames, x}, 2) : x;
  const int64_t front = (kt - 1) - (in.dim(2) - x.dim(2));
  const int64_t keep = std::min(kCacheFrames, in.dim(2));
  slot.frames = in.narrow(2, in.dim(2) - keep, keep).clone();
  return ops::conv3d(in, w, param(prefix + ".bias"), {1, 1, 1}, {front, 0, ph, ph, pw, pw});
}

// 1x1(x1) convs (shortcut, to_qkv, proj, WanVAE_.conv1/conv2) need no time context.
Tensor WanVAE::pointwise_conv(const Tensor& x, const std::string& prefix) const {
  return ops::conv3d(x, as_3d(param(prefix + ".weight")), param(prefix + ".bias"));
}

// RMS_norm: F.normalize over channels (x / max(|x|, 1e-12)) * sqrt(C) * gamma. rms_norm's
// x * rsqrt(mean(x^2) + eps) is the same with eps = (1e-12)^2 / C standing in for the clamp.
Tensor WanVAE::rms_norm(const Tensor& x, const std::string& gamma) const {
  const int64_t C = x.dim(1);
  const Tensor y = ops::rms_norm(x.permute({0, 2, 3, 4, 1}), param(gamma).reshape({C}), float(1e-24 / double(C)));
  return ops::permute(y, {0, 4, 1, 2, 3});
}

Tensor WanVAE::residual_block(const Tensor& x, const std::string& prefix, Stream& s) const {
  const Tensor h = params_.count(prefix + ".shortcut.weight") ? pointwise_conv(x, prefix + ".shortcut") : x;
  Tensor y = ops::silu(rms_norm(x, prefix + ".residual.0.gamma"));
  y = causal_conv(y, prefix + ".residual.2", s.take());
  y = ops::silu(rms_norm(y, prefix + ".residual.3.gamma"));
  y = causal_conv(y, prefix + ".residual.6", s.take());
  return ops::add(y, h);
}

// AttentionBlock: single-head attention over the H*W positions of each frame, scale 1/sqrt(C);
// to_qkv's output channels are q | k | v.
Tensor WanVAE::attention_block(const Tensor& x, const std::string& prefix) const {
  const int64_t C = x.dim(1), T = x.dim(2), H = x.dim(3), W = x.dim(4), L = H * W;
  const Tensor qkv = pointwise_conv(rms_norm(x, prefix + ".norm.gamma"), prefix + ".to_qkv").reshape({3 * C, T, L});
  const Tensor q = ops::affine(qkv.narrow(0, 0, C), float(1.0 / std::sqrt(double(C))), 0.0f);
  const Tensor k = qkv.narrow(0, C, C), v = qkv.narrow(0, 2 * C, C);
  const int64_t block = std::clamp<int64_t>(kScoreFloats / std::max<int64_t>(L, 1), 1, L);
  std::vector<Tensor> frames;
  for (int64_t t = 0; t < T; ++t) {
    const Tensor qt = q.select(1, t), kt = k.select(1, t), vt = v.select(1, t);  // [C, L]
    std::vector<Tensor> parts;
    for (int64_t i = 0; i < L; i += block) {
      const Tensor scores = ops::matmul(qt.narrow(1, i, std::min(block, L - i)), kt, true, false);  // [n, L]
      parts.push_back(ops::matmul(vt, ops::softmax(scores, -1), false, true));                      // [C, n]
    }
    frames.push_back((parts.size() == 1 ? parts[0] : ops::concat(parts, 1)).unsqueeze(1));
  }
  const Tensor attn = (T == 1 ? frames[0] : ops::concat(frames, 1)).reshape({1, C, T, H, W});
  return ops::add(pointwise_conv(attn, prefix + ".proj"), x);
}

Tensor WanVAE::resample(const Tensor& x, const Block& b, Stream& s) const {
  Tensor y = x;
  if (b.kind == Kind::Upsample3d) {
    // The first chunk keeps its frames; later frames become 2 each, a causal stream of their own.
    Slot& slot = s.take();
    if (!slot.seen) {
      slot.seen = true;
    } else {
      const int64_t C = y.dim(1), T = y.dim(2), H = y.dim(3), W = y.dim(4);
      y = causal_conv(y, b.prefix + ".time_conv", slot).reshape({1, 2, C, T, H, W});
      y = ops::permute(y, {0, 2, 3, 1, 4, 5}).reshape({1, C, 2 * T, H, W});  // channels [j*C, j*C+C) -> frame 2t+j
    }
  }
  const Tensor& w = param(b.prefix + ".resample.1.weight");
  const Tensor& bias = param(b.prefix + ".resample.1.bias");
  const int64_t C = y.dim(1), T = y.dim(2), H = y.dim(3), W = y.dim(4);
  if (b.kind == Kind::Upsample2d || b.kind == Kind::Upsample3d) {
    y = ops::resize(y.reshape({1, C * T, H, W}), 2 * H, 2 * W, ops::Resize::NearestExact).reshape({1, C, T, 2 * H, 2 * W});
    y = ops::conv3d(y, as_3d(w), bias, {1, 1, 1}, {0, 0, 1, 1, 1, 1});
  } else {
    // ZeroPad2d((0, 1, 0, 1)): right and bottom only, then stride 2.
    y = ops::conv3d(y, as_3d(w), bias, {1, 2, 2}, {0, 0, 0, 1, 0, 1});
  }
  if (b.kind == Kind::Downsample3d) {
    // The first chunk passes; then a stride-2 3-tap conv over the stream without padding.
    Slot& slot = s.take();
    const Tensor last = y.narrow(2, y.dim(2) - 1, 1).clone();
    if (slot.seen) {
      const std::string tc = b.prefix + ".time_conv";
      y = ops::conv3d(ops::concat({slot.frames, y}, 2), param(tc + ".weight"), param(tc + ".bias"), {2, 1, 1});
    }
    slot.seen = true;
    slot.frames = last;
  }
  return y;
}

Tensor WanVAE::run_block(const Tensor& x, const Block& b, Stream& s) const {
  switch (b.kind) {
    case Kind::Residual:
      return residual_block(x, b.prefix, s);
    case Kind::Attention:
      return attention_block(x, b.prefix);
    default:
      return resample(x, b, s);
  }
}

Tensor WanVAE::encoder(const Tensor& x, Stream& s) const {
  Tensor y = causal_conv(x, "encoder.conv1", s.take());
  for (const Block& b : down_) y = run_block(y, b, s);
  y = residual_block(y, "encoder.middle.0", s);
  y = attention_block(y, "encoder.middle.1");
  y = residual_block(y, "encoder.middle.2", s);
  y = ops::silu(rms_norm(y, "encoder.head.0.gamma"));
  return causal_conv(y, "encoder.head.2", s.take());
}

Tensor WanVAE::decoder(const Tensor& x, Stream& s) const {
  Tensor y = causal_conv(x, "decoder.conv1", s.take());
  y = residual_block(y, "decoder.middle.0", s);
  y = attention_block(y, "decoder.middle.1");
  y = residual_block(y, "decoder.middle.2", s);
  for (const Block& b : up_) y = run_block(y, b, s);
  y = ops::silu(rms_norm(y, "decoder.head.0.gamma"));
  return causal_conv(y, "decoder.head.2", s.take());
}

void WanVAE::check_input(const Tensor& x, int64_t channels, const char* what) const {
  DK_CHECK(x.defined() && x.ndim() == 4 && x.dim(0) == channels, "Wan VAE ", what, ": expected [", channels,
           ", frames, height, width], got ", x.defined() ? x.str() : "an undefined tensor");
  DK_CHECK(x.dim(1) > 0 && x.dim(2) > 0 && x.dim(3) > 0, "Wan VAE ", what, ": empty tensor ", x.str());
  DK_CHECK(x.device() == device_, "Wan VAE ", what, ": tensor is on ", x.device().str(), ", the weights on ",
           device_.str());
}

Tensor WanVAE::denormalize(const Tensor& z) const {
  check_input(z, config_.z_dim, "latent");
  return ops::add(ops::div(z.to(DType::F32), inv_std_), mean_);
}

Tensor WanVAE::normalize(const Tensor& mu) const {
  check_input(mu, config_.z_dim, "mu");
  return ops::mul(ops::sub(mu.to(DType::F32), mean_), inv_std_);
}

Tensor WanVAE::decode_raw(const Tensor& latent) const {
  check_input(latent, config_.z_dim, "latent");
  const int64_t T = latent.dim(1), H = latent.dim(2) * space_factor_, W = latent.dim(3) * space_factor_;
  const Tensor x = pointwise_conv(latent.to(DType::F32).unsqueeze(0), "conv2");
  Tensor out = Tensor::empty({3, 1 + time_factor_ * (T - 1), H, W}, DType::F32, device_);
  Stream s;
  int64_t frame = 0;
  for (int64_t t = 0; t < T; ++t) {
    s.next = 0;
    const Tensor chunk = decoder(x.narrow(2, t, 1), s).squeeze(0);
    DK_CHECK(chunk.dim(2) == H && chunk.dim(3) == W && frame + chunk.dim(1) <= out.dim(1),
             "Wan VAE: decoder chunk ", t, " has shape ", chunk.str(), ", expected frames of ", H, "x", W);
    Tensor dst = out.narrow(1, frame, chunk.dim(1));
    ops::copy_(dst, chunk);
    frame += chunk.dim(1);
  }
  DK_CHECK(frame == out.dim(1), "Wan VAE: decoder gave ", frame, " frames, expected ", out.dim(1));
  return out;
}

Tensor WanVAE::decode(const Tensor& z) const {
  const Tensor lo = Tensor::full({1}, -1.0f, DType::F32, device_), hi = Tensor::full({1}, 1.0f, DType::F32, device_);
  return ops::binary(ops::Binary::Min, ops::binary(ops::Binary::Max, decode_raw(denormalize(z)), lo), hi);
}

Tensor WanVAE::encode_moments(const Tensor& video) const {
  check_input(video, 3, "video");
  const int64_t F = video.dim(1);
  DK_CHECK((F - 1) % time_factor_ == 0, "Wan VAE video: ", F, " frames; the encoder takes 1 + ", time_factor_,
           "k frames");
  const Tensor x = video.to(DType::F32).unsqueeze(0);
  Stream s;
  std::vector<Tensor> chunks;
  // Chunks of 1, time_factor, time_factor, ... frames, each giving one latent frame.
  for (int64_t f = 0; f < F; f += f == 0 ? 1 : time_factor_) {
    s.next = 0;
    chunks.push_back(encoder(x.narrow(2, f, f == 0 ? 1 : time_factor_), s));
  }
  const Tensor out = chunks.size() == 1 ? chunks[0] : ops::concat(chunks, 2);
  return pointwise_conv(out, "conv1").squeeze(0);
}

Tensor WanVAE::encode(const Tensor& video) const {
  return normalize(encode_moments(video).narrow(0, 0, config_.z_dim));
}

}  // namespace ditkit::vae
