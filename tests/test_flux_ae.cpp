// FLUX autoencoder decode and encode against the official AutoEncoder outputs (golden
// flux_tiny/ae, README §2; float32 thresholds from §5: rel RMS <= 1e-5, max abs <= 2e-5), also
// with the weights stored in diffusers AutoencoderKL names.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "test_util.h"
#include "vae/flux_ae.h"
#include "weights/checkpoint.h"

using namespace ditkit;

namespace {

const std::string kDir = ditkit::test::kGolden + "flux_tiny/ae/";
constexpr double kMaxAbs = 2e-5, kRelRms = 1e-5;

struct Diff {
  double max_abs = 0, rel_rms = 0;
};

// Compares a [C, H, W] result with a golden [1, C, H, W] tensor.
Diff diff(const Tensor& got, const Tensor& want) {
  EXPECT_EQ(got.unsqueeze(0).shape(), want.shape());
  const auto x = got.to_vector(), y = want.to_vector();
  double d2 = 0, r2 = 0, m = 0;
  for (size_t i = 0; i < x.size() && i < y.size(); ++i) {
    const double d = double(x[i]) - double(y[i]);
    m = std::max(m, std::fabs(d));
    d2 += d * d;
    r2 += double(y[i]) * double(y[i]);
  }
  return {m, std::sqrt(d2 / std::max(r2, 1e-300))};
}

void expect_close(const Tensor& got, const Tensor& want, const char* what) {
  const Diff d = diff(got, want);
  EXPECT_LE(d.max_abs, kMaxAbs) << what;
  EXPECT_LE(d.rel_rms, kRelRms) << what;
  std::printf("  %-14s max abs %.2e  rel RMS %.2e\n", what, d.max_abs, d.rel_rms);
}

weights::FluxAeConfig tiny_config() {
  std::ifstream in(kDir + "config.json");
  return weights::config_from_json(weights::Family::flux_ae, nlohmann::json::parse(in), "ae/config.json")
      .as<weights::FluxAeConfig>();
}

// The official names written the way diffusers' convert_ldm_vae_checkpoint stores them:
// decoder levels counted from the lowest resolution, mid attention projections as linear weights.
weights::ModelWeights diffusers_weights(const weights::Checkpoint& ref, int64_t levels) {
  std::map<std::string, Tensor> out = test::flux_ae_to_diffusers(ref, levels);
  auto ckpt = std::make_shared<const weights::Checkpoint>(weights::Checkpoint::from_tensors(std::move(out)));
  return weights::ModelWeights(ckpt, weights::detect(ckpt->names()));
}

class FluxAeTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    io_ = new weights::Checkpoint(weights::Checkpoint::open(kDir + "io.safetensors"));
    ae_ = new vae::FluxAE(weights::ModelWeights::open(kDir + "weights.safetensors"), tiny_config());
  }
  static void TearDownTestSuite() {
    delete ae_;
    delete io_;
  }
  static Tensor golden(const std::string& name) { return io_->get(name); }
  static Tensor input(const std::string& name) { return io_->get(name).squeeze(0); }
  static weights::Checkpoint* io_;
  static vae::FluxAE* ae_;
};
weights::Checkpoint* FluxAeTest::io_ = nullptr;
vae::FluxAE* FluxAeTest::ae_ = nullptr;

}  // namespace

TEST_F(FluxAeTest, ConfigAndFactor) {
  EXPECT_EQ(ae_->config().z_channels, 16);
  EXPECT_EQ(ae_->downsample_factor(), 8);
  EXPECT_FLOAT_EQ(float(ae_->config().scale_factor), 0.3611f);
  EXPECT_FLOAT_EQ(float(ae_->config().shift_factor), 0.1159f);
}

TEST_F(FluxAeTest, DecodeMatchesOfficial) {
  expect_close(ae_->unscale(input("decode.z")), golden("decode.dbg.z_unscaled"), "z_unscaled");
  expect_close(ae_->decoder(input("decode.dbg.z_unscaled")), golden("decode.out"), "decoder");
  const Tensor out = ae_->decode(input("decode.z"));
  ASSERT_EQ(out.shape(), (Shape{3, 64, 64}));
  expect_close(out, golden("decode.out"), "decode");
}

TEST_F(FluxAeTest, EncodeMatchesOfficial) {
  const Tensor moments = ae_->encoder_moments(input("encode.x"));
  expect_close(moments, golden("encode.dbg.moments"), "moments");
  expect_close(ae_->scale(input("encode.dbg.mean")), golden("encode.z"), "scale");
  const Tensor z = ae_->encode(input("encode.x"));
  ASSERT_EQ(z.shape(), (Shape{16, 8, 8}));
  expect_close(z, golden("encode.z"), "encode");
}

// A small work bound runs GroupNorm + swish slice by slice: the same values.
TEST_F(FluxAeTest, SlicedNormalisationGivesTheSameResults) {
  vae::FluxAE sliced(weights::ModelWeights::open(kDir + "weights.safetensors"), tiny_config());
  sliced.set_work_floats(1000);
  const auto a = sliced.decode(input("decode.z")).to_vector(), b = ae_->decode(input("decode.z")).to_vector();
  EXPECT_EQ(a, b);
  expect_close(sliced.encode(input("encode.x")), golden("encode.z"), "encode (sliced)");
  test::expect_error([&] { sliced.set_work_floats(0); }, "work bound");
}

// Non-square sizes: each latent pixel becomes an 8x8 patch and back.
TEST_F(FluxAeTest, NonSquareShapes) {
  const Tensor z = ae_->unscale(input("decode.z")).narrow(2, 0, 5).contiguous();  // [16, 8, 5]
  const Tensor image = ae_->decoder(z);
  ASSERT_EQ(image.shape(), (Shape{3, 64, 40}));
  EXPECT_EQ(ae_->encode(image).shape(), (Shape{16, 8, 5}));
}

TEST_F(FluxAeTest, DiffusersNamesGiveTheSameResults) {
  const weights::Checkpoint ref = weights::Checkpoint::open(kDir + "weights.safetensors");
  const weights::ModelWeights w = diffusers_weights(ref, int64_t(tiny_config().ch_mult.size()));
  ASSERT_EQ(w.detected().layout, weights::Layout::diffusers);
  const vae::FluxAE ae(w, tiny_config());
  expect_close(ae.decode(input("decode.z")), golden("decode.out"), "decode (diffusers)");
  expect_close(ae.encode(input("encode.x")), golden("encode.z"), "encode (diffusers)");
}

// Weights stored in BF16 or F16 (diffusers exports) run without a float32 copy and stay close
// to the float32 golden (rounding the weights alone: measured rel RMS ~6e-3 for BF16, ~8e-4 for F16).
TEST_F(FluxAeTest, HalfPrecisionWeights) {
  const weights::Checkpoint ref = weights::Checkpoint::open(kDir + "weights.safetensors");
  for (DType dtype : {DType::BF16, DType::F16}) {
    std::map<std::string, Tensor> cast;
    for (const auto& name : ref.names()) cast[name] = ref.get(name).to(dtype);
    auto ckpt = std::make_shared<const weights::Checkpoint>(weights::Checkpoint::from_tensors(std::move(cast)));
    const vae::FluxAE ae(weights::ModelWeights(ckpt, weights::detect(ckpt->names())), tiny_config());
    const Diff d = diff(ae.decode(input("decode.z")), golden("decode.out"));
    const Diff e = diff(ae.encode(input("encode.x")), golden("encode.z"));
    std::printf("  %s weights: decode rel RMS %.2e, encode rel RMS %.2e\n", dtype_name(dtype), d.rel_rms, e.rel_rms);
    EXPECT_LE(d.rel_rms, 2e-2) << dtype_name(dtype);
    EXPECT_LE(e.rel_rms, 2e-2) << dtype_name(dtype);
  }
}

TEST_F(FluxAeTest, BadInputsAreNamed) {
  test::expect_error([&] { ae_->decode(Tensor::zeros({4, 8, 8}, DType::F32)); }, {"FLUX autoencoder latent", "[16"});
  test::expect_error([&] { ae_->encode(Tensor::zeros({1, 3, 64, 64}, DType::F32)); }, {"FLUX autoencoder image", "[3"});
  // A config that does not fit the weights names the tensor.
  weights::FluxAeConfig wrong = tiny_config();
  wrong.num_res_blocks = 2;
  test::expect_error([&] { vae::FluxAE(weights::ModelWeights::open(kDir + "weights.safetensors"), wrong); },
                     {"FLUX autoencoder weights", "encoder.down.0.block.1"});
}
