// See gemm_skinny.h.
//
// One block (8 warps) owns a group of output columns for every row and a
// slice of k; its warps take the slice's 32-wide k chunks in turn, and their
// fp32 accumulators meet in shared memory at the end (warp by warp, a fixed
// order). mma.sync m16n8k16 computes 16 rows (zeros past m) by 8 columns by
// 16 k. The operands come straight from global memory in registers, no
// shared-memory staging:
//
//  * A reduction may visit k in any order as long as A and B agree, so each
//    thread (g = lane / 4, t = lane % 4) reads the 8 consecutive k at
//    kb + 8t with one 16-byte load per row, and mma step s (0, 1) takes
//    words 2s and 2s + 1 of it as its k pairs {2t, 2t+1} and {2t+8, 2t+9}.
//    x rows g and g + 8 give the A fragment that way (x is small and stays
//    in L1/L2: __ldg).
//  * W[N, K]: the same 16-byte load of row n0 + g is the B fragment of
//    column g (4 n-tiles of 8 columns per warp: 32 columns a block).
//  * W[K, N]: thread (g, t) loads rows kb + 8t + 0..7 at columns
//    n0 + 8g .. +7 (eight 16-byte loads) and pairs rows (2q, 2q+1) of one
//    column with a byte permute, giving B fragments of 8 mma (column j of
//    its 8 in mma j; mma j's logical column c is physical n0 + 8c + j): 64
//    columns a block.
// W is read with __ldcs (streamed, evict first): every byte once.
#include "backend/cuda/device_util.cuh"
#include "backend/cuda/kernels/gemm_act.cuh"
#include "backend/cuda/kernels/gemm_skinny.h"
#include "backend/cuda/kernels/mma.cuh"
#include "backend/cuda/pdl.cuh"

namespace tessera::cuda {
namespace {

constexpr int kWarps = 8, kThreads = kWarps * 32;
constexpr int kChunk = 32;             // k per warp step
constexpr int kNkTiles = 4;            // W[N, K]: n-tiles of 8 per warp
constexpr int kNkCols = 8 * kNkTiles;  // columns per block
constexpr int kNkUnroll = 2;           // W[N, K]: chunks in flight per warp
constexpr int kKnCols = 64;            // W[K, N]: columns per block

__device__ __forceinline__ uint32_t word(const uint4& v, int i) {
  return i == 0 ? v.x : i == 1 ? v.y : i == 2 ? v.z : v.w;
}

template <typename T>
__device__ __forceinline__ uint4 load_w(const T* p, bool valid) {
  return valid ? __ldcs(reinterpret_cast<const uint4*>(p)) : make_uint4(0, 0, 0, 0);
}
template <typename T>
__device__ __forceinline__ uint4 load_x(const T* p, bool valid) {
  return valid ? __ldg(reinterpret_cast<const uint4*>(p)) : make_uint4(0, 0, 0, 0);
}

// x rows 16 mt + g and 16 mt + g + 8 at k = kk (8 values each; zeros past m).
template <typename T, int MT>
__device__ __forceinline__ void load_x_rows(uint4 (&xv)[MT][2], const T* x, int m, int64_t k, int kk, bool kin, int g) {
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      int row = 16 * mt + 8 * h + g;
      xv[mt][h] = load_x(x + int64_t(row) * k + kk, kin && row < m);
    }
}

// The A fragment of mma step s from the rows' 16-byte loads (see the top).
__device__ __forceinline__ void a_frag(uint32_t (&a)[4], const uint4 (&rows)[2], int s) {
  a[0] = word(rows[0], 2 * s);
  a[1] = word(rows[1], 2 * s);
  a[2] = word(rows[0], 2 * s + 1);
  a[3] = word(rows[1], 2 * s + 1);
}

template <typename T>
__device__ __forceinline__ void finish_store(T* out, int64_t i, float v, int col, const T* bias, float alpha,
                                             GemmAct act) {
  float y = alpha * v;
  if (bias) y += load(bias, col);
  store(out, i, gemm_activate<float>(y, act));
}

// The block's [rows, COLS] tile of sums (rows < m) → out, or → this block's
// slice of the fp32 partials when k is split.
template <typename T, int ROWS, int COLS>
__device__ void write_tile(const float (&red)[ROWS][COLS], int n0, int m, int n, const T* bias, float alpha,
                           GemmAct act, T* out, float* partial) {
  for (int i = threadIdx.x; i < m * COLS; i += kThreads) {
    int r = i / COLS, c = i % COLS, col = n0 + c;
    if (col >= n) continue;
    if (partial) partial[(int64_t(blockIdx.y) * m + r) * n + col] = red[r][c];
    else finish_store(out, int64_t(r) * n + col, red[r][c], col, bias, alpha, act);
  }
}

template <typename T, int MT>
__global__ void __launch_bounds__(kThreads) skinny_nk(const T* __restrict__ x, const T* __restrict__ w,
                                                      const T* __restrict__ bias, float alpha, GemmAct act,
                                                      T* __restrict__ out, float* __restrict__ partial, int m, int n,
                                                      int k, int kslice) {
  pdl_enter();
  __shared__ float red[MT * 16][kNkCols];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, t = lane & 3;
  const int n0 = blockIdx.x * kNkCols;
  const int kb0 = blockIdx.y * kslice, kend = min(k, kb0 + kslice);
  const int nchunks = (kend - kb0 + kChunk - 1) / kChunk;
  float acc[MT][kNkTiles][4] = {};
  for (int c0 = warp; c0 < nchunks; c0 += kWarps * kNkUnroll) {
    uint4 wv[kNkUnroll][kNkTiles], xv[kNkUnroll][MT][2];
#pragma unroll
    for (int u = 0; u < kNkUnroll; ++u) {
      int c = c0 + u * kWarps, kk = kb0 + c * kChunk + 8 * t;
      bool kin = c < nchunks && kk < kend;  // k % 8 == 0: the 8 values are all in or all out
#pragma unroll
      for (int j = 0; j < kNkTiles; ++j) {
        int col = n0 + 8 * j + g;
        wv[u][j] = load_w(w + int64_t(col) * k + kk, kin && col < n);
      }
      load_x_rows<T, MT>(xv[u], x, m, k, kk, kin, g);
    }
#pragma unroll
    for (int u = 0; u < kNkUnroll; ++u)
#pragma unroll
      for (int s = 0; s < 2; ++s)
#pragma unroll
        for (int mt = 0; mt < MT; ++mt) {
          uint32_t a[4];
          a_frag(a, xv[u][mt], s);
#pragma unroll
          for (int j = 0; j < kNkTiles; ++j) mma16816<T>(acc[mt][j], a, word(wv[u][j], 2 * s), word(wv[u][j], 2 * s + 1));
        }
  }
  // Accumulator (mt, j, e): row 16 mt + g + 8 (e / 2), column 8 j + 2 t + e % 2.
  for (int wi = 0; wi < kWarps; ++wi) {
    if (warp == wi) {
#pragma unroll
      for (int mt = 0; mt < MT; ++mt)
#pragma unroll
        for (int j = 0; j < kNkTiles; ++j)
#pragma unroll
          for (int e = 0; e < 4; ++e) {
            float& r = red[16 * mt + g + 8 * (e >> 1)][8 * j + 2 * t + (e & 1)];
            r = (wi == 0 ? 0.0f : r) + acc[mt][j][e];
          }
    }
    __syncthreads();
  }
  write_tile<T, MT * 16, kNkCols>(red, n0, m, n, bias, alpha, act, out, partial);
}

template <typename T, int MT>
__global__ void __launch_bounds__(kThreads) skinny_kn(const T* __restrict__ x, const T* __restrict__ w,
                                                      const T* __restrict__ bias, float alpha, GemmAct act,
                                                      T* __restrict__ out, float* __restrict__ partial, int m, int n,
                                                      int k, int kslice) {
  pdl_enter();
  __shared__ float red[MT * 16][kKnCols];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, t = lane & 3;
  const int n0 = blockIdx.x * kKnCols;
  const int kb0 = blockIdx.y * kslice, kend = min(k, kb0 + kslice);
  const int nchunks = (kend - kb0 + kChunk - 1) / kChunk;
  const int col = n0 + 8 * g;  // this thread's 8 columns (n % 8 == 0: all in or all out)
  const bool nin = col < n;
  float acc[MT][8][4] = {};
  for (int c = warp; c < nchunks; c += kWarps) {
    int kk = kb0 + c * kChunk + 8 * t;
    bool kin = kk < kend;
    uint4 r[8], xv[MT][2];
#pragma unroll
    for (int q = 0; q < 8; ++q) r[q] = load_w(w + int64_t(kk + q) * n + col, kin && nin);
    load_x_rows<T, MT>(xv, x, m, k, kk, kin, g);
#pragma unroll
    for (int s = 0; s < 2; ++s) {
      uint32_t a[MT][4];
#pragma unroll
      for (int mt = 0; mt < MT; ++mt) a_frag(a[mt], xv[mt], s);
#pragma unroll
      for (int j = 0; j < 8; ++j) {
        // Column j of rows (4s, 4s+1) and (4s+2, 4s+3): k pairs {2t, 2t+1} and {2t+8, 2t+9}.
        uint32_t sel = (j & 1) ? 0x7632u : 0x5410u;
        uint32_t b0 = __byte_perm(word(r[4 * s], j >> 1), word(r[4 * s + 1], j >> 1), sel);
        uint32_t b1 = __byte_perm(word(r[4 * s + 2], j >> 1), word(r[4 * s + 3], j >> 1), sel);
#pragma unroll
        for (int mt = 0; mt < MT; ++mt) mma16816<T>(acc[mt][j], a[mt], b0, b1);
      }
    }
  }
  // Accumulator (mt, j, e): row 16 mt + g + 8 (e / 2); logical column 2t + e % 2
  // of mma j, which is tile column 8 (2t + e % 2) + j.
  for (int wi = 0; wi < kWarps; ++wi) {
    if (warp == wi) {
#pragma unroll
      for (int mt = 0; mt < MT; ++mt)
#pragma unroll
        for (int j = 0; j < 8; ++j)
#pragma unroll
          for (int e = 0; e < 4; ++e) {
            float& rr = red[16 * mt + g + 8 * (e >> 1)][8 * (2 * t + (e & 1)) + j];
            rr = (wi == 0 ? 0.0f : rr) + acc[mt][j][e];
          }
    }
    __syncthreads();
  }
  write_tile<T, MT * 16, kKnCols>(red, n0, m, n, bias, alpha, act, out, partial);
}

// Split k: out = act(alpha * sum of the partials + bias), summed in slice order.
template <typename T>
__global__ void skinny_reduce(const float* __restrict__ partial, int ksplit, int m, int n, const T* __restrict__ bias,
                              float alpha, GemmAct act, T* __restrict__ out) {
  pdl_enter();
  int64_t total = int64_t(m) * n;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    float v = 0.0f;
    for (int s = 0; s < ksplit; ++s) v += partial[s * total + i];
    finish_store(out, i, v, int(i % n), bias, alpha, act);
  }
}

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

template <typename T, int MT>
void launch(const SkinnyGemm& p, const void* x, const void* w, const void* bias, float alpha, GemmAct act, void* out,
            float* partial, cudaStream_t s) {
  int64_t cols = p.w_nk ? kNkCols : kKnCols;
  dim3 grid(unsigned(ceil_div(p.n, cols)), unsigned(p.ksplit));
  auto kernel = p.w_nk ? skinny_nk<T, MT> : skinny_kn<T, MT>;
  launch_kernel(kernel, grid, kThreads, 0, s, static_cast<const T*>(x), static_cast<const T*>(w),
                static_cast<const T*>(bias), alpha, act, static_cast<T*>(out), p.ksplit > 1 ? partial : nullptr,
                int(p.m), int(p.n), int(p.k), int(p.kslice));
  if (p.ksplit > 1)
    launch_kernel(skinny_reduce<T>, blocks_for(p.m * p.n), 256, 0, s, partial, int(p.ksplit), int(p.m), int(p.n),
                  static_cast<const T*>(bias), alpha, act, static_cast<T*>(out));
}

}  // namespace

bool skinny_gemm_supports(DType dtype, int64_t m, int64_t n, int64_t k, bool w_nk) {
  if (dtype != DType::f16 && dtype != DType::bf16) return false;
  if (m < 1 || m > 64 || n < 1 || k < 1 || k % 8 != 0) return false;
  if (!w_nk && n % 8 != 0) return false;
  // int indexing inside the kernels (element offsets are 64-bit).
  return n < (int64_t(1) << 30) && k < (int64_t(1) << 30);
}

SkinnyGemm skinny_gemm_plan(DType dtype, int64_t m, int64_t n, int64_t k, bool w_nk, int sm_count) {
  SkinnyGemm p;
  p.dtype = dtype;
  p.m = m;
  p.n = n;
  p.k = k;
  p.w_nk = w_nk;
  // About 8 blocks per SM, so the last wave is a small part of the run; a
  // block's slice keeps at least one chunk per warp.
  int64_t groups = ceil_div(n, w_nk ? kNkCols : kKnCols);
  int64_t target = 8 * int64_t(sm_count > 0 ? sm_count : 132);
  int64_t max_split = std::max<int64_t>(1, k / (kWarps * kChunk));
  int64_t split = std::clamp<int64_t>(ceil_div(target, groups), 1, std::min<int64_t>(max_split, 65535));
  p.kslice = ceil_div(ceil_div(k, split), kChunk) * kChunk;
  p.ksplit = ceil_div(k, p.kslice);
  return p;
}

size_t skinny_gemm_scratch_bytes(const SkinnyGemm& p) {
  return p.ksplit > 1 ? size_t(p.ksplit * p.m * p.n) * sizeof(float) : 0;
}

cudaError_t skinny_gemm(const SkinnyGemm& p, const void* x, const void* w, const void* bias, float alpha, GemmAct act,
                        void* out, void* scratch, cudaStream_t s) {
  auto* partial = static_cast<float*>(scratch);
  auto run = [&]<typename T>() {
    if (p.m <= 16) launch<T, 1>(p, x, w, bias, alpha, act, out, partial, s);
    else if (p.m <= 32) launch<T, 2>(p, x, w, bias, alpha, act, out, partial, s);
    else launch<T, 4>(p, x, w, bias, alpha, act, out, partial, s);
  };
  if (p.dtype == DType::f16) run.template operator()<__half>();
  else if (p.dtype == DType::bf16) run.template operator()<__nv_bfloat16>();
  else fail(ErrorKind::Internal, "skinny_gemm on ", dtype_name(p.dtype));
  return cudaGetLastError();
}

}  // namespace tessera::cuda
