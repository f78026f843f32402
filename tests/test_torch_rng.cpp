// The generator must reproduce PyTorch's CPU torch.randn bit for bit (golden/rng).
#include <gtest/gtest.h>

#include <cmath>

#include "samplers/torch_rng.h"
#include "weights/checkpoint.h"

using namespace ditkit;

TEST(TorchRng, MatchesTorchRandn) {
  auto golden = weights::Checkpoint::open(std::string(DITKIT_TEST_DATA) + "/golden/rng/torch_cpu_randn.safetensors");
  int cases = 0;
  for (int c = 0; golden.contains("case" + std::to_string(c) + ".seed") || c == 0; ++c) {
    std::string key = "case" + std::to_string(c);
    if (!golden.contains(key + ".seed")) continue;
    int64_t seed = *golden.get(key + ".seed").data<int64_t>();
    Tensor shape_t = golden.get(key + ".shape");
    Shape shape(shape_t.data<int64_t>(), shape_t.data<int64_t>() + shape_t.numel());
    samplers::TorchGenerator gen(static_cast<uint64_t>(seed));
    for (const char* draw : {".randn", ".randn_second"}) {
      auto want = golden.get(key + draw).to_vector();
      auto got = gen.randn(shape).to_vector();
      ASSERT_EQ(got.size(), want.size()) << key << draw;
      double max_err = 0;
      for (size_t i = 0; i < got.size(); ++i) max_err = std::max(max_err, std::fabs(double(got[i]) - want[i]));
      EXPECT_LE(max_err, 1e-6) << key << draw << " seed " << seed << " shape " << shape_str(shape);
    }
    ++cases;
  }
  EXPECT_GE(cases, 6);
}
