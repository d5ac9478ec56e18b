// See gemm_util.h.
#include <algorithm>

#include "backend/cuda/device_util.cuh"
#include "backend/cuda/fast_div.cuh"
#include "backend/cuda/kernels/gemm_act.cuh"
#include "backend/cuda/kernels/gemm_util.h"
#include "backend/cuda/pdl.cuh"

namespace tessera::cuda {
namespace {

template <typename T>
__global__ void broadcast_copy_kernel(const T* in, IndexMap map, T* out, int64_t total) {
  pdl_enter();
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x)
    out[i] = in[map.offset(i)];
}

template <typename T>
__global__ void epilogue_kernel(T* out, int64_t total, int64_t n, compute_t<T> scale, const T* bias, GemmAct act) {
  pdl_enter();
  using C = compute_t<T>;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    C x = scale * load(out, i);
    if (bias) x += load(bias, i % n);
    store(out, i, gemm_activate<C>(x, act));
  }
}

// The same per element, 16 bytes a thread (n a multiple of the vector width,
// pointers aligned): one column index per chunk instead of a 64-bit modulo
// per element. On an H200 the scalar kernel took ~0.2 ms for GELU over
// [2048, 16384] bf16, at ~1/6 of copy bandwidth.
template <typename T>
__global__ void epilogue_vec_kernel(T* out, int64_t total, int64_t n, compute_t<T> scale, const T* bias, GemmAct act) {
  pdl_enter();
  using C = compute_t<T>;
  constexpr int V = 16 / int(sizeof(T));
  for (int64_t c = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; c < total / V; c += int64_t(gridDim.x) * blockDim.x) {
    uint4 raw = reinterpret_cast<const uint4*>(out)[c], braw{};
    if (bias) braw = __ldg(reinterpret_cast<const uint4*>(bias + (c * V) % n));
    T* e = reinterpret_cast<T*>(&raw);
    const T* be = reinterpret_cast<const T*>(&braw);
#pragma unroll
    for (int k = 0; k < V; ++k) {
      C x = scale * load(e, k);
      if (bias) x += load(be, k);
      store(e, k, gemm_activate<C>(x, act));
    }
    reinterpret_cast<uint4*>(out)[c] = raw;
  }
}

// out's 16-byte chunk c (V elements, flat index o = c·V) from where its elements sit in the
// padded rows: a row end inside the chunk moves on to the next row. 32-bit indices (the caller
// checks rows·ld < 2^31); the reads are 2- or 4-byte but consecutive across a warp. The
// driver's 2-D copy with GPT-2's odd pitch (50257 columns) ran at ~2/3 of copy bandwidth.
template <typename T>
__global__ void unpad_rows_kernel(const T* __restrict__ padded, uint32_t ld, T* __restrict__ out, FastDiv n, uint32_t total) {
  pdl_enter();
  constexpr uint32_t V = 16 / sizeof(T);
  const uint32_t chunks = total / V;
  for (uint32_t c = blockIdx.x * blockDim.x + threadIdx.x; c < chunks; c += gridDim.x * blockDim.x) {
    const uint32_t o = c * V;
    uint32_t r = n.div(o), col = o - r * n.d;
    uint4 raw;
    T* e = reinterpret_cast<T*>(&raw);
#pragma unroll
    for (uint32_t k = 0; k < V; ++k) {
      e[k] = padded[r * ld + col];
      if (++col == n.d) col = 0, ++r;
    }
    reinterpret_cast<uint4*>(out)[c] = raw;
  }
  for (uint32_t o = chunks * V + blockIdx.x * blockDim.x + threadIdx.x; o < total; o += gridDim.x * blockDim.x) {
    const uint32_t r = n.div(o);
    out[o] = padded[r * ld + (o - r * n.d)];
  }
}

// One block per row (a grid-stride loop over rows), a warp per edge column:
// the row's phase gives its aligned span, the columns outside it are dot
// products of A's row with B's rows, lanes striding over k.
template <typename T>
__global__ void edge_columns_kernel(const T* __restrict__ a, const T* __restrict__ b, const T* __restrict__ bias,
                                    T* __restrict__ out, int64_t m, int64_t n, int64_t k, PhaseSpans spans, float alpha,
                                    GemmAct act) {
  pdl_enter();
  const int warp = int(threadIdx.x) / 32, lane = int(threadIdx.x) % 32, warps = int(blockDim.x) / 32;
  for (int64_t r = blockIdx.x; r < m; r += gridDim.x) {
    const int64_t j = r % spans.phases;
    const int64_t col0 = spans.col0[j], end = col0 + spans.cols[j];
    const int64_t edges = col0 + (n - end);
    const T* ar = a + r * k;
    for (int64_t e = warp; e < edges; e += warps) {
      const int64_t c = e < col0 ? e : end + (e - col0);
      const T* bc = b + c * k;
      float acc = 0.f;
      for (int64_t i = lane; i < k; i += 32) acc += float(load(ar, i)) * float(load(bc, i));
      for (int off = 16; off > 0; off /= 2) acc += __shfl_xor_sync(0xffffffffu, acc, off);
      if (lane != 0) continue;
      float x = alpha * acc;
      if (bias) x += float(load(bias, c));
      store(out, r * n + c, gemm_activate<float>(x, act));
    }
  }
}

template <typename T>
__global__ void integer_gemm_kernel(int64_t count, int64_t m, int64_t n, int64_t k, bool ta, bool tb, const T* a,
                                    IndexMap amap, const T* b, IndexMap bmap, T alpha, T beta, T* out) {
  pdl_enter();
  for (int64_t idx = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; idx < count; idx += int64_t(gridDim.x) * blockDim.x) {
    int64_t bi = idx / (m * n), r = idx - bi * (m * n), i = r / n, j = r - i * n;
    const T* pa = a + amap.offset(bi) * m * k;
    const T* pb = b + bmap.offset(bi) * k * n;
    T acc = 0;
    for (int64_t p = 0; p < k; ++p) acc += pa[ta ? p * m + i : i * k + p] * pb[tb ? j * k + p : p * n + j];
    out[idx] = T(alpha * acc + (beta == T(0) ? T(0) : beta * out[idx]));
  }
}

}  // namespace

cudaError_t gemm_broadcast_copy(const void* in, const Shape& in_shape, void* out, const Shape& out_shape,
                                size_t elem_bytes, cudaStream_t s) {
  int64_t total = numel(out_shape);
  if (total == 0) return cudaSuccess;
  IndexMap map = broadcast_map(in_shape, out_shape);
  auto launch = [&]<typename T>() {
    launch_kernel(broadcast_copy_kernel<T>, blocks_for(total), 256, 0, s, static_cast<const T*>(in), map,
                  static_cast<T*>(out), total);
  };
  switch (elem_bytes) {
    case 1: launch.template operator()<uint8_t>(); break;
    case 2: launch.template operator()<uint16_t>(); break;
    case 4: launch.template operator()<uint32_t>(); break;
    case 8: launch.template operator()<uint64_t>(); break;
    default: fail(ErrorKind::Internal, "gemm_broadcast_copy: element size ", elem_bytes);
  }
  return cudaGetLastError();
}

cudaError_t gemm_epilogue(void* out, DType dtype, int64_t total, int64_t n, double scale, const void* bias,
                          GemmAct act, cudaStream_t s) {
  if (total == 0) return cudaSuccess;
  visit_device_dtype(dtype, [&]<typename T>() {
    if constexpr (std::is_floating_point_v<compute_t<T>>) {
      constexpr int64_t V = 16 / int64_t(sizeof(T));
      bool vec = sizeof(T) <= 4 && n % V == 0 && aligned16(out) && aligned16(bias);
      if (vec) {
        launch_kernel(epilogue_vec_kernel<T>, blocks_for(total / V), 256, 0, s, static_cast<T*>(out), total, n,
                      compute_t<T>(scale), static_cast<const T*>(bias), act);
        return;
      }
      launch_kernel(epilogue_kernel<T>, blocks_for(total), 256, 0, s, static_cast<T*>(out), total, n,
                    compute_t<T>(scale), static_cast<const T*>(bias), act);
    } else {
      fail(ErrorKind::Internal, "gemm_epilogue on ", dtype_name(dtype));
    }
  });
  return cudaGetLastError();
}

cudaError_t gemm_unpad_rows(const void* padded, int64_t ld, void* out, int64_t rows, int64_t n, size_t elem_bytes,
                            cudaStream_t s) {
  const bool fits = (elem_bytes == 2 || elem_bytes == 4) && aligned16(padded) && aligned16(out) && n > 0 && ld >= n &&
                    rows * ld < (int64_t(1) << 31);
  if (!fits)
    return cudaMemcpy2DAsync(out, size_t(n) * elem_bytes, padded, size_t(ld) * elem_bytes, size_t(n) * elem_bytes,
                             size_t(rows), cudaMemcpyDeviceToDevice, s);
  const uint32_t total = uint32_t(rows * n);
  const unsigned grid = blocks_for(std::max<int64_t>(total / (16 / elem_bytes), 1));
  if (elem_bytes == 2)
    launch_kernel(unpad_rows_kernel<uint16_t>, grid, 256, 0, s, static_cast<const uint16_t*>(padded), uint32_t(ld),
                  static_cast<uint16_t*>(out), make_fastdiv(uint32_t(n)), total);
  else
    launch_kernel(unpad_rows_kernel<uint32_t>, grid, 256, 0, s, static_cast<const uint32_t*>(padded), uint32_t(ld),
                  static_cast<uint32_t*>(out), make_fastdiv(uint32_t(n)), total);
  return cudaGetLastError();
}

cudaError_t gemm_edge_columns(DType dtype, const void* a, const void* b, const void* bias, void* out, int64_t m,
                              int64_t n, int64_t k, const PhaseSpans& spans, float alpha, GemmAct act, cudaStream_t s) {
  if (m == 0 || n == 0) return cudaSuccess;
  const unsigned grid = unsigned(std::min<int64_t>(m, 65535));
  visit_device_dtype(dtype, [&]<typename T>() {
    if constexpr (std::is_same_v<T, float> || std::is_same_v<T, __half> || std::is_same_v<T, __nv_bfloat16>) {
      launch_kernel(edge_columns_kernel<T>, grid, 128, 0, s, static_cast<const T*>(a), static_cast<const T*>(b),
                    static_cast<const T*>(bias), static_cast<T*>(out), m, n, k, spans, alpha, act);
    } else {
      fail(ErrorKind::Internal, "gemm_edge_columns on ", dtype_name(dtype));
    }
  });
  return cudaGetLastError();
}

cudaError_t gemm_integer(DType dtype, const Shape& batch, const Shape& a_batch, const Shape& b_batch, int64_t m,
                         int64_t n, int64_t k, bool ta, bool tb, const void* a, const void* b, int64_t alpha,
                         int64_t beta, void* out, cudaStream_t s) {
  int64_t count = numel(batch) * m * n;
  if (count == 0) return cudaSuccess;
  IndexMap amap = broadcast_map(a_batch, batch), bmap = broadcast_map(b_batch, batch);
  visit_device_dtype(dtype, [&]<typename T>() {
    if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
      launch_kernel(integer_gemm_kernel<T>, blocks_for(count), 256, 0, s, count, m, n, k, ta, tb,
                    static_cast<const T*>(a), amap, static_cast<const T*>(b), bmap, T(alpha), T(beta),
                    static_cast<T*>(out));
    } else {
      fail(ErrorKind::Internal, "gemm_integer on ", dtype_name(dtype));
    }
  });
  return cudaGetLastError();
}

}  // namespace tessera::cuda
