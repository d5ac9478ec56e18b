// Division by a divisor fixed at launch, for 32-bit index math in kernels
// (the elementwise program kernel, Rope): a multiply-high, an add and a
// shift instead of a ~20-instruction integer division.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

namespace tessera::cuda {

// n / d for n < 2^31 by a multiply and shift (the 32-bit index math of the
// elementwise and Rope kernels): s = ceil(log2 d),
// m = floor(2^32 (2^s - d) / d) + 1, q = (umulhi(n, m) + n) >> s.
struct FastDiv {
  uint32_t d = 1, m = 1, s = 0;
  __host__ __device__ __forceinline__ uint32_t div(uint32_t n) const {
#ifdef __CUDA_ARCH__
    return (__umulhi(n, m) + n) >> s;
#else  // the same arithmetic on the host (tests/cpp/fast_div_test.cc checks it against '/')
    return uint32_t(((uint64_t(n) * m >> 32) + n) >> s);
#endif
  }
};
inline FastDiv make_fastdiv(uint32_t d) {
  FastDiv f;
  f.d = d;
  while ((uint64_t(1) << f.s) < d) ++f.s;
  f.m = uint32_t(((uint64_t(1) << 32) * ((uint64_t(1) << f.s) - d)) / d + 1);
  return f;
}

}  // namespace tessera::cuda
