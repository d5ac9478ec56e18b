// Attention (ops/attention.cc) on the GPU, mirroring the CPU reference
// (backend/cpu/kernels/attention.cc): scale, then the additive mask, then
// causal (key j kept for query i when j <= i, top-left), then softmax, then ·V.
//
// f16/bf16 prefills without an additive mask whose flash grid fills the GPU
// run cuDNN's fused SDPA (attention_dnn.h, run_cudnn below); the rest runs on
// kernels of tessera's own:
//  * decode_fwd (+ decode_combine): at most 8 query rows (a decode step),
//    f16/bf16/f32, head dim 64 or 128: a block per query row and split of
//    128 keys, partials merged in split order (see below); warp_fwd, a warp
//    per query row, where there are at most 32 keys.
//  * flash_fwd (attention_flash.cuh): f16/bf16, head dim 64 or 128 (Dv == D). FlashAttention-2's
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
#include "backend/cuda/kernels/attention_common.cuh"
#include "backend/cuda/kernels/attention_dnn.h"
#include "backend/cuda/kernels/attention_flash.cuh"
#include "backend/cuda/kernels/rope.h"
#include "backend/cuda/pdl.cuh"
#include "ops/attention_rules.h"

namespace tessera::cuda {
namespace {

using namespace attn;  // Dims, MaskView, row_offset; flash_fwd and its tile sizes

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
  pdl_enter();
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
  pdl_enter();
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

// The rope tables (Attention's inputs 4 and 5) as warp_fwd reads them: Q's and K's dtype,
// row (b, t) at b·c.b + t·c.t (rules::rope_table), D contiguous. cos null: no rope.
struct RopeView {
  const void *cos = nullptr, *sin = nullptr;
  rules::TableStrides c, s;
  bool interleaved = false;
};

// Rotates the lane's E elements of a row at (b, t) as Rope does, rounded to T as the
// unfused Rope's output is. Rotate-half partners sit 16 lanes away (HD/2 = 16·E), the
// interleaved ones in the same lane (E is even).
template <typename T, int E>
__device__ __forceinline__ void rotate_lane(float (&v)[E], const RopeView& rv, int b, int t, int lane) {
  float cs[E], sn[E], rot[E];
  load_lane<T, E>(static_cast<const T*>(rv.cos) + b * rv.c.b + t * rv.c.t + lane * E, cs);
  load_lane<T, E>(static_cast<const T*>(rv.sin) + b * rv.s.b + t * rv.s.t + lane * E, sn);
#pragma unroll
  for (int x = 0; x < E; ++x) {
    if (rv.interleaved) {
      rot[x] = x % 2 ? v[x - 1] : -v[x + 1];
    } else {
      const float p = __shfl_xor_sync(0xffffffffu, v[x], 16);
      rot[x] = lane < 16 ? -p : p;
    }
  }
#pragma unroll
  for (int x = 0; x < E; ++x) v[x] = float(T(v[x] * cs[x] + rot[x] * sn[x]));
}

template <typename T, int HD>
__global__ void __launch_bounds__(kWarpRows * 32) warp_fwd(const T* __restrict__ q, const T* __restrict__ k,
                                                           const T* __restrict__ v, MaskView mask, T* __restrict__ o, Dims d,
                                                           RopeView rv) {
  pdl_enter();
  constexpr int E = HD / 32;
  const int row = blockIdx.x * kWarpRows + threadIdx.x / 32, lane = threadIdx.x % 32;
  if (row >= d.B * d.Hq * d.Tq) return;
  const int i = row % d.Tq, h = (row / d.Tq) % d.Hq, b = row / (d.Tq * d.Hq), hk = h / (d.Hq / d.Hkv);
  const T* kb = k + row_offset(d.k, b, hk, 0) + lane * E;
  const T* vb = v + row_offset(d.v, b, hk, 0) + lane * E;
  float qv[E], acc[E] = {}, kv[E];
  load_lane<T, E>(q + row_offset(d.q, b, h, i) + lane * E, qv);
  if (rv.cos) rotate_lane<T, E>(qv, rv, b, i, lane);
  float m = -INFINITY, l = 0.0f;
  const int n_keys = d.causal ? min(d.Tk, i + 1) : d.Tk;
  for (int j = 0; j < n_keys; ++j) {
    // A key the mask sets to -inf is never read (an unwritten cache row may hold anything, NaN
    // too); skipping it leaves m, l and acc as its weight 0 would. The test is warp-uniform.
    const float mv = mask.ptr ? static_cast<const float*>(mask.ptr)[b * mask.sb + h * mask.sh + i * mask.sq + j * mask.sk] : 0.0f;
    if (mv == -INFINITY) continue;
    load_lane<T, E>(kb + int64_t(j) * d.k.t, kv);
    if (rv.cos) rotate_lane<T, E>(kv, rv, b, j, lane);
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
  pdl_enter();
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
  pdl_enter();
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
      launch_kernel(convert<M, C>, blocks_for(m.numel()), 256, 0, c.stream(), static_cast<const M*>(m.raw()), buf,
                    m.numel());
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
  launch_kernel(flash_fwd<T, HD, kMask>, grid, kThreads, smem, c.stream(), static_cast<const T*>(p.q),
                static_cast<const T*>(p.k), static_cast<const T*>(p.v), mv, static_cast<T*>(p.o), d);
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
  launch_kernel(decode_fwd<T, HD>, dim3(unsigned(rows), unsigned(splits)), kDecThreads, 0, c.stream(),
                static_cast<const T*>(p.q), static_cast<const T*>(p.k), static_cast<const T*>(p.v), mv, out, part, d);
  check_launch(c);
  if (splits == 1) return;
  launch_kernel(decode_combine<T, HD>, unsigned(rows), HD, 0, c.stream(), part, splits, out, d);
  check_launch(c);
}

template <typename T, int HD>
void launch_warp(KernelContext& c, const Dims& d, const Ptrs& p, const MaskView& mv, const RopeView& rv) {
  const int64_t rows = int64_t(d.B) * d.Hq * d.Tq;
  launch_kernel(warp_fwd<T, HD>, unsigned((rows + kWarpRows - 1) / kWarpRows), kWarpRows * 32, 0, c.stream(),
                static_cast<const T*>(p.q), static_cast<const T*>(p.k), static_cast<const T*>(p.v), mv,
                static_cast<T*>(p.o), d, rv);
  check_launch(c);
}

// A decode shape (Tq <= kDecodeMaxTq, D 64 or 128): warp_fwd over few keys, else decode_fwd.
// Only warp_fwd rotates (rv); the caller has rotated Q and K already for the others.
template <typename T>
void launch_decode_path(KernelContext& c, const Dims& d, const Ptrs& p, const MaskView& mv, const RopeView& rv) {
  const bool few = d.Tk <= kWarpMaxTk;
  if (rv.cos && !few) c.error("internal: rope tables reached decode_fwd, which does not rotate");
  if (d.D == 64) few ? launch_warp<T, 64>(c, d, p, mv, rv) : launch_decode<T, 64>(c, d, p, mv);
  else few ? launch_warp<T, 128>(c, d, p, mv, rv) : launch_decode<T, 128>(c, d, p, mv);
}

// Whether launch_decode_path runs this shape with warp_fwd (as k_attention dispatches below;
// run_cudnn never takes Tq <= kDecodeMaxTq): its one kernel then rotates Q and K on load.
bool takes_warp_path(DType dt, const Dims& d, const Ptrs& p) {
  const bool half = dt == DType::f16 || dt == DType::bf16;
  if ((!half && dt != DType::f32) || d.Tk <= 0 || d.Tq > kDecodeMaxTq || d.Tk > kWarpMaxTk || d.D != d.Dv ||
      (d.D != 64 && d.D != 128))
    return false;
  return aligned16(p.q) && aligned16(p.k) && aligned16(p.v) && (!half || aligned16(p.o));
}

// The rope tables (inputs 4 and 5), or a view with cos null when there are none.
RopeView rope_view(KernelContext& c, const rules::Geometry& g) {
  RopeView rv;
  if (!c.has_input(4) && !c.has_input(5)) return rv;
  if (!c.has_input(4) || !c.has_input(5)) c.error("rope tables come in pairs (cos, sin)");
  if (g.Tq != g.Tk || g.D % 2) c.error("rope needs equal query and key lengths and an even head dim, got ", g.Tq, ", ", g.Tk, ", ", g.D);
  const Tensor &cs = c.input(4), &sn = c.input(5);
  if (cs.dtype() != c.input(0).dtype() || sn.dtype() != c.input(0).dtype()) c.error("rope tables must have Q's dtype");
  for (auto [t, st] : {std::pair{&cs, &rv.c}, std::pair{&sn, &rv.s}}) {
    std::string bad = rules::rope_table(t->shape(), g.B, g.Tq, g.D, *st);
    if (!bad.empty()) c.error(bad);
  }
  rv.cos = cs.raw(), rv.sin = sn.raw();
  rv.interleaved = c.attrs().get_int("rope_interleaved", 0) != 0;
  return rv;
}

// Q and K rotated into scratch by Rope's kernels (rope.h), each in its own layout (packed:
// [B, T, H, D]); d and p then address the copies. For the kernels that do not rotate on load.
void prerotate(KernelContext& c, const rules::Geometry& g, const std::vector<int64_t>& layout, bool packed, Dims& d,
               Ptrs& p, const RopeView& rv) {
  const DType dt = c.input(0).dtype();
  const size_t es = dtype_size(dt);
  for (int i = 0; i < 2; ++i) {
    const Tensor& x = c.input(size_t(i));
    const int64_t heads = i ? g.Hkv : g.Hq, T = g.Tq;
    const bool seq_major = packed || layout[size_t(i)];
    const Shape blk = seq_major ? Shape{g.B, T, heads, g.D} : Shape{g.B, heads, T, g.D};
    rope::Dims r{};
    r.rank = 4;
    for (int a = 0; a < 4; ++a) r.dims[a] = blk[size_t(a)];
    const rules::TableStrides tab[2] = {rv.c, rv.s};
    int64_t* st[2] = {r.cos_st, r.sin_st};
    for (int k = 0; k < 2; ++k) {
      st[k][0] = tab[k].b, st[k][3] = 1;
      st[k][1] = seq_major ? tab[k].t : 0;
      st[k][2] = seq_major ? 0 : tab[k].t;
    }
    r.n = numel(blk), r.d = g.D, r.interleaved = rv.interleaved, r.full = false;
    r.in_row = packed ? x.dim(-1) : g.D, r.width = packed ? heads * g.D : g.D, r.begin = packed ? g.offset[i] : 0;
    void* y = c.scratch(size_t(r.n) * es);
    rope::launch(c, dt, r, x.raw(), x.numel(), rv.cos, rv.sin, y);
    (i ? p.k : p.q) = y;
    (i ? d.k : d.q) = rules::row_strides(blk, seq_major ? 1 : 0);
  }
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
    if (st.dnn && dnn::cudnn_autotune()) {
      // TESSERA_CUDNN_AUTOTUNE=1: time the plans here, on the first (uncaptured) run's operands.
      void* ws = c.scratch(st.dnn->autotune_workspace_bytes());
      std::string err = st.dnn->autotune(c.device().cudnn(), c.stream(), p.q, p.k, p.v, p.o, ws);
      if (!err.empty()) c.error("[cudnn] attention autotune: ", err);
      static std::atomic<bool> told{false};
      if (!told.exchange(true))
        std::fprintf(stderr, "tessera: note: [cuda] cuDNN attention '%s': %lld plans timed, the fastest kept\n",
                     c.node().name.c_str(), static_cast<long long>(st.dnn->plan_count()));
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
  Ptrs p{at(q, g.offset[0]), at(k, g.offset[1]), at(v, g.offset[2]), out.raw()};
  RopeView rv = rope_view(c, g);
  const bool on_load = rv.cos && takes_warp_path(q.dtype(), d, p) && aligned16(rv.cos) && aligned16(rv.sin);
  if (rv.cos && !on_load) {
    prerotate(c, g, c.attrs().get_ints("layout", {0, 0, 0, 0}), c.attrs().has("packed"), d, p, rv);
    rv = RopeView{};
  }
  visit_device_dtype(q.dtype(), [&]<typename T>() {
    if constexpr (std::is_same_v<T, __half> || std::is_same_v<T, __nv_bfloat16>) {
      const bool aligned = aligned16(p.q) && aligned16(p.k) && aligned16(p.v) && aligned16(p.o);
      if (aligned && run_cudnn(c, d, p, std::is_same_v<T, __nv_bfloat16>)) return;
      const bool fast = aligned && d.Tk > 0 && d.D == d.Dv && (d.D == 64 || d.D == 128);
      if (fast) {
        MaskView mv = mask_view<float>(c, d);
        if (d.Tq <= kDecodeMaxTq) {
          launch_decode_path<T>(c, d, p, mv, rv);
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
        launch_decode_path<T>(c, d, p, mask_view<float>(c, d), rv);
        return;
      }
    }
    if constexpr (std::is_same_v<T, float> || std::is_same_v<T, double> || std::is_same_v<T, __half> ||
                  std::is_same_v<T, __nv_bfloat16>) {
      if (d.Dv > 32 * kMaxPerLane) c.error("value head dim ", d.Dv, " is above the ", 32 * kMaxPerLane, " this kernel supports");
      MaskView mv = mask_view<compute_t<T>>(c, d);
      const int64_t rows = int64_t(d.B) * d.Hq * d.Tq;
      launch_kernel(simple_fwd<T>, blocks_for(rows * 32, 256), 256, 0, c.stream(), static_cast<const T*>(p.q),
                    static_cast<const T*>(p.k), static_cast<const T*>(p.v), mv, static_cast<T*>(p.o), d);
      check_launch(c);
    } else {
      c.error("dtype ", dtype_name(q.dtype()), " is not supported");
    }
  });
}

}  // namespace

TESSERA_CUDA_KERNEL("Attention", k_attention);

}  // namespace tessera::cuda
