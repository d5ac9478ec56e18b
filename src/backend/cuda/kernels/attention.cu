// Attention (ops/attention.cc) on the GPU, mirroring the CPU reference
// (backend/cpu/kernels/attention.cc): scale, then the additive mask, then
// causal (key j kept for query i when j <= i, top-left), then softmax, then ·V.
//
// Two kernels:
//  * flash_fwd: f16/bf16, head dim 64 or 128 (Dv == D). FlashAttention-2's
//    shape: a block of 4 warps owns 64 query rows (16 per warp) of one
//    (batch, head); K/V tiles of 64 keys stream through shared memory with
//    cp.async double buffering; S = Q·Kᵀ and O += P·V use mma.sync m16n8k16
//    with fp32 accumulators, whose register layout is fixed by PTX, so the
//    online softmax runs on registers and P is re-packed as the A operand of
//    P·V without touching memory. Causal blocks skip key tiles past the
//    diagonal. No [T, T] scores exist anywhere.
//  * simple_fwd: every dtype (f32 and f64 compute in their own type, f16/bf16
//    in f32), any head dims up to 256: one warp per query row, keys one at a
//    time with an online softmax. Not fast; exact enough for fp32 (1e-5).
//
// Fully masked rows: the online softmax never subtracts -inf from -inf (the
// reference max of a row that is -inf so far is taken as 0), so such a row
// ends with sum 0 and output 0/0 = NaN, as Softmax gives in the unfused graph.
// Large finite "minimum" masks are added in natural units before exp2 scaling,
// so they never overflow to -inf (a row masked that way stays uniform).
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cmath>

#include "backend/cuda/device_util.cuh"

namespace tessera::cuda {
namespace {

constexpr float kLog2e = 1.4426950408889634f;

// Mask strides (elements) as read at [b, h, i, j]; 0 along broadcast dims.
struct MaskView {
  const void* ptr = nullptr;  // compute-type values (float, or double for f64), or null
  int64_t sb = 0, sh = 0, sq = 0, sk = 0;
};

struct Dims {
  int B, Hq, Hkv, Tq, Tk, D, Dv;
  float scale;
  bool causal;
};

// ---------------------------------------------------------------- flash (mma.sync)

constexpr int kBr = 64, kBc = 64, kWarps = 4, kThreads = kWarps * 32;

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

// Four 8x8 b16 matrices, transposed: thread l gets M[2(l%4)..+1][l/4] of each.
__device__ __forceinline__ void ldmatrix_x4_trans(unsigned (&r)[4], const void* smem) {
  unsigned s = unsigned(__cvta_generic_to_shared(smem));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(s));
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

__device__ __forceinline__ unsigned lds32(const void* p) { return *reinterpret_cast<const unsigned*>(p); }

// Copy rows [r0, r0 + kRows) of a [rows, HD] matrix into shared memory (row stride LD), zero past `rows`.
template <typename T, int HD, int LD, int kRows>
__device__ __forceinline__ void load_tile(T* smem, const T* g, int r0, int rows) {
  constexpr int kChunks = HD / 8;  // 16-byte chunks per row
  for (int c = threadIdx.x; c < kRows * kChunks; c += kThreads) {
    int r = c / kChunks, col = (c % kChunks) * 8;
    bool valid = r0 + r < rows;
    cp_async16(smem + r * LD + col, g + int64_t(valid ? r0 + r : 0) * HD + col, valid);
  }
}

template <typename T, int HD>
__global__ void __launch_bounds__(kThreads) flash_fwd(const T* __restrict__ q, const T* __restrict__ k,
                                                       const T* __restrict__ v, MaskView mask, T* __restrict__ o, Dims d) {
  constexpr int LD = HD + 8;  // padded row stride (halves): conflict-free 32-bit loads and ldmatrix
  constexpr int kKSteps = HD / 16, kNT = kBc / 8, kOT = HD / 8;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  T* qs = reinterpret_cast<T*>(smem_raw);
  T* ks = qs + kBr * LD;             // [2][kBc][LD]
  T* vs = ks + 2 * kBc * LD;         // [2][kBc][LD]

  const int n_qtiles = gridDim.x;
  // Causal: the longest rows (last tiles) start first.
  const int qtile = d.causal ? n_qtiles - 1 - int(blockIdx.x) : int(blockIdx.x);
  const int h = blockIdx.y, b = blockIdx.z;
  const int hk = h / (d.Hq / d.Hkv);
  const int q0 = qtile * kBr;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;

  const T* qg = q + (int64_t(b) * d.Hq + h) * d.Tq * HD;
  const T* kg = k + (int64_t(b) * d.Hkv + hk) * d.Tk * HD;
  const T* vg = v + (int64_t(b) * d.Hkv + hk) * d.Tk * HD;

  int n_ktiles = (d.Tk + kBc - 1) / kBc;
  if (d.causal) n_ktiles = min(n_ktiles, (min(q0 + kBr, d.Tq) - 1) / kBc + 1);

  load_tile<T, HD, LD, kBr>(qs, qg, q0, d.Tq);
  cp_async_commit();
  if (n_ktiles > 0) {
    load_tile<T, HD, LD, kBc>(ks, kg, 0, d.Tk);
    load_tile<T, HD, LD, kBc>(vs, vg, 0, d.Tk);
  }
  cp_async_commit();

  unsigned qf[kKSteps][4];
  float acc[kOT][4];
  for (int i = 0; i < kOT; ++i) acc[i][0] = acc[i][1] = acc[i][2] = acc[i][3] = 0.f;
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.f, 0.f};
  const int row0 = q0 + warp * 16 + g;  // this thread's rows: row0 and row0 + 8

  for (int j = 0; j < n_ktiles; ++j) {
    const int buf = j & 1;
    if (j + 1 < n_ktiles) {
      load_tile<T, HD, LD, kBc>(ks + (buf ^ 1) * kBc * LD, kg, (j + 1) * kBc, d.Tk);
      load_tile<T, HD, LD, kBc>(vs + (buf ^ 1) * kBc * LD, vg, (j + 1) * kBc, d.Tk);
      cp_async_commit();
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();
    if (j == 0) {
      const T* qw = qs + (warp * 16) * LD;
      for (int kk = 0; kk < kKSteps; ++kk) {
        qf[kk][0] = lds32(qw + g * LD + kk * 16 + t * 2);
        qf[kk][1] = lds32(qw + (g + 8) * LD + kk * 16 + t * 2);
        qf[kk][2] = lds32(qw + g * LD + kk * 16 + t * 2 + 8);
        qf[kk][3] = lds32(qw + (g + 8) * LD + kk * 16 + t * 2 + 8);
      }
    }
    const T* kt = ks + buf * kBc * LD;
    const T* vt = vs + buf * kBc * LD;

    // S = Q · Kᵀ for 16 rows x 64 keys.
    float s[kNT][4];
    for (int nt = 0; nt < kNT; ++nt) {
      s[nt][0] = s[nt][1] = s[nt][2] = s[nt][3] = 0.f;
      const T* kr = kt + (nt * 8 + g) * LD + t * 2;
      for (int kk = 0; kk < kKSteps; ++kk) mma16816<T>(s[nt], qf[kk], lds32(kr + kk * 16), lds32(kr + kk * 16 + 8));
    }

    // Scale, mask, causal, and the online softmax update of rows row0, row0 + 8.
    const int k0 = j * kBc;
    float mx[2] = {-INFINITY, -INFINITY};
    for (int nt = 0; nt < kNT; ++nt)
      for (int e = 0; e < 4; ++e) {
        const int qi = row0 + (e >> 1) * 8, kj = k0 + nt * 8 + t * 2 + (e & 1);
        float x = s[nt][e] * d.scale;
        if (kj >= d.Tk || (d.causal && kj > qi)) x = -INFINITY;
        else if (mask.ptr && qi < d.Tq)
          x += static_cast<const float*>(mask.ptr)[b * mask.sb + h * mask.sh + qi * mask.sq + kj * mask.sk];
        s[nt][e] = x;
        mx[e >> 1] = fmaxf(mx[e >> 1], x);
      }
    float ref[2];
    for (int r = 0; r < 2; ++r) {
      mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 1));
      mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 2));
      float m_new = fmaxf(m[r], mx[r]);
      ref[r] = m_new == -INFINITY ? 0.f : m_new;
      float alpha = exp2f((m[r] - ref[r]) * kLog2e);  // 0 when m[r] is -inf
      m[r] = m_new;
      l[r] *= alpha;
      for (int ot = 0; ot < kOT; ++ot) acc[ot][2 * r] *= alpha, acc[ot][2 * r + 1] *= alpha;
    }
    for (int nt = 0; nt < kNT; ++nt)
      for (int e = 0; e < 4; ++e) {
        float p = exp2f((s[nt][e] - ref[e >> 1]) * kLog2e);
        s[nt][e] = p;
        l[e >> 1] += p;
      }

    // O += P · V: P's accumulator layout is the A operand's, two n-tiles per k-step.
    for (int kk = 0; kk < kBc / 16; ++kk) {
      unsigned pa[4] = {pack2<T>(s[2 * kk][0], s[2 * kk][1]), pack2<T>(s[2 * kk][2], s[2 * kk][3]),
                        pack2<T>(s[2 * kk + 1][0], s[2 * kk + 1][1]), pack2<T>(s[2 * kk + 1][2], s[2 * kk + 1][3])};
      const T* vrow = vt + (kk * 16 + (lane % 8) + ((lane / 8) & 1) * 8) * LD + (lane / 16) * 8;
      for (int dp = 0; dp < HD / 16; ++dp) {
        unsigned vb[4];
        ldmatrix_x4_trans(vb, vrow + dp * 16);
        mma16816<T>(acc[2 * dp], pa, vb[0], vb[1]);
        mma16816<T>(acc[2 * dp + 1], pa, vb[2], vb[3]);
      }
    }
    __syncthreads();  // every warp is done with this buffer before it is refilled
  }

  for (int r = 0; r < 2; ++r) {
    l[r] += __shfl_xor_sync(0xffffffffu, l[r], 1);
    l[r] += __shfl_xor_sync(0xffffffffu, l[r], 2);
  }
  for (int r = 0; r < 2; ++r) {
    const int qi = row0 + r * 8;
    if (qi >= d.Tq) continue;
    T* orow = o + ((int64_t(b) * d.Hq + h) * d.Tq + qi) * HD;
    for (int ot = 0; ot < kOT; ++ot) {
      unsigned pk = pack2<T>(acc[ot][2 * r] / l[r], acc[ot][2 * r + 1] / l[r]);
      *reinterpret_cast<unsigned*>(orow + ot * 8 + t * 2) = pk;
    }
  }
}

constexpr size_t flash_smem(int hd) { return size_t(kBr + 4 * kBc) * size_t(hd + 8) * 2; }

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
    const T* qr = q + row * d.D;
    const T* kb = k + (int64_t(b) * d.Hkv + hk) * d.Tk * d.D;
    const T* vb = v + (int64_t(b) * d.Hkv + hk) * d.Tk * d.Dv;
    C acc[kMaxPerLane];
    for (int x = 0; x < kMaxPerLane; ++x) acc[x] = C(0);
    C m = C(-INFINITY), l = C(0);
    const int n_keys = d.causal ? min(d.Tk, i + 1) : d.Tk;
    for (int j = 0; j < n_keys; ++j) {
      C dot = 0;
      for (int x = lane; x < d.D; x += 32) dot += load(qr, x) * load(kb, int64_t(j) * d.D + x);
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
        if (col < d.Dv) acc[x] = acc[x] * alpha + p * load(vb, int64_t(j) * d.Dv + col);
      }
    }
    // Tk == 0 (no keys): the unfused MatMul over an empty dim gives 0.
    for (int x = 0; x < kMaxPerLane; ++x) {
      int col = lane + 32 * x;
      if (col < d.Dv) store(o, row * d.Dv + col, d.Tk == 0 ? C(0) : acc[x] / l);
    }
  }
}

template <typename In, typename Out>
__global__ void convert(const In* in, Out* out, int64_t n) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    out[i] = Out(load(in, i));
}

// ---------------------------------------------------------------- host side

struct FlashState {
  bool configured = false;  // the dynamic shared-memory limit is raised on the first (uncaptured) run
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

template <typename T, int HD>
void launch_flash(KernelContext& c, const Dims& d, const MaskView& mv) {
  const size_t smem = flash_smem(HD);
  FlashState& st = c.state<FlashState>();
  if (!st.configured) {
    if (cudaFuncSetAttribute(flash_fwd<T, HD>, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)) != cudaSuccess)
      c.error("cannot raise the shared-memory limit to ", smem, " bytes");
    st.configured = true;
  }
  dim3 grid(unsigned((d.Tq + kBr - 1) / kBr), unsigned(d.Hq), unsigned(d.B));
  flash_fwd<T, HD><<<grid, kThreads, smem, c.stream()>>>(static_cast<const T*>(c.input(0).raw()),
                                                         static_cast<const T*>(c.input(1).raw()),
                                                         static_cast<const T*>(c.input(2).raw()), mv,
                                                         static_cast<T*>(c.output(0).raw()), d);
  check_launch(c);
}

bool aligned16(const Tensor& t) { return reinterpret_cast<uintptr_t>(t.raw()) % 16 == 0; }

void k_attention(KernelContext& c) {
  const Tensor &q = c.input(0), &k = c.input(1), &v = c.input(2);
  Tensor& out = c.output(0);
  if (q.rank() != 4 || k.rank() != 4 || v.rank() != 4) c.error("Q, K, V must be rank 4");
  Dims d{int(q.dim(0)), int(q.dim(1)), int(k.dim(1)), int(q.dim(2)), int(k.dim(2)), int(q.dim(3)), int(v.dim(3)),
         c.attrs().get_float("scale", 1.0f), c.attrs().get_int("causal", 0) != 0};
  if (d.Hkv == 0 || d.Hq % d.Hkv) c.error("query heads ", d.Hq, " are not a multiple of key/value heads ", d.Hkv);
  if (k.dim(0) != d.B || v.dim(0) != d.B || v.dim(1) != d.Hkv || v.dim(2) != d.Tk || k.dim(3) != d.D)
    c.error("Q ", to_string(q.shape()), ", K ", to_string(k.shape()), ", V ", to_string(v.shape()), " do not fit together");
  if (k.dtype() != q.dtype() || v.dtype() != q.dtype() || out.dtype() != q.dtype()) c.error("Q, K, V and the output must share a dtype");
  if (out.numel() == 0) return;
  visit_device_dtype(q.dtype(), [&]<typename T>() {
    if constexpr (std::is_same_v<T, __half> || std::is_same_v<T, __nv_bfloat16>) {
      bool fast = d.Tk > 0 && d.D == d.Dv && (d.D == 64 || d.D == 128) && aligned16(q) && aligned16(k) && aligned16(v) &&
                  aligned16(out);
      if (fast) {
        MaskView mv = mask_view<float>(c, d);
        if (d.D == 64) launch_flash<T, 64>(c, d, mv);
        else launch_flash<T, 128>(c, d, mv);
        return;
      }
    }
    if constexpr (std::is_same_v<T, float> || std::is_same_v<T, double> || std::is_same_v<T, __half> ||
                  std::is_same_v<T, __nv_bfloat16>) {
      if (d.Dv > 32 * kMaxPerLane) c.error("value head dim ", d.Dv, " is above the ", 32 * kMaxPerLane, " this kernel supports");
      MaskView mv = mask_view<compute_t<T>>(c, d);
      const int64_t rows = int64_t(d.B) * d.Hq * d.Tq;
      simple_fwd<T><<<blocks_for(rows * 32, 256), 256, 0, c.stream()>>>(static_cast<const T*>(q.raw()),
                                                                       static_cast<const T*>(k.raw()),
                                                                       static_cast<const T*>(v.raw()), mv,
                                                                       static_cast<T*>(out.raw()), d);
      check_launch(c);
    } else {
      c.error("dtype ", dtype_name(q.dtype()), " is not supported");
    }
  });
}

}  // namespace

TESSERA_CUDA_KERNEL("Attention", k_attention);

}  // namespace tessera::cuda
