// The scalar semantics of the elementwise program ops (ew_program.h), one
// template per op so that both program kernels share them: the general
// interpreter (ew_kernel.cu) dispatches on the op per instruction, the float
// kernel (ew_fast.cu) once per instruction for a whole vector of elements.
// They mirror the CPU reference kernels (backend/cpu/kernels/elementwise.cc).
#pragma once
#include <cuda_runtime.h>

#include <type_traits>

#include "backend/cuda/kernels/ew_program.h"

namespace tessera::cuda {

// The unary ops with float semantics (C = float or double), attributes a / b.
#define TESSERA_EW_UNARY_OPS(X)                                                                                 \
  X(neg) X(abs) X(exp) X(log) X(sqrt) X(reciprocal) X(tanh) X(erf) X(sigmoid) X(relu) X(sin) X(cos) X(floor)   \
  X(ceil) X(round) X(sign) X(softsign) X(hard_swish) X(softplus) X(mish) X(leaky_relu) X(hard_sigmoid) X(elu) \
  X(celu) X(selu) X(gelu) X(gelu_tanh)
// Binary ops whose result has the operands' kind (div_const reads only x).
#define TESSERA_EW_BINARY_OPS(X) X(add) X(sub) X(mul) X(div) X(div_const) X(pow) X(max) X(min) X(fmod) X(mod)
// Binary ops with a bool result.
#define TESSERA_EW_COMPARE_OPS(X) \
  X(equal) X(less) X(greater) X(less_equal) X(greater_equal) X(logical_and) X(logical_or) X(logical_xor)

template <typename C> __device__ __forceinline__ C ew_clamp(C v, C lo, C hi) { return v < lo ? lo : (hi < v ? hi : v); }

template <EwOp OP, typename C>
__device__ __forceinline__ C ew_unary_op(C x, float fa, float fb) {
  const C a = C(fa), b = C(fb), zero = C(0), one = C(1);
  if constexpr (OP == EwOp::neg) return -x;
  else if constexpr (OP == EwOp::abs) return fabs(x);
  else if constexpr (OP == EwOp::exp) return exp(x);
  else if constexpr (OP == EwOp::log) return log(x);
  else if constexpr (OP == EwOp::sqrt) return sqrt(x);
  else if constexpr (OP == EwOp::reciprocal) return one / x;
  else if constexpr (OP == EwOp::tanh) return tanh(x);
  else if constexpr (OP == EwOp::erf) return erf(x);
  else if constexpr (OP == EwOp::sigmoid) return one / (one + exp(-x));
  else if constexpr (OP == EwOp::relu) return x > zero ? x : zero;
  else if constexpr (OP == EwOp::sin) return sin(x);
  else if constexpr (OP == EwOp::cos) return cos(x);
  else if constexpr (OP == EwOp::floor) return floor(x);
  else if constexpr (OP == EwOp::ceil) return ceil(x);
  else if constexpr (OP == EwOp::round) return rint(x);  // half to even, like std::nearbyint
  else if constexpr (OP == EwOp::sign) return x > zero ? one : (x < zero ? -one : zero);
  else if constexpr (OP == EwOp::softsign) return x / (one + fabs(x));
  else if constexpr (OP == EwOp::hard_swish) return x * ew_clamp(x / C(6) + C(0.5), zero, one);
  else if constexpr (OP == EwOp::softplus) return x > C(30) ? x : log1p(exp(x));
  else if constexpr (OP == EwOp::mish) return x * tanh(x > C(30) ? x : log1p(exp(x)));
  else if constexpr (OP == EwOp::leaky_relu) return x >= zero ? x : x * a;
  else if constexpr (OP == EwOp::hard_sigmoid) return ew_clamp(a * x + b, zero, one);
  else if constexpr (OP == EwOp::elu) return x >= zero ? x : a * expm1(x);
  else if constexpr (OP == EwOp::celu) {
    C pos = zero < x ? x : zero, neg = a * expm1(x / a);  // std::max(0, x) + std::min(0, ...)
    return pos + (neg < zero ? neg : zero);
  } else if constexpr (OP == EwOp::selu) return x > zero ? b * x : b * (a * expm1(x));
  else if constexpr (OP == EwOp::gelu) return C(0.5) * x * (one + erf(x * C(0.70710678118654752440)));
  else if constexpr (OP == EwOp::gelu_tanh)
    return C(0.5) * x * (one + tanh(C(0.79788456080286535588) * (x + C(0.044715) * x * x * x)));
  else return x;
}

// C = float, double or long long (every integer kind).
template <EwOp OP, typename C>
__device__ __forceinline__ C ew_binary_op(C x, C y, float fa) {
  constexpr bool is_int = std::is_same_v<C, long long>;
  if constexpr (OP == EwOp::add) return x + y;
  else if constexpr (OP == EwOp::sub) return x - y;
  else if constexpr (OP == EwOp::mul) return x * y;
  else if constexpr (OP == EwOp::div) {
    if constexpr (is_int) return y == 0 ? 0 : x / y;
    else return x / y;
  } else if constexpr (OP == EwOp::div_const) {
    if constexpr (is_int) return x / (long long)fa;
    else return x / C(fa);
  } else if constexpr (OP == EwOp::pow) {
    if constexpr (std::is_same_v<C, float>) {
      return powf(x, y);
    } else if constexpr (is_int) {  // exact, by squaring; a negative exponent truncates like the CPU's
      if (y < 0) return x == 1 ? 1 : (x == -1 ? ((y & 1) ? -1 : 1) : 0);
      long long r = 1, b = x;
      for (long long e = y; e > 0; e >>= 1, b *= b)
        if (e & 1) r *= b;
      return r;
    } else {
      return C(pow(double(x), double(y)));
    }
  } else if constexpr (OP == EwOp::max || OP == EwOp::min) {
    if constexpr (!is_int)  // NaN wins
      if (isnan(x) || isnan(y)) return C(NAN);
    return OP == EwOp::max ? (x < y ? y : x) : (y < x ? y : x);
  } else if constexpr (OP == EwOp::fmod) {
    if constexpr (is_int) return (long long)fmod(double(x), double(y));
    else return fmod(x, y);
  } else if constexpr (OP == EwOp::mod) {
    if constexpr (is_int) {  // sign of the divisor, like Python
      if (y == 0) return 0;
      long long r = x % y;
      return (r != 0 && ((r < 0) != (y < 0))) ? r + y : r;
    } else {
      return fmod(x, y);
    }
  } else {
    return x;
  }
}

template <EwOp OP, typename C>
__device__ __forceinline__ bool ew_compare_op(C x, C y) {
  if constexpr (OP == EwOp::equal) return x == y;
  else if constexpr (OP == EwOp::less) return x < y;
  else if constexpr (OP == EwOp::greater) return x > y;
  else if constexpr (OP == EwOp::less_equal) return x <= y;
  else if constexpr (OP == EwOp::greater_equal) return x >= y;
  else if constexpr (OP == EwOp::logical_and) return x != C(0) && y != C(0);
  else if constexpr (OP == EwOp::logical_or) return x != C(0) || y != C(0);
  else return (x != C(0)) != (y != C(0));  // logical_xor
}

}  // namespace tessera::cuda
