// Helpers for CUDA kernel files: dtype dispatch to device types, float
// conversion (f16/bf16 are computed in f32, as DESIGN.md asks), broadcast
// index maps, and the launch shape for flat element loops.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "backend/cuda/kernel_registry.h"

namespace tessera::cuda {

// Call f.template operator()<T>() with T the device type of `t`
// (__half, __nv_bfloat16, float, double, int64_t, int32_t, int8_t, uint8_t, bool).
template <typename F>
decltype(auto) visit_device_dtype(DType t, F&& f) {
  switch (t) {
    case DType::f32: return f.template operator()<float>();
    case DType::f16: return f.template operator()<__half>();
    case DType::bf16: return f.template operator()<__nv_bfloat16>();
    case DType::f64: return f.template operator()<double>();
    case DType::i64: return f.template operator()<int64_t>();
    case DType::i32: return f.template operator()<int32_t>();
    case DType::i8: return f.template operator()<int8_t>();
    case DType::u8: return f.template operator()<uint8_t>();
    case DType::boolean: return f.template operator()<bool>();
  }
  fail(ErrorKind::Internal, "unknown dtype");
}

// Compute type: f16/bf16 → float, everything else itself.
template <typename T> struct Compute { using type = T; };
template <> struct Compute<__half> { using type = float; };
template <> struct Compute<__nv_bfloat16> { using type = float; };
template <typename T> using compute_t = typename Compute<T>::type;

template <typename T>
__device__ __forceinline__ compute_t<T> load(const T* p, int64_t i) {
  if constexpr (std::is_same_v<T, __half>) return __half2float(p[i]);
  else if constexpr (std::is_same_v<T, __nv_bfloat16>) return __bfloat162float(p[i]);
  else return p[i];
}
template <typename T, typename V>
__device__ __forceinline__ void store(T* p, int64_t i, V v) {
  if constexpr (std::is_same_v<T, __half>) p[i] = __float2half(float(v));
  else if constexpr (std::is_same_v<T, __nv_bfloat16>) p[i] = __float2bfloat16(float(v));
  else p[i] = T(v);
}

// Up to kMaxDims dims: maps a flat output index to an input offset through
// (possibly zero, for broadcast) strides. Passed to kernels by value.
constexpr int kMaxDims = 8;
struct IndexMap {
  int rank = 0;
  int64_t sizes[kMaxDims] = {};    // output dims
  int64_t strides[kMaxDims] = {};  // input element strides per output dim
  __host__ __device__ int64_t offset(int64_t flat) const {
    int64_t off = 0;
    for (int d = rank - 1; d >= 0; --d) {
      int64_t q = flat / sizes[d];
      off += (flat - q * sizes[d]) * strides[d];
      flat = q;
    }
    return off;
  }
};

// Row-major strides of `in` read as if broadcast to `out` (0 along broadcast dims).
IndexMap broadcast_map(const Shape& in, const Shape& out);
// Row-major contiguous strides of `shape` (an identity map).
IndexMap contiguous_map(const Shape& shape);
// broadcast_map of a column block [..., start : start + width] of a tensor of
// shape `in` (start is the caller's pointer offset): the outer dims step whole
// rows of in's last dim.
IndexMap block_map(const Shape& in, int64_t width, const Shape& out);

// Grid for a flat loop of n elements with 256-thread blocks (grid-stride loops
// cover the rest when n is huge).
inline unsigned blocks_for(int64_t n, int threads = 256) {
  int64_t b = (n + threads - 1) / threads;
  return unsigned(b < 1 ? 1 : (b > 65535 * 8 ? 65535 * 8 : b));
}

// Whether `p` (null counts) is 16-byte aligned, as the vectorised (uint4) paths need.
inline bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

// After a launch: turn a launch error into a tessera error naming the node.
void check_launch(const KernelContext& ctx);

}  // namespace tessera::cuda
