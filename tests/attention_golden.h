// Shared by the attention kind tests: checks a rule's classify() against a mask, and runs a kind's schedule on a golden's q/k/v through the
// block-sparse engine and checks out and lse against the golden within its README's float32
// tolerance (out: 1e-5 abs or 1e-4 of max|out|; lse: 1e-5).
#pragma once
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

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

// The true class of every q_block x k_block block of `mask` [lq x lk] equals classify().
inline void expect_exact_classes(const attention::MaskRule& rule, const std::vector<uint8_t>& mask, int64_t lq, int64_t lk,
                          int64_t q_block, int64_t k_block) {
  for (int64_t q0 = 0; q0 < lq; q0 += q_block)
    for (int64_t k0 = 0; k0 < lk; k0 += k_block) {
      const int64_t q1 = std::min(q0 + q_block, lq), k1 = std::min(k0 + k_block, lk);
      int64_t visible = 0;
      for (int64_t q = q0; q < q1; ++q)
        for (int64_t k = k0; k < k1; ++k) visible += mask[size_t(q * lk + k)];
      const attention::BlockClass want = visible == 0                       ? attention::BlockClass::Empty
                              : visible == (q1 - q0) * (k1 - k0) ? attention::BlockClass::Full
                                                                 : attention::BlockClass::Partial;
      ASSERT_EQ(int(rule.classify(q0, q1, k0, k1)), int(want))
          << "block " << q_block << "x" << k_block << " at " << q0 << ", " << k0;
    }
}

}  // namespace ditkit::test
