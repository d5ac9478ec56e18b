// Building blocks shared by the row-reduction kernels (reduction.cu,
// normalization.cu, batchnorm.cu, topk.cu): warp and block reductions of small
// structs, a vectorised walk over one contiguous row, the (outer, n, inner)
// view of a tensor around an axis, and reads/writes of float parameter vectors
// whose dtype is only known at run time (LayerNorm's Scale may differ from X).
#pragma once
#include <cstdint>
#include <type_traits>

#include "backend/cuda/device_util.cuh"

namespace tessera::cuda {

// The tensor as [outer][n][inner] around `axis` (the CPU kernels' view).
struct Around {
  int64_t outer = 1, n = 1, inner = 1;
};
inline Around around_axis(const Shape& s, int64_t axis) {
  Around a;
  for (int64_t i = 0; i < int64_t(s.size()); ++i) (i < axis ? a.outer : i == axis ? a.n : a.inner) *= s[size_t(i)];
  return a;
}

// Rows shorter than this are reduced by one warp each (8 rows per 256-thread
// block); longer rows get a whole block.
constexpr int64_t kWarpRowMax = 1024;
constexpr int kBlockRowThreads = 512;

// __shfl_xor_sync for any arithmetic type (8- and 16-bit integers and bool
// travel as int).
template <typename A>
__device__ __forceinline__ A shfl_xor(A v, int mask) {
  if constexpr (std::is_same_v<A, float> || std::is_same_v<A, double> || std::is_same_v<A, int> ||
                std::is_same_v<A, long long> || std::is_same_v<A, unsigned>)
    return __shfl_xor_sync(0xffffffffu, v, mask);
  else if constexpr (sizeof(A) == 8)
    return A(__shfl_xor_sync(0xffffffffu, (long long)v, mask));
  else
    return A(__shfl_xor_sync(0xffffffffu, int(v), mask));
}

// Combine `s` across the warp with merge(S&, const S&); every lane gets the result.
// S provides `shfl(mask)` returning the partner lane's copy.
template <typename S, typename Merge>
__device__ __forceinline__ S warp_all_reduce(S s, Merge merge) {
  for (int m = 16; m > 0; m >>= 1) merge(s, s.shfl(m));
  return s;
}

// Combine `s` across the block (blockDim.x a multiple of 32, at most 1024);
// every thread gets the result. Contains __syncthreads: call from all threads.
template <typename S, typename Merge>
__device__ S block_all_reduce(S s, Merge merge) {
  __shared__ S partial[32];
  __shared__ S total;
  int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  s = warp_all_reduce(s, merge);
  if (lane == 0) partial[warp] = s;
  __syncthreads();
  if (threadIdx.x == 0) {
    // At most 32 partials: a short serial merge needs no identity element.
    S t = partial[0];
    for (int w = 1; w < warps; ++w) merge(t, partial[w]);
    total = t;
  }
  __syncthreads();
  S r = total;
  __syncthreads();  // `total` may be reused by a following call
  return r;
}

// Calls f(j, v) for the elements j = tid, tid + nt, ... of row[0, n), v in
// compute_t<T>. Reads 16 bytes at a time when the row start is 16-aligned.
template <typename T, typename F>
__device__ __forceinline__ void for_row(const T* row, int64_t n, int tid, int nt, F&& f) {
  constexpr int V = sizeof(T) >= 16 ? 1 : int(16 / sizeof(T));
  int64_t done = 0;
  if constexpr (V > 1) {
    if ((reinterpret_cast<uintptr_t>(row) & 15) == 0) {
      int64_t nv = n / V;
      const uint4* pv = reinterpret_cast<const uint4*>(row);
      for (int64_t i = tid; i < nv; i += nt) {
        uint4 raw = pv[i];
        const T* e = reinterpret_cast<const T*>(&raw);
#pragma unroll
        for (int k = 0; k < V; ++k) f(i * V + k, load(e, k));
      }
      done = nv * V;
    }
  }
  for (int64_t j = done + tid; j < n; j += nt) f(j, load(row, j));
}

// Mean and variance: Welford (count, mean, M2) per thread, merged with
// Chan's formula, which does not cancel the way sum and sum-of-squares can
// when |mean| >> std.
template <typename A>
struct Welford {
  A n, mean, m2;
  __device__ Welford shfl(int mask) const { return {shfl_xor(n, mask), shfl_xor(mean, mask), shfl_xor(m2, mask)}; }
  __device__ void add(A v) {
    n += A(1);
    A d = v - mean;
    mean += d / n;
    m2 += d * (v - mean);
  }
  __device__ static void merge(Welford& a, const Welford& b) {
    A n = a.n + b.n;
    if (n == A(0)) return;
    A d = b.mean - a.mean, fb = b.n / n;
    a = {n, a.mean + d * fb, a.m2 + b.m2 + d * d * a.n * fb};
  }
};

// A float vector (Scale, B, mean, var) of any float dtype, read as A.
struct ParamVec {
  const void* p = nullptr;
  DType dtype = DType::f32;
  int64_t n = 1;
  template <typename A>
  __device__ __forceinline__ A at(int64_t i) const {
    switch (dtype) {
      case DType::f16: return A(__half2float(static_cast<const __half*>(p)[i]));
      case DType::bf16: return A(__bfloat162float(static_cast<const __nv_bfloat16*>(p)[i]));
      case DType::f64: return A(static_cast<const double*>(p)[i]);
      default: return A(static_cast<const float*>(p)[i]);
    }
  }
};

// A float output whose dtype is only known at run time (LayerNorm's Mean and
// InvStdDev follow stash_type; RMSNormalization's Y follows Scale).
struct FloatOut {
  void* p = nullptr;
  DType dtype = DType::f32;
  template <typename A>
  __device__ __forceinline__ void put(int64_t i, A v) const {
    switch (dtype) {
      case DType::f16: static_cast<__half*>(p)[i] = __float2half(float(v)); break;
      case DType::bf16: static_cast<__nv_bfloat16*>(p)[i] = __float2bfloat16(float(v)); break;
      case DType::f64: static_cast<double*>(p)[i] = double(v); break;
      default: static_cast<float*>(p)[i] = float(v); break;
    }
  }
};

// A host-side ParamVec / FloatOut for a float tensor, or an error naming it.
inline ParamVec param_vec(const KernelContext& ctx, size_t input, const char* what) {
  const Tensor& t = ctx.input(input);
  if (!is_float(t.dtype())) ctx.error(what, " is ", dtype_name(t.dtype()), ", expected a float type");
  return {t.raw(), t.dtype(), t.numel()};
}
inline FloatOut float_out(const KernelContext& ctx, size_t output) {
  Tensor& t = ctx.output(output);
  if (!is_float(t.dtype())) ctx.error("output ", output, " is ", dtype_name(t.dtype()), ", expected a float type");
  return {t.raw(), t.dtype()};
}

}  // namespace tessera::cuda
