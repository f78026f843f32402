// Shared by the attention kind tests: runs a kind's schedule on a golden's q/k/v through the
// block-sparse engine and checks out and lse against the golden within its README's float32
// tolerance (out: 1e-5 abs or 1e-4 of max|out|; lse: 1e-5).
#pragma once
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <string>

#include "attention/block_sparse.h"
#include "attention/kind.h"
#include "weights/checkpoint.h"

namespace ditkit::test {

// `data` holds q, k, v, out [heads, tokens, dim] and lse [heads, tokens]; `scale` is the golden's.
inline void expect_engine_matches_golden(const attention::Kind& kind, const attention::BlockSchedule& s,
                                         const weights::Checkpoint& data, float scale, const std::string& what) {
  auto blhd = [&](const char* t) { return data.get(t).permute({1, 0, 2}).unsqueeze(0); };
  const Tensor q = blhd("q");
  EXPECT_FLOAT_EQ(kind.scale(q.dim(3)), scale) << what;
  Tensor lse;
  const Tensor out = attention::block_sparse_attention(q, blhd("k"), blhd("v"), s, scale, &lse);
  const std::vector<float> got = out.squeeze(0).permute({1, 0, 2}).contiguous().to_vector();
  const std::vector<float> ref = data.get("out").to_vector();
  double max_err = 0, max_ref = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    max_err = std::max(max_err, double(std::fabs(got[i] - ref[i])));
    max_ref = std::max(max_ref, double(std::fabs(ref[i])));
  }
  EXPECT_LE(max_err, std::max(1e-5, 1e-4 * max_ref)) << what;
  const std::vector<float> lse_got = lse.squeeze(0).to_vector(), lse_ref = data.get("lse").to_vector();
  double lse_err = 0;
  for (size_t i = 0; i < lse_ref.size(); ++i) lse_err = std::max(lse_err, double(std::fabs(lse_got[i] - lse_ref[i])));
  EXPECT_LE(lse_err, 1e-5) << what;
  std::printf("[ %s ] %s: out max err %.3g (max |out| %.3g), lse max err %.3g\n", kind.name().c_str(), what.c_str(),
              max_err, max_ref, lse_err);
}

}  // namespace ditkit::test
