// Register-resident LayerNorm / RMSNormalization rows for normalization.cu:
// the common transformer case (f16/bf16/f32, a row of at most 1024 16-byte
// chunks, 16-byte aligned rows, scale and bias spanning the whole row).
//
// A block owns a row (W = false), or, for rows of at most 32·kMaxChunks
// chunks (GPT-2's 768), a warp does (W = true: kWarpRows rows a block, the
// statistics by shuffles alone: a block's two reductions cost six barriers,
// which held GPT-2's LayerNorm at 44% of DRAM bandwidth on the H200). Each
// thread loads its C chunks of 16 bytes once, keeps them in registers for the
// statistics and the output, and writes its output chunk in 8-, 16- or
// 32-byte stores of the output's compile-time dtype.
// The general kernels in normalization.cu read the row twice and store one
// element at a time through a run-time dtype switch; on an H200 they reached
// ~15% of copy bandwidth on Llama's [2048, 4096] bf16 rows.
//
// Statistics in f32: RMS is sum(x^2) then 1/sqrt(mean + eps); LayerNorm is
// two passes over the registers (mean, then the mean of squared deviations),
// which does not cancel when |mean| >> std. Outputs round once from f32.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "backend/cuda/kernels/reduce_util.cuh"
#include "backend/cuda/pdl.cuh"

namespace tessera::cuda::norm_rows {

// Chunks of 16 bytes per thread: the row's chunks over at most 256 threads.
constexpr int kMaxThreads = 256;
constexpr int kMaxChunks = 4;

struct Sum {
  float s;
  __device__ Sum shfl(int mask) const { return {shfl_xor(s, mask)}; }
};
__device__ __forceinline__ float block_sum(float v) {
  return block_all_reduce(Sum{v}, [](Sum& a, const Sum& b) { a.s += b.s; }).s;
}

constexpr int kWarpRows = 4;  // rows of a block when a warp owns a row

// The threads of one row: the block (W = false) or a warp (W = true). Chunk c of the
// thread is index tid + c·nt; rows first, first + step, ...
template <bool W>
struct Team {
  int tid, nt;
  int64_t first, step;
  __device__ Team()
      : tid(W ? int(threadIdx.x & 31) : int(threadIdx.x)),
        nt(W ? 32 : int(blockDim.x)),
        first(W ? int64_t(blockIdx.x) * (blockDim.x >> 5) + (threadIdx.x >> 5) : int64_t(blockIdx.x)),
        step(W ? int64_t(gridDim.x) * (blockDim.x >> 5) : int64_t(gridDim.x)) {}
  __device__ float sum(float v) const {
    if constexpr (W) return warp_all_reduce(Sum{v}, [](Sum& a, const Sum& b) { a.s += b.s; }).s;
    else return block_sum(v);
  }
};

// N values of type O from/to memory in one or two vector accesses (N·sizeof(O) is 8, 16 or 32 bytes).
template <typename O, int N>
struct Vec {
  O v[N];
};
template <typename O, int N>
__device__ __forceinline__ Vec<O, N> load_vec(const O* p) {
  Vec<O, N> r;
  constexpr int bytes = N * int(sizeof(O));
  static_assert(bytes == 8 || bytes == 16 || bytes == 32);
  if constexpr (bytes == 8) {
    *reinterpret_cast<uint2*>(r.v) = __ldg(reinterpret_cast<const uint2*>(p));
  } else {
#pragma unroll
    for (int w = 0; w < bytes / 16; ++w) reinterpret_cast<uint4*>(r.v)[w] = __ldg(reinterpret_cast<const uint4*>(p) + w);
  }
  return r;
}
template <typename O, int N>
__device__ __forceinline__ void store_vec(O* p, const Vec<O, N>& r) {
  constexpr int bytes = N * int(sizeof(O));
  if constexpr (bytes == 8) {
    *reinterpret_cast<uint2*>(p) = *reinterpret_cast<const uint2*>(r.v);
  } else {
#pragma unroll
    for (int w = 0; w < bytes / 16; ++w) reinterpret_cast<uint4*>(p)[w] = reinterpret_cast<const uint4*>(r.v)[w];
  }
}

template <typename O>
__device__ __forceinline__ O from_f32(float v) {
  if constexpr (std::is_same_v<O, __half>) return __float2half(v);
  else if constexpr (std::is_same_v<O, __nv_bfloat16>) return __float2bfloat16(v);
  else return v;
}

// The thread's chunks of a row: chunk c is index tid + c·nt (valid below nv).
template <typename T, int C>
struct Row {
  static constexpr int V = 16 / int(sizeof(T));
  uint4 raw[C];
  __device__ float at(int c, int k) const { return float(reinterpret_cast<const T*>(&raw[c])[k]); }
  __device__ void load(const T* row, int nv, int tid, int nt) {
    const uint4* p = reinterpret_cast<const uint4*>(row);
#pragma unroll
    for (int c = 0; c < C; ++c) {
      int i = tid + c * nt;
      raw[c] = i < nv ? __ldg(p + i) : make_uint4(0, 0, 0, 0);  // zeros add nothing to the sums
    }
  }
};

// The residual of the Skip norms (ops/skip_norm.cc), or p null: row r's values are X[r] +
// skip[r % rows], rounded to X's dtype as the unfused Add writes them, and stored into
// sum (when not null) before they are normalised.
template <typename T>
struct Skip {
  const T* p = nullptr;
  int64_t rows = 1;
  T* sum = nullptr;
};

// Adds row r of `skip` to the thread's chunks of row r (see Skip).
template <typename T, int C>
__device__ __forceinline__ void add_skip(Row<T, C>& row, const Skip<T>& skip, int64_t r, int n, int nv, int tid, int nt) {
  constexpr int V = Row<T, C>::V;
  const uint4* sp = reinterpret_cast<const uint4*>(skip.p + (r % skip.rows) * n);
#pragma unroll
  for (int c = 0; c < C; ++c) {
    const int i = tid + c * nt;
    if (i >= nv) continue;
    const uint4 sraw = __ldg(sp + i);
    const T* se = reinterpret_cast<const T*>(&sraw);
    T* xe = reinterpret_cast<T*>(&row.raw[c]);
#pragma unroll
    for (int k = 0; k < V; ++k) xe[k] = from_f32<T>(float(xe[k]) + float(se[k]));
    if (skip.sum) reinterpret_cast<uint4*>(skip.sum + r * n)[i] = row.raw[c];
  }
}

// Y[r] = X[r] / sqrt(mean(X[r]^2) + eps) * scale, Y and scale of dtype O.
template <typename T, typename O, int C, bool W>
__global__ void __launch_bounds__(kMaxThreads) rms_norm(const T* __restrict__ x, O* __restrict__ y,
                                                        const O* __restrict__ scale, int64_t rows, int n, float eps,
                                                        Skip<T> skip) {
  pdl_enter();
  constexpr int V = Row<T, C>::V;
  const int nv = n / V;
  const Team<W> team;
  for (int64_t r = team.first; r < rows; r += team.step) {
    Row<T, C> row;
    row.load(x + r * n, nv, team.tid, team.nt);
    if (skip.p) add_skip(row, skip, r, n, nv, team.tid, team.nt);
    float ss = 0.0f;
#pragma unroll
    for (int c = 0; c < C; ++c)
#pragma unroll
      for (int k = 0; k < V; ++k) ss += row.at(c, k) * row.at(c, k);
    const float inv = 1.0f / sqrtf(team.sum(ss) / float(n) + eps);
#pragma unroll
    for (int c = 0; c < C; ++c) {
      int i = team.tid + c * team.nt;
      if (i >= nv) continue;
      Vec<O, V> s = load_vec<O, V>(scale + int64_t(i) * V), out;
#pragma unroll
      for (int k = 0; k < V; ++k) out.v[k] = from_f32<O>(row.at(c, k) * inv * float(s.v[k]));
      store_vec<O, V>(y + r * n + int64_t(i) * V, out);
    }
  }
}

// Y[r] = (X[r] - mean) / sqrt(var + eps) * scale (+ bias), all of dtype T; Mean and InvStdDev if asked.
template <typename T, int C, bool W>
__global__ void __launch_bounds__(kMaxThreads) layer_norm(const T* __restrict__ x, T* __restrict__ y,
                                                          const T* __restrict__ scale, const T* __restrict__ bias,
                                                          FloatOut mean_out, FloatOut inv_out, int64_t rows, int n,
                                                          float eps, Skip<T> skip) {
  pdl_enter();
  constexpr int V = Row<T, C>::V;
  const int nv = n / V;
  const Team<W> team;
  for (int64_t r = team.first; r < rows; r += team.step) {
    Row<T, C> row;
    row.load(x + r * n, nv, team.tid, team.nt);
    if (skip.p) add_skip(row, skip, r, n, nv, team.tid, team.nt);
    float s = 0.0f;
#pragma unroll
    for (int c = 0; c < C; ++c)
#pragma unroll
      for (int k = 0; k < V; ++k) s += row.at(c, k);
    const float mean = team.sum(s) / float(n);
    float d2 = 0.0f;
#pragma unroll
    for (int c = 0; c < C; ++c) {
      if (team.tid + c * team.nt >= nv) continue;  // padding zeros are not (0 - mean)^2
#pragma unroll
      for (int k = 0; k < V; ++k) {
        float d = row.at(c, k) - mean;
        d2 += d * d;
      }
    }
    const float inv = 1.0f / sqrtf(team.sum(d2) / float(n) + eps);
#pragma unroll
    for (int c = 0; c < C; ++c) {
      int i = team.tid + c * team.nt;
      if (i >= nv) continue;
      Vec<T, V> sc = load_vec<T, V>(scale + int64_t(i) * V), b{}, out;
      if (bias) b = load_vec<T, V>(bias + int64_t(i) * V);
#pragma unroll
      for (int k = 0; k < V; ++k) {
        float v = (row.at(c, k) - mean) * inv * float(sc.v[k]);
        if (bias) v += float(b.v[k]);
        out.v[k] = from_f32<T>(v);
      }
      store_vec<T, V>(y + r * n + int64_t(i) * V, out);
    }
    if (team.tid == 0) {
      if (mean_out.p) mean_out.put(r, mean);
      if (inv_out.p) inv_out.put(r, inv);
    }
  }
}

// Threads a block, chunks per thread and whether a warp owns a row, for rows of nv 16-byte
// chunks; chunks 0 when the row is too long.
struct Launch {
  int threads = 0, chunks = 0;
  bool warp = false;
  // Blocks for `rows` rows (at most 2^20; the kernels step over the rest).
  unsigned grid(int64_t rows) const {
    const int64_t b = warp ? (rows + kWarpRows - 1) / kWarpRows : rows;
    return unsigned(b < (int64_t(1) << 20) ? b : (int64_t(1) << 20));
  }
};
inline Launch launch_for(int64_t nv) {
  for (int c = 1; c <= kMaxChunks; c *= 2)
    if (nv <= int64_t(c) * 32) return {32 * kWarpRows, c, true};
  for (int c = 1; c <= kMaxChunks; c *= 2)
    if (nv <= int64_t(c) * kMaxThreads) return {int((nv + c - 1) / c + 31) / 32 * 32, c, false};
  return {};
}

}  // namespace tessera::cuda::norm_rows
