// flash_fwd, attention.cu's FlashAttention-2 kernel for f16/bf16 prefill
// (see attention.cu's header for where it runs): tiles of 128 query rows per
// block of 8 warps, K/V tiles through a cp.async ring, mma.sync m16n8k16 with
// the online softmax on registers. Included by attention.cu only.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <type_traits>

#include "backend/cuda/device_util.cuh"
#include "backend/cuda/kernels/attention_common.cuh"
#include "backend/cuda/kernels/mma.cuh"
#include "backend/cuda/pdl.cuh"

namespace tessera::cuda::attn {

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
  pdl_enter();
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

}  // namespace tessera::cuda::attn
