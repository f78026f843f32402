// Wan2.1 video VAE (wan/modules/vae.py: WanVAE_ and the WanVAE wrapper): a causal 3D
// convolutional autoencoder, 4x in time (the first frame stands alone) and 8x in space, with
// z_dim latent channels.
//
// Like the official code, decode feeds one latent frame at a time and encode feeds video frames
// in chunks of 1, 4, 4, ...; every causal conv keeps its last two input frames between chunks,
// so the result equals a causal pass over the whole clip while memory stays bounded by one
// chunk (plus the caches) however many frames there are.
#pragma once
#include <map>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "weights/layout.h"

namespace ditkit::vae {

class WanVAE {
 public:
  // Validates the weights against the config (throws naming missing or mis-shaped tensors) and
  // moves them, in their stored dtype, to `device`; inputs must then be on that device.
  WanVAE(const weights::ModelWeights& weights, const weights::WanVaeConfig& config, Device device = Device::cpu());

  // z [z_dim, T, h, w] as the sampler produces it -> video [3, 1 + 4(T-1), 8h, 8w] clamped to
  // [-1, 1] (WanVAE.decode).
  Tensor decode(const Tensor& z) const;
  // video [3, 1 + 4k, H, W] in [-1, 1] -> normalised mu [z_dim, 1 + k, H/8, W/8] (WanVAE.encode).
  Tensor encode(const Tensor& video) const;

  // The steps of decode and encode, for tests and tools.
  Tensor denormalize(const Tensor& z) const;         // z / (1/std) + mean
  Tensor normalize(const Tensor& mu) const;          // (mu - mean) * (1/std)
  Tensor decode_raw(const Tensor& latent) const;     // WanVAE_.decode without scale: before the clamp
  Tensor encode_moments(const Tensor& video) const;  // WanVAE_.conv1 output: mu ‖ log_var [2 z_dim, ...]

  const weights::WanVaeConfig& config() const { return config_; }

 private:
  enum class Kind { Residual, Attention, Downsample2d, Downsample3d, Upsample2d, Upsample3d };
  struct Block {
    Kind kind;
    std::string prefix;  // official module name, e.g. "decoder.upsamples.3"
  };
  struct Slot;    // one causal conv's memory between chunks
  struct Stream;  // the slots of one encode or decode call, taken in call order

  const Tensor& param(const std::string& name) const;
  Tensor causal_conv(const Tensor& x, const std::string& prefix, Slot& slot) const;
  Tensor pointwise_conv(const Tensor& x, const std::string& prefix) const;
  Tensor rms_norm(const Tensor& x, const std::string& gamma) const;
  Tensor residual_block(const Tensor& x, const std::string& prefix, Stream& s) const;
  Tensor attention_block(const Tensor& x, const std::string& prefix) const;
  Tensor resample(const Tensor& x, const Block& b, Stream& s) const;
  Tensor run_block(const Tensor& x, const Block& b, Stream& s) const;
  Tensor encoder(const Tensor& x, Stream& s) const;
  Tensor decoder(const Tensor& x, Stream& s) const;
  void check_input(const Tensor& x, int64_t channels, const char* what) const;

  weights::WanVaeConfig config_;
  Device device_;
  std::map<std::string, Tensor> params_;
  std::vector<Block> down_, up_;  // Encoder3d.downsamples, Decoder3d.upsamples
  Tensor mean_, inv_std_;         // [z_dim, 1, 1, 1] f32 on device_
  int64_t time_factor_ = 1, space_factor_ = 1;
};

}  // namespace ditkit::vae
