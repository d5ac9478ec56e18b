// FastDiv (backend/cuda/fast_div.cuh), the multiply-shift division the CUDA
// Rope and elementwise kernels index with: its host form (the device form is
// the same arithmetic through __umulhi) against '/' for every divisor up to
// 2^12 and random ones up to 2^31, on edge and random dividends below 2^31.
#ifdef TESSERA_WITH_CUDA
#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "backend/cuda/fast_div.cuh"

using tessera::cuda::FastDiv;
using tessera::cuda::make_fastdiv;

namespace {

void expect_divides(uint32_t d, std::mt19937& rng) {
  const FastDiv f = make_fastdiv(d);
  const uint32_t top = (uint32_t(1) << 31) - 1;
  std::vector<uint32_t> ns = {0, 1, d - 1, d, d + 1, 2 * d - 1, 2 * d, top, top - 1, top - top % d, top - top % d - 1};
  std::uniform_int_distribution<uint32_t> any(0, top);
  for (int i = 0; i < 64; ++i) ns.push_back(any(rng));
  for (uint32_t n : ns) {
    if (n > top) continue;  // d near 2^31: 2d - 1 wraps
    ASSERT_EQ(f.div(n), n / d) << n << " / " << d;
  }
}

}  // namespace

TEST(FastDiv, MatchesIntegerDivisionBelow2To31) {
  std::mt19937 rng(7);
  for (uint32_t d = 1; d <= 4096; ++d) expect_divides(d, rng);
  std::uniform_int_distribution<uint32_t> big(4097, uint32_t(1) << 31);
  for (int i = 0; i < 2000; ++i) expect_divides(big(rng), rng);
  for (uint32_t d : {uint32_t(1) << 20, (uint32_t(1) << 31) - 1, uint32_t(1) << 31, 50257u, 6144u, 14336u})
    expect_divides(d, rng);
}
#endif
