#include <gtest/gtest.h>

#include "core/dtype.h"
#include "core/error.h"
#include "core/tensor.h"

using namespace tessera;

TEST(DType, HalfRoundTrip) {
  for (float f : {0.0f, 1.0f, -2.5f, 65504.0f, 6.1035e-05f, 1e-7f})
    EXPECT_NEAR(f16_to_f32(f32_to_f16(f)), f, std::abs(f) * 1e-3 + 1e-7) << f;
  EXPECT_EQ(bf16_to_f32(f32_to_bf16(3.0f)), 3.0f);
}

TEST(Tensor, CastKeepsLargeIntegers) {
  Tensor t = Tensor::vector_i64({int64_t(1) << 53 | 1, -7});
  Tensor c = t.cast(DType::i32).cast(DType::i64);
  EXPECT_EQ(c.item_i64(1), -7);
  EXPECT_EQ(t.cast(DType::i64).item_i64(0), (int64_t(1) << 53) | 1);
}

TEST(Tensor, ReshapeChecksCount) {
  Tensor t = Tensor::zeros(DType::f32, {2, 3});
  EXPECT_EQ(t.reshaped({3, 2}).dim(0), 3);
  EXPECT_THROW(t.reshaped({4}), Error);
}
