// FLUX.1 autoencoder (black-forest-labs/flux src/flux/modules/autoencoder.py: AutoEncoder with
// its Encoder and Decoder): a 2D convolutional VAE, 2^(levels-1) = 8x in space, z_channels = 16
// latent channels, ResNet blocks with GroupNorm(32, eps 1e-6) and one single-head attention
// block in each mid section. Latents in model space are scaled: the DiT sees
// (z - shift_factor) * scale_factor.
//
// Memory: activations live one level at a time and the allocator's cached blocks of a smaller
// level are handed back before the next one; GroupNorm + swish run in slices of whole groups and
// the mid attention on the flash-style dense_attention kernel (no HW x HW scores), so a
// 1024x1024 decode peaks under 4 GB resident on the CPU (the largest tensors, 2ch x 1024 x 1024 f32, are
// 1 GiB each) without tiling.
#pragma once
#include <map>
#include <string>

#include "core/tensor.h"
#include "weights/layout.h"

namespace ditkit::vae {

class FluxAE {
 public:
  // Validates the weights against the config (throws naming missing or mis-shaped tensors) and
  // moves them, in their stored dtype, to `device`; inputs must then be on that device.
  FluxAE(const weights::ModelWeights& weights, const weights::FluxAeConfig& config, Device device = Device::cpu());

  // z [z_channels, h, w] in model space (what the sampler unpacks) -> image [out_ch, 8h, 8w],
  // nominally in [-1, 1], NOT clamped (AutoEncoder.decode: Decoder(z / scale_factor + shift_factor)).
  // f32 result.
  Tensor decode(const Tensor& z) const;
  // image [in_channels, H, W] in [-1, 1] (H, W multiples of 8) -> latent [z_channels, H/8, W/8]
  // in model space (AutoEncoder.encode with sample_z=False: scale_factor * (mean - shift_factor),
  // mean = the first z_channels channels of the encoder output). f32 result.
  Tensor encode(const Tensor& image) const;

  // The steps of decode and encode, for tests and tools (batch-free [C, H, W] tensors).
  Tensor unscale(const Tensor& z) const;            // z / scale_factor + shift_factor
  Tensor scale(const Tensor& mean) const;           // scale_factor * (mean - shift_factor)
  Tensor decoder(const Tensor& latent) const;       // Decoder.forward on an unscaled latent
  Tensor encoder_moments(const Tensor& image) const;  // Encoder.forward: mean ‖ logvar [2 z_channels, h, w]

  // Bound, in f32 values, on one slice of the normalisation temporaries and one block of
  // attention scores (where the flash kernel does not run); default 2^24 (64 MiB). Results do
  // not depend on it.
  void set_work_floats(int64_t floats);

  const weights::FluxAeConfig& config() const { return config_; }
  // 2^(len(ch_mult) - 1): image pixels per latent pixel along each axis.
  int64_t downsample_factor() const { return factor_; }

 private:
  const Tensor& param(const std::string& name) const;
  Tensor conv(const Tensor& x, const std::string& prefix, int64_t padding) const;
  Tensor norm(const Tensor& x, const std::string& prefix) const;
  Tensor norm_swish(const Tensor& x, const std::string& prefix) const;
  Tensor resnet_block(const Tensor& x, const std::string& prefix) const;
  Tensor attn_block(const Tensor& x, const std::string& prefix) const;
  Tensor mid(const Tensor& x, const std::string& prefix) const;
  void check_input(const Tensor& x, int64_t channels, const char* what) const;

  weights::FluxAeConfig config_;
  Device device_;
  std::map<std::string, Tensor> params_;
  int64_t factor_ = 1;
  int64_t work_floats_ = int64_t(1) << 24;
};

}  // namespace ditkit::vae
