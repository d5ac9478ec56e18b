// The float program kernel: the fast path of run_ew_program (ew_program.h) for
// programs whose every value is float-like — inputs and results f32, f16,
// bf16 or bool, every instruction computed in f32 — over fewer than 2^31
// output elements. That is every fused region of the transformer models.
//
// Each thread takes V consecutive output elements and keeps them in a small
// register file R[NR][V] of floats: the host assigns every program value a
// register by liveness (inputs first, in registers 0..n_inputs-1), and the
// kernel reads and writes registers through switches on the warp-uniform
// register number, so nothing goes to local memory. Per instruction the op is
// dispatched once for the V elements. Inputs are loaded up front, each with
// vector loads where its V elements are contiguous: same-shape inputs, and
// broadcast inputs whose innermost (collapsed) dim is a multiple of V long,
// e.g. RoPE's [T,D] tables under [B,H,T,D]. Index math is 32-bit, divisions by
// multiply-shift. Results are rounded to their dtype after every instruction,
// exactly as the general interpreter (ew_kernel.cu) and the CPU reference do.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "backend/cuda/device_util.cuh"
#include "backend/cuda/kernels/ew_ops.cuh"
#include "backend/cuda/kernels/ew_program.h"

namespace tessera::cuda {
namespace {

// Storage types of the float kernel's values.
enum FType : uint8_t { kF32, kF16, kBF16, kBool };

// n / d for n < 2^31 by a multiply and shift: s = ceil(log2 d),
// m = floor(2^32 (2^s - d) / d) + 1, q = (umulhi(n, m) + n) >> s.
struct FastDiv {
  uint32_t d = 1, m = 1, s = 0;
  __device__ __forceinline__ uint32_t div(uint32_t n) const { return (__umulhi(n, m) + n) >> s; }
};
FastDiv make_fastdiv(uint32_t d) {
  FastDiv f;
  f.d = d;
  while ((uint64_t(1) << f.s) < d) ++f.s;
  f.m = uint32_t(((uint64_t(1) << 32) * ((uint64_t(1) << f.s) - d)) / d + 1);
  return f;
}

constexpr int kFastMaxRank = 6;  // after collapsing dims
enum FMode : uint8_t {
  kUnused,
  kSame,     // same shape as the output: element i at i
  kScalar,   // one element
  kContig,   // broadcast, V elements of a group contiguous in the input
  kSplat,    // broadcast, one input element for the V elements of a group
  kGather,   // broadcast, element by element
};

struct FInput {
  const void* ptr = nullptr;
  FMode mode = kUnused;
  FType type = kF32;
  uint8_t rank = 0;
  FastDiv size[kFastMaxRank];  // collapsed output dims, outermost first
  uint32_t stride[kFastMaxRank] = {};

  __device__ __forceinline__ uint32_t offset(uint32_t flat) const {
    uint32_t off = 0;
#pragma unroll
    for (int d = kFastMaxRank - 1; d > 0; --d) {
      if (d < rank) {
        uint32_t q = size[d].div(flat);
        off += (flat - q * size[d].d) * stride[d];
        flat = q;
      }
    }
    return off + flat * stride[0];
  }
};

struct FInstr {
  EwOp op = EwOp::copy;
  FType type = kF32;  // the result's dtype
  uint8_t nargs = 0;
  uint8_t flags = 0;  // Clip: bit0/bit1 lo/hi present, bit2/bit3 lo/hi from a/b
  uint8_t src[kEwMaxArgs] = {};
  uint8_t dst = 0;
  float a = 0, b = 0;
};

struct FLaunch {
  FInput in[kEwMaxInputs];
  FInstr ins[kEwMaxInstrs];
  int n_in = 0, n_ins = 0;
  uint8_t out_reg = 0;
  FType out_type = kF32;
  void* out = nullptr;
  uint32_t n = 0;
};

// ---- registers ---------------------------------------------------------------

#define TESSERA_EW_REGS(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11) X(12) X(13) X(14) X(15)

template <int NR, int V>
__device__ __forceinline__ void reg_get(const float (&R)[NR][V], int i, float (&a)[V]) {
  switch (i) {
#define TESSERA_EW_GET(r)                                      \
  case r:                                                      \
    if constexpr (r < NR) {                                    \
      _Pragma("unroll") for (int t = 0; t < V; ++t) a[t] = R[r][t]; \
    }                                                          \
    break;
    TESSERA_EW_REGS(TESSERA_EW_GET)
#undef TESSERA_EW_GET
    default: break;
  }
}

template <int NR, int V>
__device__ __forceinline__ void reg_set(float (&R)[NR][V], int i, const float (&a)[V]) {
  switch (i) {
#define TESSERA_EW_SET(r)                                      \
  case r:                                                      \
    if constexpr (r < NR) {                                    \
      _Pragma("unroll") for (int t = 0; t < V; ++t) R[r][t] = a[t]; \
    }                                                          \
    break;
    TESSERA_EW_REGS(TESSERA_EW_SET)
#undef TESSERA_EW_SET
    default: break;
  }
}

// ---- loads and stores ----------------------------------------------------------

template <typename T, int V>
struct alignas(sizeof(T) * V) FVec { T x[V]; };

__device__ __forceinline__ float load_one(FType t, const void* p, uint32_t i) {
  switch (t) {
    case kF16: return __half2float(static_cast<const __half*>(p)[i]);
    case kBF16: return __bfloat162float(static_cast<const __nv_bfloat16*>(p)[i]);
    case kBool: return static_cast<const uint8_t*>(p)[i] != 0 ? 1.0f : 0.0f;
    default: return static_cast<const float*>(p)[i];
  }
}

// V elements from p + i (aligned to V elements: checked on the host).
template <int V>
__device__ __forceinline__ void load_vec(FType t, const void* p, uint32_t i, float (&v)[V]) {
  auto go = [&]<typename T>(auto conv) {
    FVec<T, V> w = *reinterpret_cast<const FVec<T, V>*>(static_cast<const T*>(p) + i);
#pragma unroll
    for (int k = 0; k < V; ++k) v[k] = conv(w.x[k]);
  };
  switch (t) {
    case kF16: go.template operator()<__half>([](__half x) { return __half2float(x); }); break;
    case kBF16: go.template operator()<__nv_bfloat16>([](__nv_bfloat16 x) { return __bfloat162float(x); }); break;
    case kBool: go.template operator()<uint8_t>([](uint8_t x) { return x != 0 ? 1.0f : 0.0f; }); break;
    default: go.template operator()<float>([](float x) { return x; }); break;
  }
}

// Input `in`'s values for output elements base..base+V-1 (`full`: all < n).
template <int V>
__device__ __forceinline__ void load_input(const FInput& in, uint32_t base, bool full, uint32_t n, float (&v)[V]) {
  if (in.mode == kUnused) return;
  if (in.mode == kScalar) {
    float x = load_one(in.type, in.ptr, 0);
#pragma unroll
    for (int t = 0; t < V; ++t) v[t] = x;
    return;
  }
  if (full && in.mode == kSame) return load_vec<V>(in.type, in.ptr, base, v);
  if (full && in.mode == kContig) return load_vec<V>(in.type, in.ptr, in.offset(base), v);
  if (full && in.mode == kSplat) {
    float x = load_one(in.type, in.ptr, in.offset(base));
#pragma unroll
    for (int t = 0; t < V; ++t) v[t] = x;
    return;
  }
#pragma unroll
  for (int t = 0; t < V; ++t) {
    uint32_t i = base + t;
    v[t] = i < n ? load_one(in.type, in.ptr, in.mode == kSame ? i : in.offset(i)) : 0.0f;
  }
}

template <int V>
__device__ __forceinline__ void store_out(FType type, void* p, uint32_t base, bool full, uint32_t n, const float (&v)[V]) {
  auto go = [&]<typename T>(auto conv) {
    T* o = static_cast<T*>(p) + base;
    if (full) {
      FVec<T, V> w;
#pragma unroll
      for (int t = 0; t < V; ++t) w.x[t] = conv(v[t]);
      *reinterpret_cast<FVec<T, V>*>(o) = w;
    } else {
#pragma unroll
      for (int t = 0; t < V; ++t)
        if (base + t < n) o[t] = conv(v[t]);
    }
  };
  switch (type) {
    case kF16: go.template operator()<__half>([](float x) { return __float2half(x); }); break;
    case kBF16: go.template operator()<__nv_bfloat16>([](float x) { return __float2bfloat16(x); }); break;
    case kBool: go.template operator()<uint8_t>([](float x) { return uint8_t(x != 0.0f); }); break;
    default: go.template operator()<float>([](float x) { return x; }); break;
  }
}

// ---- one instruction on V elements ---------------------------------------------

// R[I.dst] = I(R[I.src...]), rounded to I's dtype. Each case reads just the
// operands it uses (no operand values carried between instructions).
template <int NR, int V>
__device__ __forceinline__ void eval(const FInstr& I, float (&R)[NR][V]) {
  float r[V];
  switch (I.op) {
#define TESSERA_EW_CASE(o)                                                                         \
  case EwOp::o: {                                                                                  \
    float a[V];                                                                                    \
    reg_get<NR, V>(R, I.src[0], a);                                                                \
    _Pragma("unroll") for (int t = 0; t < V; ++t) r[t] = ew_unary_op<EwOp::o, float>(a[t], I.a, I.b); \
    break;                                                                                         \
  }
    TESSERA_EW_UNARY_OPS(TESSERA_EW_CASE)
#undef TESSERA_EW_CASE
#define TESSERA_EW_CASE(o)                                                                           \
  case EwOp::o: {                                                                                    \
    float a[V], b[V];                                                                                \
    reg_get<NR, V>(R, I.src[0], a);                                                                  \
    reg_get<NR, V>(R, I.src[1], b);                                                                  \
    _Pragma("unroll") for (int t = 0; t < V; ++t) r[t] = ew_binary_op<EwOp::o, float>(a[t], b[t], I.a); \
    break;                                                                                           \
  }
      TESSERA_EW_BINARY_OPS(TESSERA_EW_CASE)
#undef TESSERA_EW_CASE
#define TESSERA_EW_CASE(o)                                                                                      \
  case EwOp::o: {                                                                                               \
    float a[V], b[V];                                                                                           \
    reg_get<NR, V>(R, I.src[0], a);                                                                             \
    reg_get<NR, V>(R, I.src[1], b);                                                                             \
    _Pragma("unroll") for (int t = 0; t < V; ++t) r[t] = ew_compare_op<EwOp::o, float>(a[t], b[t]) ? 1.0f : 0.0f; \
    break;                                                                                                      \
  }
      TESSERA_EW_COMPARE_OPS(TESSERA_EW_CASE)
#undef TESSERA_EW_CASE
    case EwOp::is_nan: {
      float a[V];
      reg_get<NR, V>(R, I.src[0], a);
#pragma unroll
      for (int t = 0; t < V; ++t) r[t] = isnan(a[t]) ? 1.0f : 0.0f;
      break;
    }
    case EwOp::where: {
      float a[V], b[V], c[V];
      reg_get<NR, V>(R, I.src[0], a);
      reg_get<NR, V>(R, I.src[1], b);
      reg_get<NR, V>(R, I.src[2], c);
#pragma unroll
      for (int t = 0; t < V; ++t) r[t] = a[t] != 0.0f ? b[t] : c[t];
      break;
    }
    case EwOp::clip: {  // std::min(std::max(x, lo), hi): NaN stays NaN. Absent bounds read register 0, unused.
      float a[V], b[V], c[V];
      reg_get<NR, V>(R, I.src[0], a);
      reg_get<NR, V>(R, I.src[1], b);
      reg_get<NR, V>(R, I.src[2], c);
#pragma unroll
      for (int t = 0; t < V; ++t) {
        float x = a[t];
        if (I.flags & 1) {
          float lo = I.flags & 4 ? I.a : b[t];
          x = x < lo ? lo : x;
        }
        if (I.flags & 2) {
          float hi = I.flags & 8 ? I.b : c[t];
          x = hi < x ? hi : x;
        }
        r[t] = x;
      }
      break;
    }
    default: {  // copy (Cast between float types; the rounding below is the op)
      reg_get<NR, V>(R, I.src[0], r);
      break;
    }
  }
  switch (I.type) {  // round to the result's dtype
    case kF16:
#pragma unroll
      for (int t = 0; t < V; ++t) r[t] = __half2float(__float2half(r[t]));
      break;
    case kBF16:
#pragma unroll
      for (int t = 0; t < V; ++t) r[t] = __bfloat162float(__float2bfloat16(r[t]));
      break;
    case kBool:
#pragma unroll
      for (int t = 0; t < V; ++t) r[t] = r[t] != 0.0f ? 1.0f : 0.0f;
      break;
    default: break;
  }
  reg_set<NR, V>(R, I.dst, r);
}

// ---- the kernel ----------------------------------------------------------------

constexpr int kFastThreads = 128;

template <int NR, int V, int MIN_BLOCKS>
__global__ void __launch_bounds__(kFastThreads, MIN_BLOCKS) ew_fast_kernel(const __grid_constant__ FLaunch L) {
  const uint32_t groups = (L.n + V - 1) / V;
  for (uint32_t g = blockIdx.x * blockDim.x + threadIdx.x; g < groups; g += gridDim.x * blockDim.x) {
    const uint32_t base = g * V;
    const bool full = base + V <= L.n;
    float R[NR][V];
#pragma unroll
    for (int k = 0; k < NR; ++k)
      if (k < L.n_in) load_input<V>(L.in[k], base, full, L.n, R[k]);
    for (int s = 0; s < L.n_ins; ++s) eval<NR, V>(L.ins[s], R);
    float r[V];
    reg_get<NR, V>(R, L.out_reg, r);
    store_out<V>(L.out_type, L.out, base, full, L.n, r);
  }
}

// ---- host side -------------------------------------------------------------------

bool ftype_of(DType t, FType& f) {
  switch (t) {
    case DType::f32: f = kF32; return true;
    case DType::f16: f = kF16; return true;
    case DType::bf16: f = kBF16; return true;
    case DType::boolean: f = kBool; return true;
    default: return false;
  }
}

// Ops the float kernel evaluates (all but the integer-only logical_not).
bool fast_op(EwOp op) { return op != EwOp::logical_not; }

// Registers by liveness: inputs in 0..n_inputs-1, each result in the lowest
// register free once the instruction's operands are read. Returns the number
// of registers used, or 0 when there are more than `max_regs`; read[k] says
// whether input k is read at all.
int assign_registers(const EwProgram& p, FLaunch& L, int max_regs, std::vector<bool>& read) {
  const int n_slots = p.n_inputs + p.n_instrs;
  std::vector<int> last_use(size_t(n_slots), -1), reg(size_t(n_slots), -1);
  for (int s = 0; s < p.n_instrs; ++s)
    for (int j = 0; j < p.instr[s].nargs; ++j)
      if (p.instr[s].args[j] != kEwNone) last_use[p.instr[s].args[j]] = s;
  last_use[size_t(n_slots - 1)] = p.n_instrs;  // the output, stored after the program
  std::vector<bool> busy(size_t(max_regs), false);
  if (p.n_inputs > max_regs) return 0;
  int used = p.n_inputs;
  for (int k = 0; k < p.n_inputs; ++k) {
    reg[size_t(k)] = k;
    busy[size_t(k)] = last_use[size_t(k)] >= 0;
    read[size_t(k)] = last_use[size_t(k)] >= 0;
  }
  for (int s = 0; s < p.n_instrs; ++s) {
    const EwInstr& in = p.instr[s];
    FInstr& f = L.ins[s];
    for (int j = 0; j < in.nargs; ++j) f.src[j] = in.args[j] == kEwNone ? 0 : uint8_t(reg[in.args[j]]);  // Clip's absent bounds
    for (int j = 0; j < in.nargs; ++j)
      if (in.args[j] != kEwNone && last_use[in.args[j]] == s) busy[size_t(reg[in.args[j]])] = false;
    int r = 0;
    while (r < max_regs && busy[size_t(r)]) ++r;
    if (r == max_regs) return 0;
    busy[size_t(r)] = last_use[size_t(p.n_inputs + s)] > s;  // a result nobody reads frees at once
    reg[size_t(p.n_inputs + s)] = r;
    f.dst = uint8_t(r);
    used = std::max(used, r + 1);
  }
  L.out_reg = uint8_t(reg[size_t(n_slots - 1)]);
  return used;
}

// The collapsed broadcast map of `t` under `out`, and its mode for groups of V.
bool set_input(FInput& f, const Tensor& t, const Shape& out, uint32_t n, int V) {
  f.ptr = t.raw();
  if (!ftype_of(t.dtype(), f.type)) return false;
  const uintptr_t vec_bytes = uintptr_t(dtype_size(t.dtype())) * uintptr_t(V);
  const bool aligned = reinterpret_cast<uintptr_t>(t.raw()) % vec_bytes == 0;
  if (t.numel() == int64_t(n)) {
    f.mode = aligned ? kSame : kGather;
    if (f.mode == kSame) return true;
  } else if (t.numel() == 1) {
    f.mode = kScalar;
    return true;
  }
  IndexMap m = broadcast_map(t.shape(), out);
  std::vector<std::pair<int64_t, int64_t>> dims;  // (size, stride), outermost first, size-1 dims dropped
  for (int d = 0; d < m.rank; ++d) {
    if (m.sizes[d] == 1) continue;
    if (!dims.empty() && dims.back().second == m.strides[d] * m.sizes[d])
      dims.back() = {dims.back().first * m.sizes[d], m.strides[d]};
    else
      dims.push_back({m.sizes[d], m.strides[d]});
  }
  if (dims.empty()) dims.push_back({1, 0});
  if (dims.size() > size_t(kFastMaxRank)) return false;
  f.rank = uint8_t(dims.size());
  for (size_t d = 0; d < dims.size(); ++d) {
    f.size[d] = make_fastdiv(uint32_t(dims[d].first));
    f.stride[d] = uint32_t(dims[d].second);
  }
  if (f.mode == kGather) return true;  // a misaligned same-shape input
  auto [inner, inner_stride] = dims.back();
  if (inner % V != 0) f.mode = kGather;
  else if (inner_stride == 0) f.mode = kSplat;
  else f.mode = inner_stride == 1 && aligned ? kContig : kGather;
  return true;
}

template <int NR, int V, int MIN_BLOCKS>
void launch(const KernelContext& ctx, const FLaunch& L) {
  const int64_t groups = (int64_t(L.n) + V - 1) / V;
  ew_fast_kernel<NR, V, MIN_BLOCKS><<<blocks_for(groups, kFastThreads), kFastThreads, 0, ctx.stream()>>>(L);
}

}  // namespace

bool run_ew_fast(const KernelContext& ctx, const EwProgram& p, const std::vector<const Tensor*>& inputs, Tensor& out) {
  const int64_t n = out.numel();
  if (n <= 0 || n >= (int64_t(1) << 31) || p.n_inputs > kEwMaxInputs) return false;
  FLaunch L;
  L.n = uint32_t(n);
  L.n_in = p.n_inputs;
  L.n_ins = p.n_instrs;
  L.out = out.raw();
  if (!ftype_of(out.dtype(), L.out_type)) return false;
  for (int s = 0; s < p.n_instrs; ++s) {
    const EwInstr& in = p.instr[s];
    FInstr& f = L.ins[s];
    if (in.kind != EwKind::f32 || !fast_op(in.op) || !ftype_of(in.dtype, f.type)) return false;
    f.op = in.op, f.nargs = in.nargs, f.a = in.a, f.b = in.b;
    f.flags = in.flags;
    if (in.op == EwOp::clip) {  // a bound without its slot is the attribute a / b
      if ((in.flags & 1) && in.args[1] == kEwNone) f.flags |= 4;
      if ((in.flags & 2) && in.args[2] == kEwNone) f.flags |= 8;
    }
  }
  // Registers first (they pick V), then the inputs' access modes for that V.
  std::vector<bool> read(size_t(p.n_inputs), false);
  const int regs = assign_registers(p, L, 16, read);
  if (regs == 0) return false;
  const int V = regs <= 4 ? 8 : 4;  // 8 elements a thread where the register file is small
  const uintptr_t out_vec = uintptr_t(dtype_size(out.dtype())) * uintptr_t(V);
  if (reinterpret_cast<uintptr_t>(L.out) % out_vec != 0) return false;
  for (int k = 0; k < p.n_inputs; ++k) {
    if (!read[size_t(k)]) continue;  // stays kUnused
    if (!set_input(L.in[k], *inputs[size_t(k)], out.shape(), L.n, V)) return false;
  }
  if (regs <= 4) launch<4, 8, 5>(ctx, L);
  else if (regs <= 8) launch<8, 4, 5>(ctx, L);
  else launch<16, 4, 3>(ctx, L);
  check_launch(ctx);
  return true;
}

}  // namespace tessera::cuda
