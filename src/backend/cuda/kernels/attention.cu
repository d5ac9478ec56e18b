// Attention (ops/attention.cc) on the GPU, mirroring the CPU reference
// (backend/cpu/kernels/attention.cc): scale, then the additive mask, then
// causal (key j kept for query i when j <= i, top-left), then softmax, then ·V.
//
// f16/bf16 prefills without an additive mask whose flash grid fills the GPU
// run cuDNN's fused SDPA (attention_dnn.h, run_cudnn below); the rest runs on
// three kernels of tessera's own:
//  * decode_fwd (+ decode_combine): at most 8 query rows (a decode step),
//    f16/bf16/f32, head dim 64 or 128: a block per query row and split of
//    128 keys, partials merged in split order (see below).
//  * flash_fwd: f16/bf16, head dim 64 or 128 (Dv == D). FlashAttention-2's
//    shape: a block of 8 warps owns 128 query rows (16 per warp) of one
//    (batch, head); K/V tiles of 64 keys stream through shared memory in a
//    3-stage cp.async ring; S = Q·Kᵀ and O += P·V use mma.sync m16n8k16
//    with fp32 accumulators, whose register layout is fixed by PTX, so the
//    online softmax runs on registers and P is re-packed as the A operand of
//    P·V without touching memory. Causal blocks skip key tiles past the
//    diagonal (and warps skip diagonal tiles entirely above their rows). No
//    [T, T] scores exist anywhere.
//  * simple_fwd: every dtype (f32 and f64 compute in their own type, f16/bf16
//    in f32), any head dims up to 256: one warp per query row, keys one at a
//    time with an online softmax. Not fast; exact enough for fp32 (1e-5).
//
// Fully masked rows: the online softmax never subtracts -inf from -inf (the
// reference max of a row that is -inf so far is taken as 0), so such a row
// ends with sum 0 and output 0/0 = NaN, as Softmax gives in the unfused graph.
// Large finite "minimum" masks are added in natural units before exp2 scaling,
// so they never overflow to -inf (a row masked that way stays uniform).
//
// Layouts: Q, K, V and O are each [B, H, T, D] or [B, T, H, D] (the layout
// attribute), or Q, K and V are column blocks of one [B, T, W] input (packed);
// every kernel addresses a row (b, h, t) through that operand's element
// strides and base pointer (rules::geometry, Ptrs below), D contiguous. The 16-byte loads and stores
// stay aligned in both layouts: every stride is a multiple of D (64 or 128
// on those paths) and the base pointers are checked to be 16-byte aligned.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <atomic>
#include <cmath>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "backend/cuda/device_context.h"
#include "backend/cuda/device_util.cuh"
#include "backend/cuda/kernels/attention_dnn.h"
#include "ops/attention_rules.h"

namespace tessera::cuda {
namespace {

constexpr float kLog2e = 1.4426950408889634f;

// Mask strides (elements) as read at [b, h, i, j]; 0 along broadcast dims.
struct MaskView {
  const void* ptr = nullptr;  // compute-type values (float, or double for f64), or null
  int64_t sb = 0, sh = 0, sq = 0, sk = 0;
};

// Element strides of one [B, H, T, X] operand along batch, head and position (X is contiguous).
using Strides = rules::RowStrides;

struct Dims {
  int B, Hq, Hkv, Tq, Tk, D, Dv;
  float scale;
  bool causal;
  Strides q, k, v, o;
};

// Element offset of row (b, h, t) of an operand.
__device__ __forceinline__ int64_t row_offset(const Strides& s, int b, int h, int t) {
  return int64_t(b) * s.b + int64_t(h) * s.h + int64_t(t) * s.t;
}

// ---------------------------------------------------------------- flash (mma.sync)

// A block of 8 warps owns 128 query rows (16 per warp) of one (batch, head), so each
// K/V tile fetched from L2 serves 128 rows; tiles of 64 keys stream through a
// 3-stage cp.async ring. Shared rows are padded by 8 halves (a row stride of
// 16 bytes mod 128), so the 8 row addresses of every ldmatrix and every 16-byte
// cp.async / epilogue access fall in distinct banks.
constexpr int kBr = 128, kBc = 64, kWarps = 8, kThreads = kWarps * 32, kStages = 3;

__device__ __forceinline__ void cp_async16(void* smem, const void* gmem, bool valid) {
  unsigned s = unsigned(__cvta_generic_to_shared(smem));
  int n = valid ? 16 : 0;  // 0 source bytes: the 16 bytes are zero-filled
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(s), "l"(gmem), "r"(n));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void cp_async_wait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N)); }

// D[16x8] += A[16x16] · B[16x8], fp32 accumulate.
template <typename T>
__device__ __forceinline__ void mma16816(float (&d)[4], const unsigned (&a)[4], unsigned b0, unsigned b1) {
  if constexpr (std::is_same_v<T, __half>)
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  else
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// Four 8x8 b16 matrices; lanes 8i..8i+7 give the row addresses of matrix i.
// Plain: thread l gets M[l/4][2(l%4)..+1] of each; transposed: M[2(l%4)..+1][l/4].
__device__ __forceinline__ void ldmatrix_x4(unsigned (&r)[4], const void* smem) {
  unsigned s = unsigned(__cvta_generic_to_shared(smem));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(s));
}
__device__ __forceinline__ void ldmatrix_x4_trans(unsigned (&r)[4], const void* smem) {
  unsigned s = unsigned(__cvta_generic_to_shared(smem));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(s));
}

// 2^x on the SFU; -inf gives +0. Results below 2^-126 flush to 0, which no
// softmax weight (each <= 1, summed in fp32) can notice.
__device__ __forceinline__ float ex2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
  return y;
}

template <typename T>
__device__ __forceinline__ unsigned pack2(float lo, float hi) {
  if constexpr (std::is_same_v<T, __half>) {
    __half2 h = __floats2half2_rn(lo, hi);
    return *reinterpret_cast<unsigned*>(&h);
  } else {
    __nv_bfloat162 h = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<unsigned*>(&h);
  }
}

// Copy rows [r0, r0 + kRows) of a [rows, HD] matrix whose rows are `ldg` elements apart (HD in
// [B, H, T, D], H·HD in [B, T, H, D]; a multiple of 8, so every 16-byte chunk stays aligned) into
// shared memory (row stride LD), zero past `rows`.
template <typename T, int HD, int LD, int kRows>
__device__ __forceinline__ void load_tile(T* smem, const T* g, int64_t ldg, int r0, int rows) {
  constexpr int kChunks = HD / 8;  // 16-byte chunks per row
  static_assert(kRows * kChunks % kThreads == 0);
#pragma unroll
  for (int i = 0; i < kRows * kChunks / kThreads; ++i) {
    const int c = int(threadIdx.x) + i * kThreads;
    const int r = c / kChunks, col = (c % kChunks) * 8;
    bool valid = r0 + r < rows;
    cp_async16(smem + r * LD + col, g + int64_t(valid ? r0 + r : 0) * ldg + col, valid);
  }
}

// kMask: an additive mask is present. Scores then stay in natural units (a
// finite "minimum" mask times log2e would overflow to -inf) and are scaled by
// log2e only after the running max is subtracted; without a mask they are
// kept in log2 units (scale · log2e folded into one multiply).
template <typename T, int HD, bool kMask>
__global__ void __launch_bounds__(kThreads, 1) flash_fwd(const T* __restrict__ q, const T* __restrict__ k,
                                                          const T* __restrict__ v, MaskView mask, T* __restrict__ o,
                                                          Dims d) {
  constexpr int LD = HD + 8;
  constexpr int kKSteps = HD / 16, kNT = kBc / 8, kOT = HD / 8;
  constexpr int kTile = kBc * LD;  // elements of one K (or V) stage
  extern __shared__ __align__(16) unsigned char smem_raw[];
  T* qs = reinterpret_cast<T*>(smem_raw);  // [kBr][LD]; each warp's 16 rows are later its output staging
  T* ks = qs + kBr * LD;                   // [kStages][kBc][LD]
  T* vs = ks + kStages * kTile;            // [kStages][kBc][LD]

  // grid = (B·Hq, q tiles): query heads sharing a K/V head are adjacent in
  // launch order, and with causal the longest q tiles (the last ones) go first.
  const int n_qtiles = gridDim.y;
  const int qtile = d.causal ? n_qtiles - 1 - int(blockIdx.y) : int(blockIdx.y);
  const int h = int(blockIdx.x) % d.Hq, b = int(blockIdx.x) / d.Hq;
  const int hk = h / (d.Hq / d.Hkv);
  const int q0 = qtile * kBr;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  const int wr0 = q0 + warp * 16;  // this warp's rows; this thread's are wr0 + g and wr0 + g + 8

  const T* qg = q + row_offset(d.q, b, h, 0);
  const T* kg = k + row_offset(d.k, b, hk, 0);
  const T* vg = v + row_offset(d.v, b, hk, 0);

  int n_ktiles = (d.Tk + kBc - 1) / kBc;
  if (d.causal) n_ktiles = min(n_ktiles, (min(q0 + kBr, d.Tq) - 1) / kBc + 1);

  // Prologue: group 0 = Q and tile 0, group 1 = tile 1 (possibly empty). Every
  // iteration commits exactly one more group, so at the top of iteration j the
  // newest group is tile j + 1's and wait_group 1 means tile j has landed.
  load_tile<T, HD, LD, kBr>(qs, qg, d.q.t, q0, d.Tq);
  load_tile<T, HD, LD, kBc>(ks, kg, d.k.t, 0, d.Tk);
  load_tile<T, HD, LD, kBc>(vs, vg, d.v.t, 0, d.Tk);
  cp_async_commit();
  if (n_ktiles > 1) {
    load_tile<T, HD, LD, kBc>(ks + kTile, kg, d.k.t, kBc, d.Tk);
    load_tile<T, HD, LD, kBc>(vs + kTile, vg, d.v.t, kBc, d.Tk);
  }
  cp_async_commit();

  unsigned qf[kKSteps][4];
  float acc[kOT][4];
#pragma unroll
  for (int i = 0; i < kOT; ++i) acc[i][0] = acc[i][1] = acc[i][2] = acc[i][3] = 0.f;
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.f, 0.f};
  const float s_mul = kMask ? d.scale : d.scale * kLog2e;

  for (int j = 0; j < n_ktiles; ++j) {
    cp_async_wait<1>();
    __syncthreads();  // tile j is visible to all, and every warp is done with tile j - 1's stage
    if (j + 2 < n_ktiles) {
      const int st = (j + 2) % kStages;  // == (j - 1) % kStages
      load_tile<T, HD, LD, kBc>(ks + st * kTile, kg, d.k.t, (j + 2) * kBc, d.Tk);
      load_tile<T, HD, LD, kBc>(vs + st * kTile, vg, d.v.t, (j + 2) * kBc, d.Tk);
    }
    cp_async_commit();
    if (j == 0) {
      // A fragments of Q (rows wr0.., 16 columns per k-step): matrices (rows 0-7 | 8-15) x (cols 0-7 | 8-15)
      // in the order a0..a3, i.e. lanes 0-7 rows 0-7 col 0, 8-15 rows 8-15 col 0, 16-23 rows 0-7 col 8, ...
      const T* qa = qs + (warp * 16 + (lane % 8) + ((lane / 8) & 1) * 8) * LD + (lane / 16) * 8;
#pragma unroll
      for (int kk = 0; kk < kKSteps; ++kk) ldmatrix_x4(qf[kk], qa + kk * 16);
    }
    const int k0 = j * kBc;
    // Causal: a warp whose rows all precede the tile's first key has nothing
    // to add (its update would be alpha = 1, p = 0), so it skips the tile.
    if (d.causal && k0 > wr0 + 15) continue;
    const T* kt = ks + (j % kStages) * kTile;
    const T* vt = vs + (j % kStages) * kTile;

    // S = Q · Kᵀ for 16 rows x 64 keys. B fragment of key tile nt, k-step kk: b0 = K[nt·8 + g][kk·16 + 2t..],
    // b1 = the same 8 columns on; one plain ldmatrix.x4 over (keys nt·8..+7) x (4 groups of 8 columns)
    // gives b0, b1 of k-steps 2kq and 2kq + 1.
    float s[kNT][4];
    const T* kb_base = kt + (lane % 8) * LD + (lane / 8) * 8;
#pragma unroll
    for (int nt = 0; nt < kNT; ++nt) {
      s[nt][0] = s[nt][1] = s[nt][2] = s[nt][3] = 0.f;
#pragma unroll
      for (int kq = 0; kq < HD / 32; ++kq) {
        unsigned kb[4];
        ldmatrix_x4(kb, kb_base + nt * 8 * LD + kq * 32);
        mma16816<T>(s[nt], qf[2 * kq], kb[0], kb[1]);
        mma16816<T>(s[nt], qf[2 * kq + 1], kb[2], kb[3]);
      }
    }

    // Scale, mask, causal / key bounds (only where the tile needs it), row max.
    const bool bounds = k0 + kBc > d.Tk || (d.causal && k0 + kBc - 1 > wr0);
    float mx[2] = {-INFINITY, -INFINITY};
#pragma unroll
    for (int nt = 0; nt < kNT; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int qi = wr0 + g + (e >> 1) * 8, kj = k0 + nt * 8 + t * 2 + (e & 1);
        float x = s[nt][e] * s_mul;
        if constexpr (kMask) {
          if (qi < d.Tq && kj < d.Tk)
            x += static_cast<const float*>(mask.ptr)[b * mask.sb + h * mask.sh + qi * mask.sq + kj * mask.sk];
        }
        if (bounds && (kj >= d.Tk || (d.causal && kj > qi))) x = -INFINITY;
        s[nt][e] = x;
        mx[e >> 1] = fmaxf(mx[e >> 1], x);
      }
    // Online softmax: the reference max of a row that is -inf so far is 0, never -inf - -inf.
    float ref[2];
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 1));
      mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 2));
      const float m_new = fmaxf(m[r], mx[r]);
      ref[r] = m_new == -INFINITY ? 0.f : m_new;
      const float alpha = kMask ? ex2((m[r] - ref[r]) * kLog2e) : ex2(m[r] - ref[r]);  // 0 when m[r] is -inf
      m[r] = m_new;
      l[r] *= alpha;
#pragma unroll
      for (int ot = 0; ot < kOT; ++ot) acc[ot][2 * r] *= alpha, acc[ot][2 * r + 1] *= alpha;
    }
#pragma unroll
    for (int nt = 0; nt < kNT; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const float p = kMask ? ex2((s[nt][e] - ref[e >> 1]) * kLog2e) : ex2(s[nt][e] - ref[e >> 1]);
        s[nt][e] = p;
        l[e >> 1] += p;
      }

    // O += P · V. P's accumulator layout is the A operand's (two key n-tiles per k-step). B fragment of
    // d-tile ot: b0 = V[kk·16 + 2t..+1][ot·8 + g], b1 = keys 8 on; one ldmatrix.x4.trans over (keys 0-7 |
    // 8-15) x (d cols 0-7 | 8-15) gives b0, b1 of d-tiles 2dp and 2dp + 1.
    const T* vb_base = vt + ((lane % 8) + ((lane / 8) & 1) * 8) * LD + (lane / 16) * 8;
#pragma unroll
    for (int kk = 0; kk < kBc / 16; ++kk) {
      const unsigned pa[4] = {pack2<T>(s[2 * kk][0], s[2 * kk][1]), pack2<T>(s[2 * kk][2], s[2 * kk][3]),
                              pack2<T>(s[2 * kk + 1][0], s[2 * kk + 1][1]),
                              pack2<T>(s[2 * kk + 1][2], s[2 * kk + 1][3])};
#pragma unroll
      for (int dp = 0; dp < HD / 16; ++dp) {
        unsigned vb[4];
        ldmatrix_x4_trans(vb, vb_base + kk * 16 * LD + dp * 16);
        mma16816<T>(acc[2 * dp], pa, vb[0], vb[1]);
        mma16816<T>(acc[2 * dp + 1], pa, vb[2], vb[3]);
      }
    }
  }
  cp_async_wait<0>();  // only empty groups can be left; nothing may still write shared memory

  // Epilogue: normalize, stage the warp's 16 x HD outputs in its own (no longer read) Q rows, then
  // write them with 16-byte stores. A fully masked row has l = 0 and gives 0 · inf = NaN, as Softmax does.
  T* os = qs + warp * 16 * LD;
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    l[r] += __shfl_xor_sync(0xffffffffu, l[r], 1);
    l[r] += __shfl_xor_sync(0xffffffffu, l[r], 2);
    const float inv = 1.f / l[r];
#pragma unroll
    for (int ot = 0; ot < kOT; ++ot)
      *reinterpret_cast<unsigned*>(os + (g + 8 * r) * LD + ot * 8 + t * 2) =
          pack2<T>(acc[ot][2 * r] * inv, acc[ot][2 * r + 1] * inv);
  }
  __syncwarp();
  constexpr int kChunks = HD / 8;
  T* og = o + row_offset(d.o, b, h, 0);
#pragma unroll
  for (int c = lane; c < 16 * kChunks; c += 32) {
    const int r = c / kChunks, col = (c % kChunks) * 8;
    if (wr0 + r < d.Tq)
      *reinterpret_cast<uint4*>(og + int64_t(wr0 + r) * d.o.t + col) = *reinterpret_cast<const uint4*>(os + r * LD + col);
  }
}

constexpr size_t flash_smem(int hd) { return size_t(kBr + 2 * kStages * kBc) * size_t(hd + 8) * 2; }

// ---------------------------------------------------------------- decode (few query rows)

// A decode step has one query row per (batch, head) against the whole cache:
// flash_fwd's 128-row tiles would be 127/128 idle and give B * Hq blocks
// only. Here a block of kDecThreads threads owns one query row and a split of
// kDecThreads keys (flash-decoding): each thread scores one key (its K row
// read with 16-byte loads; a key the mask sets to -inf is never read), the
// block takes the max and the sum, then the threads accumulate P·V over the
// split's keys, skipping keys of weight 0 (so the unwritten tail of a cache
// costs no reads). One split writes O; several write (max, sum, O) partials
// that decode_combine merges in split order, so results do not vary between
// runs.
constexpr int kDecThreads = 128;

template <typename T>
__device__ __forceinline__ float dot_row(const float* qs, const T* kr, int hd) {
  constexpr int V = 16 / sizeof(T);
  float acc = 0.0f;
  for (int c = 0; c < hd; c += V) {
    uint4 raw = __ldg(reinterpret_cast<const uint4*>(kr + c));
    const T* e = reinterpret_cast<const T*>(&raw);
#pragma unroll
    for (int x = 0; x < V; ++x) acc += qs[c + x] * float(load(e, x));
  }
  return acc;
}

template <typename F>
__device__ float block_reduce(float v, float* red, F op) {
  for (int off = 16; off > 0; off /= 2) v = op(v, __shfl_xor_sync(0xffffffffu, v, off));
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  __syncthreads();  // `red` may still be read from the last call
  if (lane == 0) red[warp] = v;
  __syncthreads();
  float r = red[0];
  for (int w = 1; w < kDecThreads / 32; ++w) r = op(r, red[w]);
  return r;
}

template <typename T, int HD>
__global__ void __launch_bounds__(kDecThreads) decode_fwd(const T* __restrict__ q, const T* __restrict__ k,
                                                          const T* __restrict__ v, MaskView mask, T* __restrict__ o,
                                                          float* __restrict__ part, Dims d) {
  // P·V: a thread owns one 16-byte chunk (kV values) of V's rows and every
  // kKeyGroups-th key of the split; the key groups' sums meet in shared memory.
  constexpr int kV = 16 / sizeof(T), kChunks = HD / kV, kKeyGroups = kDecThreads / kChunks;
  __shared__ float qs[HD], ps[kDecThreads], red[kDecThreads / 32], acc_s[kKeyGroups][HD];
  const int row = blockIdx.x, split = blockIdx.y, tid = threadIdx.x;
  const int i = row % d.Tq, h = (row / d.Tq) % d.Hq, b = row / (d.Tq * d.Hq), hk = h / (d.Hq / d.Hkv);
  const T* kb = k + row_offset(d.k, b, hk, 0);
  const T* vb = v + row_offset(d.v, b, hk, 0);
  for (int x = tid; x < HD; x += kDecThreads) qs[x] = float(load(q + row_offset(d.q, b, h, i), x));
  __syncthreads();
  const int j0 = split * kDecThreads, j = j0 + tid;
  float sc = -INFINITY;
  if (j < d.Tk && (!d.causal || j <= i)) {
    float mv = mask.ptr ? static_cast<const float*>(mask.ptr)[b * mask.sb + h * mask.sh + i * mask.sq + j * mask.sk] : 0.0f;
    if (mv != -INFINITY) sc = dot_row(qs, kb + int64_t(j) * d.k.t, HD) * d.scale + mv;
  }
  const float m = block_reduce(sc, red, [](float a, float c) { return fmaxf(a, c); });
  const float p = sc == -INFINITY ? 0.0f : expf(sc - m);
  const float l = block_reduce(p, red, [](float a, float c) { return a + c; });
  ps[tid] = p;
  __syncthreads();
  const int chunk = tid % kChunks, kg = tid / kChunks, n_keys = min(kDecThreads, d.Tk - j0);
  float acc[kV] = {};
  for (int jj = kg; jj < n_keys; jj += kKeyGroups) {
    const float pj = ps[jj];
    if (pj == 0.0f) continue;
    uint4 raw = __ldg(reinterpret_cast<const uint4*>(vb + int64_t(j0 + jj) * d.v.t + chunk * kV));
    const T* e = reinterpret_cast<const T*>(&raw);
#pragma unroll
    for (int x = 0; x < kV; ++x) acc[x] += pj * float(load(e, x));
  }
#pragma unroll
  for (int x = 0; x < kV; ++x) acc_s[kg][chunk * kV + x] = acc[x];
  __syncthreads();
  for (int dim = tid; dim < HD; dim += kDecThreads) {
    float sum = 0.0f;
#pragma unroll
    for (int g = 0; g < kKeyGroups; ++g) sum += acc_s[g][dim];
    if (gridDim.y == 1) {
      store(o, row_offset(d.o, b, h, i) + dim, sum / l);  // l = 0 (every key masked): 0/0 = NaN, as Softmax gives
    } else {
      float* pp = part + (int64_t(row) * gridDim.y + split) * (HD + 2);
      if (dim == 0) pp[0] = m, pp[1] = l;
      pp[2 + dim] = sum;
    }
  }
}

// O from the splits' (max, sum, P·V) partials, merged in split order. Partials are indexed by
// decode_fwd's row = (b·Hq + h)·Tq + i; O is written through d.o.
template <typename T, int HD>
__global__ void decode_combine(const float* __restrict__ part, int splits, T* __restrict__ o, Dims d) {
  const int row = blockIdx.x, dim = threadIdx.x;
  const int i = row % d.Tq, h = (row / d.Tq) % d.Hq, b = row / (d.Tq * d.Hq);
  const float* pr = part + int64_t(row) * splits * (HD + 2);
  float m = -INFINITY;
  for (int s = 0; s < splits; ++s) m = fmaxf(m, pr[s * (HD + 2)]);
  float l = 0.0f, acc = 0.0f;
  if (m != -INFINITY)
    for (int s = 0; s < splits; ++s) {
      const float* ps = pr + s * (HD + 2);
      if (ps[0] == -INFINITY) continue;
      float w = expf(ps[0] - m);
      l += ps[1] * w;
      acc += ps[2 + dim] * w;
    }
  store(o, row_offset(d.o, b, h, i) + dim, acc / l);
}

// ---------------------------------------------------------------- few keys (warp per row)

// Decode rows over few keys (Llama's B64 T1 layer: one key each): decode_fwd's
// block per row spends its time on block-wide reductions for one score. Here
// a warp owns a query row and each lane E = HD/32 consecutive elements of
// it (and of every K and V row: 4- to 16-byte loads); keys run one after
// another with an online softmax, the dot product summed across the warp by
// shuffles. Same arithmetic order per key as simple_fwd; f16/bf16/f32.
constexpr int kWarpMaxTk = 32;  // keys at most: beyond, the serial key loop loses to decode_fwd's splits
constexpr int kWarpRows = 4;    // warps (query rows) per block

template <typename T, int E>
__device__ __forceinline__ void load_lane(const T* p, float (&v)[E]) {
  constexpr int kBytes = E * int(sizeof(T));
  using W = std::conditional_t<kBytes == 16, uint4, std::conditional_t<kBytes == 8, uint2, unsigned>>;
  static_assert(kBytes == 16 || kBytes == 8 || kBytes == 4);
  const W raw = __ldg(reinterpret_cast<const W*>(p));
  const T* e = reinterpret_cast<const T*>(&raw);
#pragma unroll
  for (int x = 0; x < E; ++x) v[x] = float(load(e, x));
}

template <typename T, int HD>
__global__ void __launch_bounds__(kWarpRows * 32) warp_fwd(const T* __restrict__ q, const T* __restrict__ k,
                                                           const T* __restrict__ v, MaskView mask, T* __restrict__ o, Dims d) {
  constexpr int E = HD / 32;
  const int row = blockIdx.x * kWarpRows + threadIdx.x / 32, lane = threadIdx.x % 32;
  if (row >= d.B * d.Hq * d.Tq) return;
  const int i = row % d.Tq, h = (row / d.Tq) % d.Hq, b = row / (d.Tq * d.Hq), hk = h / (d.Hq / d.Hkv);
  const T* kb = k + row_offset(d.k, b, hk, 0) + lane * E;
  const T* vb = v + row_offset(d.v, b, hk, 0) + lane * E;
  float qv[E], acc[E] = {}, kv[E];
  load_lane<T, E>(q + row_offset(d.q, b, h, i) + lane * E, qv);
  float m = -INFINITY, l = 0.0f;
  const int n_keys = d.causal ? min(d.Tk, i + 1) : d.Tk;
  for (int j = 0; j < n_keys; ++j) {
    // A key the mask sets to -inf is never read (an unwritten cache row may hold anything, NaN
    // too); skipping it leaves m, l and acc as its weight 0 would. The test is warp-uniform.
    const float mv = mask.ptr ? static_cast<const float*>(mask.ptr)[b * mask.sb + h * mask.sh + i * mask.sq + j * mask.sk] : 0.0f;
    if (mv == -INFINITY) continue;
    load_lane<T, E>(kb + int64_t(j) * d.k.t, kv);
    float dot = 0.0f;
#pragma unroll
    for (int x = 0; x < E; ++x) dot += qv[x] * kv[x];
    for (int off = 16; off > 0; off /= 2) dot += __shfl_xor_sync(0xffffffffu, dot, off);
    const float sc = dot * d.scale + mv;
    const float m_new = fmaxf(sc, m), ref = m_new == -INFINITY ? 0.0f : m_new;
    const float alpha = expf(m - ref), p = expf(sc - ref);
    m = m_new;
    l = l * alpha + p;
    load_lane<T, E>(vb + int64_t(j) * d.v.t, kv);
#pragma unroll
    for (int x = 0; x < E; ++x) acc[x] = acc[x] * alpha + p * kv[x];
  }
  T* orow = o + row_offset(d.o, b, h, i) + lane * E;
#pragma unroll
  for (int x = 0; x < E; ++x) store(orow, x, acc[x] / l);  // l = 0 (every key masked): 0/0 = NaN, as Softmax gives
}

// ---------------------------------------------------------------- simple (any dtype)

constexpr int kMaxPerLane = 8;  // Dv <= 256

__device__ __forceinline__ float exp_c(float x) { return expf(x); }
__device__ __forceinline__ double exp_c(double x) { return ::exp(x); }

template <typename T>
__global__ void simple_fwd(const T* __restrict__ q, const T* __restrict__ k, const T* __restrict__ v, MaskView mask,
                           T* __restrict__ o, Dims d) {
  using C = compute_t<T>;
  const int64_t rows = int64_t(d.B) * d.Hq * d.Tq;
  const int lane = threadIdx.x % 32;
  for (int64_t row = int64_t(blockIdx.x) * (blockDim.x / 32) + threadIdx.x / 32; row < rows;
       row += int64_t(gridDim.x) * (blockDim.x / 32)) {
    const int i = int(row % d.Tq), h = int((row / d.Tq) % d.Hq), b = int(row / (int64_t(d.Tq) * d.Hq));
    const int hk = h / (d.Hq / d.Hkv);
    const T* qr = q + row_offset(d.q, b, h, i);
    const T* kb = k + row_offset(d.k, b, hk, 0);
    const T* vb = v + row_offset(d.v, b, hk, 0);
    T* orow = o + row_offset(d.o, b, h, i);
    C acc[kMaxPerLane];
    for (int x = 0; x < kMaxPerLane; ++x) acc[x] = C(0);
    C m = C(-INFINITY), l = C(0);
    const int n_keys = d.causal ? min(d.Tk, i + 1) : d.Tk;
    for (int j = 0; j < n_keys; ++j) {
      C dot = 0;
      for (int x = lane; x < d.D; x += 32) dot += load(qr, x) * load(kb, int64_t(j) * d.k.t + x);
      for (int off = 16; off > 0; off /= 2) dot += __shfl_xor_sync(0xffffffffu, dot, off);
      C sc = dot * C(d.scale);
      if (mask.ptr) sc += static_cast<const C*>(mask.ptr)[b * mask.sb + h * mask.sh + i * mask.sq + j * mask.sk];
      C m_new = sc > m ? sc : m;
      C ref = m_new == C(-INFINITY) ? C(0) : m_new;
      C alpha = exp_c(m - ref), p = exp_c(sc - ref);
      m = m_new;
      l = l * alpha + p;
      for (int x = 0; x < kMaxPerLane; ++x) {
        int col = lane + 32 * x;
        if (col < d.Dv) acc[x] = acc[x] * alpha + p * load(vb, int64_t(j) * d.v.t + col);
      }
    }
    // Tk == 0 (no keys): the unfused MatMul over an empty dim gives 0.
    for (int x = 0; x < kMaxPerLane; ++x) {
      int col = lane + 32 * x;
      if (col < d.Dv) store(orow, col, d.Tk == 0 ? C(0) : acc[x] / l);
    }
  }
}

template <typename In, typename Out>
__global__ void convert(const In* in, Out* out, int64_t n) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    out[i] = Out(load(in, i));
}

// ---------------------------------------------------------------- host side

struct AttentionState {
  bool flash_configured = false;  // the dynamic shared-memory limit is raised on the first (uncaptured) run
  bool dnn_tried = false;         // cuDNN was asked for a plan for this shape (once, uncaptured)
  std::unique_ptr<dnn::Sdpa> dnn;  // its plan, or null: tessera's kernels run it
};

// The mask as compute-type values (converted into scratch unless it already is), with broadcast strides.
template <typename C>
MaskView mask_view(KernelContext& c, const Dims& d) {
  MaskView mv;
  if (!c.has_input(3)) return mv;
  const Tensor& m = c.input(3);
  if (m.rank() > 4) c.error("mask ", to_string(m.shape()), " has rank above 4");
  Shape padded(size_t(4 - m.rank()), 1);
  padded.insert(padded.end(), m.shape().begin(), m.shape().end());
  const int64_t full[4] = {d.B, d.Hq, d.Tq, d.Tk};
  int64_t stride = 1, st[4];
  for (int i = 3; i >= 0; --i) {
    if (padded[size_t(i)] != 1 && padded[size_t(i)] != full[i]) c.error("mask ", to_string(m.shape()), " does not broadcast to the scores");
    st[i] = padded[size_t(i)] == 1 ? 0 : stride;
    stride *= padded[size_t(i)];
  }
  mv.sb = st[0], mv.sh = st[1], mv.sq = st[2], mv.sk = st[3];
  const DType want = std::is_same_v<C, double> ? DType::f64 : DType::f32;
  if (m.dtype() == want) {
    mv.ptr = m.raw();
    return mv;
  }
  C* buf = static_cast<C*>(c.scratch(size_t(m.numel()) * sizeof(C)));
  visit_device_dtype(m.dtype(), [&]<typename M>() {
    if constexpr (std::is_same_v<M, float> || std::is_same_v<M, double> || std::is_same_v<M, __half> ||
                  std::is_same_v<M, __nv_bfloat16>)
      convert<M, C><<<blocks_for(m.numel()), 256, 0, c.stream()>>>(static_cast<const M*>(m.raw()), buf, m.numel());
    else
      c.error("mask dtype ", dtype_name(m.dtype()), " is not floating point");
  });
  check_launch(c);
  mv.ptr = buf;
  return mv;
}

// The operands' device pointers (Q, K and V offset into a packed input).
struct Ptrs {
  const void *q, *k, *v;
  void* o;
};

template <typename T, int HD, bool kMask>
void launch_flash(KernelContext& c, const Dims& d, const Ptrs& p, const MaskView& mv) {
  const size_t smem = flash_smem(HD);
  AttentionState& st = c.state<AttentionState>();
  if (!st.flash_configured) {
    if (cudaFuncSetAttribute(flash_fwd<T, HD, kMask>, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)) !=
        cudaSuccess)
      c.error("cannot raise the shared-memory limit to ", smem, " bytes");
    st.flash_configured = true;
  }
  const int n_qtiles = (d.Tq + kBr - 1) / kBr;
  if (n_qtiles > 65535) c.error("query length ", d.Tq, " needs more than 65535 tiles of ", kBr, " rows");
  dim3 grid(unsigned(int64_t(d.B) * d.Hq), unsigned(n_qtiles));
  flash_fwd<T, HD, kMask><<<grid, kThreads, smem, c.stream()>>>(static_cast<const T*>(p.q), static_cast<const T*>(p.k),
                                                                static_cast<const T*>(p.v), mv, static_cast<T*>(p.o), d);
  check_launch(c);
}

template <typename T, int HD>
void launch_flash(KernelContext& c, const Dims& d, const Ptrs& p, const MaskView& mv) {
  if (mv.ptr) launch_flash<T, HD, true>(c, d, p, mv);
  else launch_flash<T, HD, false>(c, d, p, mv);
}

// Query rows at most this many: decode_fwd instead of flash_fwd.
constexpr int kDecodeMaxTq = 8;

template <typename T, int HD>
void launch_decode(KernelContext& c, const Dims& d, const Ptrs& p, const MaskView& mv) {
  const int rows = d.B * d.Hq * d.Tq, splits = (d.Tk + kDecThreads - 1) / kDecThreads;
  if (splits > 65535) c.error("key length ", d.Tk, " needs more than 65535 splits of ", kDecThreads, " keys");
  float* part = splits > 1 ? static_cast<float*>(c.scratch(size_t(rows) * size_t(splits) * (HD + 2) * sizeof(float))) : nullptr;
  T* out = static_cast<T*>(p.o);
  decode_fwd<T, HD><<<dim3(unsigned(rows), unsigned(splits)), kDecThreads, 0, c.stream()>>>(
      static_cast<const T*>(p.q), static_cast<const T*>(p.k), static_cast<const T*>(p.v), mv, out, part, d);
  check_launch(c);
  if (splits == 1) return;
  decode_combine<T, HD><<<unsigned(rows), HD, 0, c.stream()>>>(part, splits, out, d);
  check_launch(c);
}

template <typename T, int HD>
void launch_warp(KernelContext& c, const Dims& d, const Ptrs& p, const MaskView& mv) {
  const int64_t rows = int64_t(d.B) * d.Hq * d.Tq;
  warp_fwd<T, HD><<<unsigned((rows + kWarpRows - 1) / kWarpRows), kWarpRows * 32, 0, c.stream()>>>(
      static_cast<const T*>(p.q), static_cast<const T*>(p.k), static_cast<const T*>(p.v), mv, static_cast<T*>(p.o), d);
  check_launch(c);
}

// A decode shape (Tq <= kDecodeMaxTq, D 64 or 128): warp_fwd over few keys, else decode_fwd.
template <typename T>
void launch_decode_path(KernelContext& c, const Dims& d, const Ptrs& p, const MaskView& mv) {
  const bool few = d.Tk <= kWarpMaxTk;
  if (d.D == 64) few ? launch_warp<T, 64>(c, d, p, mv) : launch_decode<T, 64>(c, d, p, mv);
  else few ? launch_warp<T, 128>(c, d, p, mv) : launch_decode<T, 128>(c, d, p, mv);
}

// cuDNN's SDPA for a prefill shape without an additive mask (attention_dnn.h), when flash_fwd's
// grid (a block per 128 query rows of a head) would fill the GPU at least once: below that
// (GPT-2 at batch 1, 128 tokens: 12 blocks) tessera's kernel is the faster (H200, 2026-12-04).
// False when cuDNN has no engine for it (logged once per process) or TESSERA_ATTENTION=flash.
bool run_cudnn(KernelContext& c, const Dims& d, const Ptrs& p, bool bf16) {
  if (!dnn::sdpa_enabled() || c.has_input(3) || d.Tq <= kDecodeMaxTq || d.D != d.Dv || d.D % 8 || d.Tk == 0) return false;
  const int64_t flash_blocks = int64_t(d.B) * d.Hq * ((d.Tq + kBr - 1) / kBr);
  if (flash_blocks < c.device().props().multiProcessorCount) return false;
  AttentionState& st = c.state<AttentionState>();
  if (!st.dnn_tried) {
    st.dnn_tried = true;
    dnn::SdpaShape s{d.B, d.Hq, d.Hkv, d.Tq, d.Tk, d.D, {d.q.b, d.q.h, d.q.t}, {d.k.b, d.k.h, d.k.t},
                     {d.v.b, d.v.h, d.v.t}, {d.o.b, d.o.h, d.o.t}, d.scale, d.causal, bf16};
    std::string why;
    st.dnn = dnn::Sdpa::make(c.device().cudnn(), s, why);
    static std::atomic<bool> logged{false};
    if (!st.dnn && !logged.exchange(true)) {
      std::fprintf(stderr, "tessera: note: [cuda] cuDNN attention cannot run '%s' (B %d, heads %d/%d, T %d/%d, D %d): %s; "
                   "tessera's own kernel runs it\n", c.node().name.c_str(), d.B, d.Hq, d.Hkv, d.Tq, d.Tk, d.D, why.c_str());
    }
  }
  if (!st.dnn) return false;
  void* ws = st.dnn->workspace_bytes() ? c.scratch(st.dnn->workspace_bytes()) : nullptr;
  std::string err = st.dnn->run(c.device().cudnn(), c.stream(), p.q, p.k, p.v, p.o, ws);
  if (!err.empty()) c.error("[cudnn] attention: ", err);
  return true;
}

void k_attention(KernelContext& c) {
  const Tensor &q = c.input(0), &k = c.input(1), &v = c.input(2);
  Tensor& out = c.output(0);
  rules::Geometry g;
  std::string bad = rules::geometry(q.shape(), k.shape(), v.shape(), c.attrs().get_ints("layout", {0, 0, 0, 0}),
                                    c.attrs().get_ints("packed", {}), g);
  if (!bad.empty()) c.error(bad);
  if (out.shape() != g.out) c.error("output ", to_string(out.shape()), " does not fit Q, K, V (", to_string(g.out), ")");
  Dims d{int(g.B), int(g.Hq), int(g.Hkv), int(g.Tq), int(g.Tk), int(g.D), int(g.Dv),
         c.attrs().get_float("scale", 1.0f), c.attrs().get_int("causal", 0) != 0, g.st[0], g.st[1], g.st[2], g.st[3]};
  if (k.dtype() != q.dtype() || v.dtype() != q.dtype() || out.dtype() != q.dtype()) c.error("Q, K, V and the output must share a dtype");
  if (out.numel() == 0) return;
  const size_t es = dtype_size(q.dtype());
  auto at = [&](const Tensor& t, int64_t off) { return static_cast<const void*>(static_cast<const char*>(t.raw()) + size_t(off) * es); };
  const Ptrs p{at(q, g.offset[0]), at(k, g.offset[1]), at(v, g.offset[2]), out.raw()};
  visit_device_dtype(q.dtype(), [&]<typename T>() {
    if constexpr (std::is_same_v<T, __half> || std::is_same_v<T, __nv_bfloat16>) {
      const bool aligned = aligned16(p.q) && aligned16(p.k) && aligned16(p.v) && aligned16(p.o);
      if (aligned && run_cudnn(c, d, p, std::is_same_v<T, __nv_bfloat16>)) return;
      const bool fast = aligned && d.Tk > 0 && d.D == d.Dv && (d.D == 64 || d.D == 128);
      if (fast) {
        MaskView mv = mask_view<float>(c, d);
        if (d.Tq <= kDecodeMaxTq) {
          launch_decode_path<T>(c, d, p, mv);
        } else if (d.D == 64) {
          launch_flash<T, 64>(c, d, p, mv);
        } else {
          launch_flash<T, 128>(c, d, p, mv);
        }
        return;
      }
    }
    if constexpr (std::is_same_v<T, float>) {
      // fp32 decode: the same kernel, exact fp32 arithmetic (no tensor cores there).
      bool decode = d.Tk > 0 && d.Tq <= kDecodeMaxTq && d.D == d.Dv && (d.D == 64 || d.D == 128) && aligned16(p.q) &&
                    aligned16(p.k) && aligned16(p.v);
      if (decode) {
        launch_decode_path<T>(c, d, p, mask_view<float>(c, d));
        return;
      }
    }
    if constexpr (std::is_same_v<T, float> || std::is_same_v<T, double> || std::is_same_v<T, __half> ||
                  std::is_same_v<T, __nv_bfloat16>) {
      if (d.Dv > 32 * kMaxPerLane) c.error("value head dim ", d.Dv, " is above the ", 32 * kMaxPerLane, " this kernel supports");
      MaskView mv = mask_view<compute_t<T>>(c, d);
      const int64_t rows = int64_t(d.B) * d.Hq * d.Tq;
      simple_fwd<T><<<blocks_for(rows * 32, 256), 256, 0, c.stream()>>>(static_cast<const T*>(p.q),
                                                                       static_cast<const T*>(p.k),
                                                                       static_cast<const T*>(p.v), mv,
                                                                       static_cast<T*>(p.o), d);
      check_launch(c);
    } else {
      c.error("dtype ", dtype_name(q.dtype()), " is not supported");
    }
  });
}

}  // namespace

TESSERA_CUDA_KERNEL("Attention", k_attention);

}  // namespace tessera::cuda
