#include <gtest/gtest.h>

#include "core/tensor.h"

using namespace ditkit;

TEST(Tensor, ViewsShareStorage) {
  std::vector<float> v(24);
  for (int i = 0; i < 24; ++i) v[i] = float(i);
  Tensor t = Tensor::from_vector(v, {2, 3, 4});
  Tensor p = t.permute({2, 0, 1});
  EXPECT_EQ(p.shape(), (Shape{4, 2, 3}));
  EXPECT_FALSE(p.is_contiguous());
  EXPECT_EQ(p.raw(), t.raw());
  auto c = p.contiguous().to_vector();
  EXPECT_EQ(c[1], 4.0f);   // p[0,0,1] = t[0,1,0]
  EXPECT_EQ(c[3], 12.0f);  // p[0,1,0] = t[1,0,0]
  Tensor s = t.slice(2, 1, 4, 2);
  EXPECT_EQ(s.shape(), (Shape{2, 3, 2}));
  EXPECT_EQ(s.to_vector()[1], 3.0f);
}
