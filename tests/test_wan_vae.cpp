// Wan VAE decode and encode against the official WanVAE outputs (golden wan_tiny/vae, README §5;
// tolerance 1e-4 max abs from §8).
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "vae/wan_vae.h"
#include "weights/checkpoint.h"

using namespace ditkit;

namespace {

const std::string kDir = std::string(DITKIT_TEST_DATA) + "/golden/wan_tiny/vae/";
constexpr double kTol = 1e-4;

double max_abs_diff(const Tensor& a, const Tensor& b) {
  EXPECT_EQ(a.shape(), b.shape());
  auto x = a.to_vector(), y = b.to_vector();
  double m = 0;
  for (size_t i = 0; i < x.size() && i < y.size(); ++i) m = std::max(m, std::fabs(double(x[i]) - y[i]));
  return m;
}

weights::WanVaeConfig tiny_config() {
  std::ifstream in(kDir + "config.json");
  return weights::config_from_json(weights::Family::wan_vae, nlohmann::json::parse(in), "vae/config.json")
      .as<weights::WanVaeConfig>();
}

class WanVaeTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    io_ = new weights::Checkpoint(weights::Checkpoint::open(kDir + "io.safetensors"));
    vae_ = new vae::WanVAE(weights::ModelWeights::open(kDir + "weights.safetensors"), tiny_config());
  }
  static void TearDownTestSuite() {
    delete vae_;
    delete io_;
  }
  static weights::Checkpoint* io_;
  static vae::WanVAE* vae_;
};
weights::Checkpoint* WanVaeTest::io_ = nullptr;
vae::WanVAE* WanVaeTest::vae_ = nullptr;

}  // namespace

TEST_F(WanVaeTest, LatentStatisticsMatchTheWrapper) {
  const auto& c = vae_->config();
  auto mean = io_->get("latent_mean").to_vector(), std_ = io_->get("latent_std").to_vector();
  ASSERT_EQ(c.latent_mean.size(), 16u);
  for (size_t i = 0; i < 16; ++i) {
    EXPECT_EQ(float(c.latent_mean[i]), mean[i]) << i;
    EXPECT_EQ(float(c.latent_std[i]), std_[i]) << i;
  }
}

TEST_F(WanVaeTest, DecodeMatchesOfficial) {
  const Tensor z = io_->get("dec_z");
  const Tensor denorm = vae_->denormalize(z);
  EXPECT_LE(max_abs_diff(denorm, io_->get("dec_z_denorm")), 1e-5);
  const Tensor raw = vae_->decode_raw(io_->get("dec_z_denorm"));
  ASSERT_EQ(raw.shape(), (Shape{3, 5, 64, 64}));
  EXPECT_LE(max_abs_diff(raw, io_->get("dec_out_raw")), kTol);
  const Tensor out = vae_->decode(z);
  EXPECT_LE(max_abs_diff(out, io_->get("dec_out")), kTol);
  for (float v : out.to_vector()) ASSERT_TRUE(v >= -1.0f && v <= 1.0f);
}

TEST_F(WanVaeTest, DecodeSingleFrameMatchesOfficial) {
  const Tensor out = vae_->decode(io_->get("dec1_z"));
  ASSERT_EQ(out.shape(), (Shape{3, 1, 64, 64}));
  EXPECT_LE(max_abs_diff(out, io_->get("dec1_out")), kTol);
}

// Causal: the first latent frame alone decodes to the first video frame of the clip (up to GEMM
// blocking differences).
TEST_F(WanVaeTest, DecodeIsCausal) {
  const Tensor z = io_->get("dec_z");
  const Tensor first = vae_->decode(z.narrow(1, 0, 1).contiguous());
  const Tensor full = vae_->decode(z);
  EXPECT_LE(max_abs_diff(first, full.narrow(1, 0, 1).contiguous()), 1e-5);
}

TEST_F(WanVaeTest, EncodeMatchesOfficial) {
  const Tensor video = io_->get("enc_video");
  const Tensor moments = vae_->encode_moments(video);
  ASSERT_EQ(moments.shape(), (Shape{32, 2, 8, 8}));
  EXPECT_LE(max_abs_diff(moments, io_->get("enc_conv1_out")), kTol);
  EXPECT_LE(max_abs_diff(vae_->encode(video), io_->get("enc_mu")), kTol);
}

TEST_F(WanVaeTest, RejectsBadInputs) {
  auto expect_error = [](auto fn, const std::string& part) {
    try {
      fn();
      ADD_FAILURE() << "no error, expected one containing: " << part;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
    }
  };
  expect_error([] { vae_->decode(Tensor::zeros({4, 1, 8, 8}, DType::F32)); }, "expected [16, frames, height, width]");
  expect_error([] { vae_->decode(Tensor::zeros({16, 8, 8}, DType::F32)); }, "latent");
  expect_error([] { vae_->encode(Tensor::zeros({3, 4, 16, 16}, DType::F32)); }, "1 + 4k frames");
  expect_error([] { vae_->encode(Tensor::zeros({1, 1, 16, 16}, DType::F32)); }, "Wan VAE video");
}

TEST(WanVae, RejectsIncompleteWeights) {
  weights::Checkpoint ck = weights::Checkpoint::open(kDir + "weights.safetensors");
  std::map<std::string, Tensor> tensors;
  for (const auto& n : ck.names())
    if (n != "decoder.head.2.bias") tensors[n] = ck.get(n);
  const auto path = std::filesystem::temp_directory_path() / "ditkit_test_wan_vae_missing.safetensors";
  weights::save_safetensors(path.string(), tensors);
  try {
    vae::WanVAE v(weights::ModelWeights::open(path.string(), "wan_vae"), tiny_config());
    ADD_FAILURE() << "incomplete weights accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("decoder.head.2.bias"), std::string::npos) << e.what();
  }
  std::filesystem::remove(path);
}
