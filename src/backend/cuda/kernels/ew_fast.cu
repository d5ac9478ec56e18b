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
#include <utility>
#include <vector>

#include "backend/cuda/device_util.cuh"
#include "backend/cuda/fast_div.cuh"
#include "backend/cuda/kernels/ew_ops.cuh"
#include "backend/cuda/kernels/ew_program.h"
#include "backend/cuda/pdl.cuh"

namespace tessera::cuda {
namespace {

// Storage types of the float kernel's values.
enum FType : uint8_t { kF32, kF16, kBF16, kBool };

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
  uint8_t nread = 1;  // operands read: 1, 2 (binary, compare) or 3 (Where, Clip)
  uint8_t flags = 0;  // Clip: bit0/bit1 lo/hi present, bit2/bit3 lo/hi from a/b
  uint8_t src[kEwMaxArgs] = {};
  uint8_t dst = 0;
  uint8_t imm = 0;   // bit j: operand j is the immediate iv[j] (a scalar known on the host), not a register
  uint8_t ipow = 0;  // Pow with the immediate exponent 2 or 3: x·x, x·x·x
  float a = 0, b = 0;
  float iv[kEwMaxArgs] = {};
};

struct FLaunch {
  FInput in[kEwMaxInputs];  // the inputs held in registers 0..n_in-1 (immediates are not here)
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

// Operand values: the immediate `v`, or register `src`.
template <int NR, int V>
__device__ __forceinline__ void fetch(bool imm, float v, int src, const float (&R)[NR][V], float (&a)[V]) {
  if (imm) {
#pragma unroll
    for (int t = 0; t < V; ++t) a[t] = v;
  } else {
    reg_get<NR, V>(R, src, a);
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

// Two floats rounded to f16/bf16 by one conversion instruction (cvt.rn.f16x2 / bf16x2): the
// same rounding as one at a time, half the instructions (the 16-bit programs' conversions are
// a large share of their work).
template <typename T>
__device__ __forceinline__ void round2(float a, float b, T& lo, T& hi) {
  if constexpr (std::is_same_v<T, __half>) {
    const __half2 h = __floats2half2_rn(a, b);
    lo = h.x, hi = h.y;
  } else {
    const __nv_bfloat162 h = __floats2bfloat162_rn(a, b);
    lo = h.x, hi = h.y;
  }
}

// Each of r rounded to T and back (V even).
template <typename T, int V>
__device__ __forceinline__ void round_in_place(float (&r)[V]) {
  static_assert(V % 2 == 0, "values are rounded in pairs");
#pragma unroll
  for (int t = 0; t < V; t += 2) {
    T lo, hi;
    round2(r[t], r[t + 1], lo, hi);
    r[t] = load(&lo, 0), r[t + 1] = load(&hi, 0);
  }
}

template <int V>
__device__ __forceinline__ void store_out(FType type, void* p, uint32_t base, bool full, uint32_t n, const float (&v)[V]) {
  auto go = [&]<typename T>(auto conv) {
    T* o = static_cast<T*>(p) + base;
    if (full) {
      FVec<T, V> w;
      if constexpr (std::is_same_v<T, __half> || std::is_same_v<T, __nv_bfloat16>) {
#pragma unroll
        for (int t = 0; t < V; t += 2) round2(v[t], v[t + 1], w.x[t], w.x[t + 1]);
      } else {
#pragma unroll
        for (int t = 0; t < V; ++t) w.x[t] = conv(v[t]);
      }
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

// 2^x and 1/x on the special-function unit alone (ex2/rcp.approx.ftz: at most 2 ulp and
// 1 ulp, subnormals flushed), one instruction each and no branch.
__device__ __forceinline__ float ex2_approx(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}
__device__ __forceinline__ float rcp_approx(float x) {
  float y;
  asm("rcp.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}

// The float kernel's unary ops: ew_ops.cuh's, but Sigmoid as 1 / (1 + 2^(-x·log2 e))
// through ex2_approx and rcp_approx: a few ulp, far inside the f32 tolerance, and
// branch-free, so a thread's V sigmoids overlap (the correctly rounded __frcp_rn and
// __expf's subnormal guard branched per element and serialised them: SwiGLU's kernel
// was bound by them, at 54% of DRAM bandwidth). x < -88: 2^(127+) = inf, 1/inf = 0;
// x > 87: 2^(-126-) flushes to 0, 1/1 = 1; NaN stays NaN.
template <EwOp OP>
__device__ __forceinline__ float fast_unary(float x, float a, float b) {
  if constexpr (OP == EwOp::sigmoid) return rcp_approx(1.0f + ex2_approx(x * -1.44269504088896340736f));
  else return ew_unary_op<OP, float>(x, a, b);
}

// R[dst] = op(operands), rounded to `type`. The instruction's structure
// (op, nread, src, dst, imm, ipow, type) is passed apart from its values `I`
// (a, b, iv, flags) so that a kernel for a known program passes constants and
// every switch folds away; the interpreter passes I's own fields.
template <int NR, int V>
__device__ __forceinline__ void eval_core(EwOp op, int nread, int s0, int s1, int s2, int dst, int imm, int ipow,
                                          FType type, const FInstr& I, float (&R)[NR][V]) {
  float x[V], y[V], z[V], r[V];
  fetch<NR, V>(imm & 1, I.iv[0], s0, R, x);
  if (nread > 1) fetch<NR, V>(imm & 2, I.iv[1], s1, R, y);
  if (nread > 2) fetch<NR, V>(imm & 4, I.iv[2], s2, R, z);
  switch (op) {
#define TESSERA_EW_CASE(o)                                                                 \
  case EwOp::o:                                                                            \
    _Pragma("unroll") for (int t = 0; t < V; ++t) r[t] = fast_unary<EwOp::o>(x[t], I.a, I.b); \
    break;
    TESSERA_EW_UNARY_OPS(TESSERA_EW_CASE)
#undef TESSERA_EW_CASE
    case EwOp::pow:
      if (ipow == 2) {
#pragma unroll
        for (int t = 0; t < V; ++t) r[t] = x[t] * x[t];
      } else if (ipow == 3) {
#pragma unroll
        for (int t = 0; t < V; ++t) r[t] = x[t] * x[t] * x[t];
      } else {
#pragma unroll
        for (int t = 0; t < V; ++t) r[t] = ew_binary_op<EwOp::pow, float>(x[t], y[t], I.a);
      }
      break;
#define TESSERA_EW_CASE(o)                                                                  \
  case EwOp::o:                                                                             \
    _Pragma("unroll") for (int t = 0; t < V; ++t) r[t] = ew_binary_op<EwOp::o, float>(x[t], y[t], I.a); \
    break;
    TESSERA_EW_CASE(add) TESSERA_EW_CASE(sub) TESSERA_EW_CASE(mul) TESSERA_EW_CASE(div) TESSERA_EW_CASE(max)
    TESSERA_EW_CASE(min) TESSERA_EW_CASE(fmod) TESSERA_EW_CASE(mod)
#undef TESSERA_EW_CASE
    case EwOp::div_const:
#pragma unroll
      for (int t = 0; t < V; ++t) r[t] = x[t] / I.a;
      break;
#define TESSERA_EW_CASE(o)                                                                                \
  case EwOp::o:                                                                                           \
    _Pragma("unroll") for (int t = 0; t < V; ++t) r[t] = ew_compare_op<EwOp::o, float>(x[t], y[t]) ? 1.0f : 0.0f; \
    break;
    TESSERA_EW_COMPARE_OPS(TESSERA_EW_CASE)
#undef TESSERA_EW_CASE
    case EwOp::is_nan:
#pragma unroll
      for (int t = 0; t < V; ++t) r[t] = isnan(x[t]) ? 1.0f : 0.0f;
      break;
    case EwOp::where:
#pragma unroll
      for (int t = 0; t < V; ++t) r[t] = x[t] != 0.0f ? y[t] : z[t];
      break;
    case EwOp::clip:  // std::min(std::max(x, lo), hi): NaN stays NaN. Absent bounds read register 0, unused.
#pragma unroll
      for (int t = 0; t < V; ++t) {
        float v = x[t];
        if (I.flags & 1) {
          float lo = I.flags & 4 ? I.a : y[t];
          v = v < lo ? lo : v;
        }
        if (I.flags & 2) {
          float hi = I.flags & 8 ? I.b : z[t];
          v = hi < v ? hi : v;
        }
        r[t] = v;
      }
      break;
    default:  // copy (Cast between float types; the rounding below is the op)
#pragma unroll
      for (int t = 0; t < V; ++t) r[t] = x[t];
      break;
  }
  switch (type) {  // round to the result's dtype
    case kF16: round_in_place<__half>(r); break;
    case kBF16: round_in_place<__nv_bfloat16>(r); break;
    case kBool:
#pragma unroll
      for (int t = 0; t < V; ++t) r[t] = r[t] != 0.0f ? 1.0f : 0.0f;
      break;
    default: break;
  }
  reg_set<NR, V>(R, dst, r);
}

// ---- the kernels -----------------------------------------------------------------

constexpr int kFastThreads = 128;

// The interpreter: any program of at most NR registers.
template <int NR, int V, int MIN_BLOCKS>
__global__ void __launch_bounds__(kFastThreads, MIN_BLOCKS) ew_fast_kernel(const __grid_constant__ FLaunch L) {
  pdl_enter();
  const uint32_t groups = (L.n + V - 1) / V;
  for (uint32_t g = blockIdx.x * blockDim.x + threadIdx.x; g < groups; g += gridDim.x * blockDim.x) {
    const uint32_t base = g * V;
    const bool full = base + V <= L.n;
    float R[NR][V];
#pragma unroll
    for (int k = 0; k < NR; ++k)
      if (k < L.n_in) load_input<V>(L.in[k], base, full, L.n, R[k]);
    for (int s = 0; s < L.n_ins; ++s) {
      const FInstr& I = L.ins[s];
      eval_core<NR, V>(I.op, I.nread, I.src[0], I.src[1], I.src[2], I.dst, I.imm, I.ipow, I.type, I, R);
    }
    float r[V];
    reg_get<NR, V>(R, L.out_reg, r);
    store_out<V>(L.out_type, L.out, base, full, L.n, r);
  }
}

// Known programs: the structure of every instruction at compile time (so the
// registers are plain variables and no op is dispatched), the values (a, b,
// immediates) from the launch. match_known checks a launch against one.
struct KInstr {
  EwOp op;
  uint8_t nread, src0, src1, dst, imm, ipow;
};
struct KProgram {
  int n_in, n_ins, out_reg;
  KInstr ins[8];
};

// GPT-2's tanh GELU with its constants as immediates:
// 0.5x · (1 + tanh(c · (x + 0.044715 · x³))).
struct GeluTanh {
  static constexpr KProgram p = {1, 8, 0,
                                {{EwOp::mul, 2, 0, 0, 1, 2, 0},
                                 {EwOp::pow, 2, 0, 0, 2, 2, 3},
                                 {EwOp::mul, 2, 2, 0, 2, 2, 0},
                                 {EwOp::add, 2, 0, 2, 0, 0, 0},
                                 {EwOp::mul, 2, 0, 0, 0, 2, 0},
                                 {EwOp::tanh, 1, 0, 0, 0, 0, 0},
                                 {EwOp::add, 2, 0, 0, 0, 2, 0},
                                 {EwOp::mul, 2, 1, 0, 0, 0, 0}}};
};
// Llama's SwiGLU: x0 · sigmoid(x0) · x1.
struct SiluMul {
  static constexpr KProgram p = {2, 3, 0,
                               {{EwOp::sigmoid, 1, 0, 0, 2, 0, 0},
                                {EwOp::mul, 2, 0, 2, 0, 0, 0},
                                {EwOp::mul, 2, 0, 1, 0, 0, 0}}};
};
// RoPE: x0 · x1 + x2 · x3.
struct MulMulAdd {
  static constexpr KProgram p = {4, 3, 0,
                                 {{EwOp::mul, 2, 0, 1, 0, 0, 0},
                                  {EwOp::mul, 2, 2, 3, 1, 0, 0},
                                  {EwOp::add, 2, 0, 1, 0, 0, 0}}};
};
constexpr int kKnownRegs = 4;  // each of them fits in 4 registers

template <class P, int S, int V, FType T>
__device__ __forceinline__ void known_step(const FLaunch& L, float (&R)[kKnownRegs][V]) {
  constexpr KInstr K = P::p.ins[S];
  eval_core<kKnownRegs, V>(K.op, K.nread, K.src0, K.src1, 0, K.dst, K.imm, K.ipow, T, L.ins[S], R);
}

template <class P, int V, FType T, int... S>
__device__ __forceinline__ void known_steps(const FLaunch& L, float (&R)[kKnownRegs][V], std::integer_sequence<int, S...>) {
  (known_step<P, S, V, T>(L, R), ...);
}

// Every instruction's result of dtype T (checked by match_known).
template <class P, int V, FType T>
__global__ void __launch_bounds__(kFastThreads) ew_known_kernel(const __grid_constant__ FLaunch L) {
  pdl_enter();
  const uint32_t groups = (L.n + V - 1) / V;
  for (uint32_t g = blockIdx.x * blockDim.x + threadIdx.x; g < groups; g += gridDim.x * blockDim.x) {
    const uint32_t base = g * V;
    const bool full = base + V <= L.n;
    float R[kKnownRegs][V];
#pragma unroll
    for (int k = 0; k < P::p.n_in; ++k) load_input<V>(L.in[k], base, full, L.n, R[k]);
    known_steps<P, V, T>(L, R, std::make_integer_sequence<int, P::p.n_ins>{});
    store_out<V>(T, L.out, base, full, L.n, R[P::p.out_reg]);
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

// Operands read by an instruction (its registers are fetched before the op).
uint8_t nread_of(EwOp op) {
  switch (op) {
    case EwOp::add: case EwOp::sub: case EwOp::mul: case EwOp::div: case EwOp::pow: case EwOp::mod:
    case EwOp::fmod: case EwOp::max: case EwOp::min:
    case EwOp::equal: case EwOp::less: case EwOp::greater: case EwOp::less_equal: case EwOp::greater_equal:
    case EwOp::logical_and: case EwOp::logical_or: case EwOp::logical_xor:
      return 2;
    case EwOp::where: case EwOp::clip: return 3;
    default: return 1;  // unary ops, copy, is_nan, div_const
  }
}

// Registers by liveness: the inputs read from memory (reg_input[k], not
// immediates) in 0..m-1 in order, each result in the lowest register free once
// the instruction's operands are read. Operands that are immediates (imm[k])
// get no register. Returns the number of registers used, or 0 when there are
// more than `max_regs`.
int assign_registers(const EwProgram& p, FLaunch& L, int max_regs, const std::vector<bool>& reg_input,
                     const std::vector<bool>& imm, const std::vector<float>& imm_value) {
  const int n_slots = p.n_inputs + p.n_instrs;
  std::vector<int> last_use(size_t(n_slots), -1), reg(size_t(n_slots), -1);
  for (int s = 0; s < p.n_instrs; ++s)
    for (int j = 0; j < p.instr[s].nargs; ++j)
      if (p.instr[s].args[j] != kEwNone) last_use[p.instr[s].args[j]] = s;
  last_use[size_t(n_slots - 1)] = p.n_instrs;  // the output, stored after the program
  std::vector<bool> busy(size_t(max_regs), false);
  int used = 0;
  for (int k = 0; k < p.n_inputs; ++k) {
    if (!reg_input[size_t(k)]) continue;
    if (used == max_regs) return 0;
    reg[size_t(k)] = used;
    busy[size_t(used)] = true;
    ++used;
  }
  for (int s = 0; s < p.n_instrs; ++s) {
    const EwInstr& in = p.instr[s];
    FInstr& f = L.ins[s];
    for (int j = 0; j < in.nargs; ++j) {
      const int a = in.args[j];
      if (a == kEwNone) {
        f.src[j] = 0;  // Clip's absent bounds: register 0, never used
      } else if (a < p.n_inputs && imm[size_t(a)]) {
        f.src[j] = 0;
        f.imm |= uint8_t(1 << j);
        f.iv[j] = imm_value[size_t(a)];
      } else {
        if (reg[size_t(a)] < 0) return 0;  // cannot happen: every operand slot is an input or an earlier result
        f.src[j] = uint8_t(reg[size_t(a)]);
      }
    }
    for (int j = 0; j < in.nargs; ++j)
      if (in.args[j] != kEwNone && last_use[in.args[j]] == s && reg[in.args[j]] >= 0) busy[size_t(reg[in.args[j]])] = false;
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

// The collapsed broadcast map of `t` (of its column block `b`) under `out`, and its mode for
// groups of V.
bool set_input(FInput& f, const Tensor& t, const FusedBlock& b, const Shape& out, uint32_t n, int V) {
  f.ptr = block_data(t, b);
  if (!ftype_of(t.dtype(), f.type)) return false;
  const uintptr_t vec_bytes = uintptr_t(dtype_size(t.dtype())) * uintptr_t(V);
  const bool aligned = reinterpret_cast<uintptr_t>(f.ptr) % vec_bytes == 0;
  if (b.whole() && t.numel() == int64_t(n)) {
    f.mode = aligned ? kSame : kGather;
    if (f.mode == kSame) return true;
  } else if (b.whole() && t.numel() == 1) {
    f.mode = kScalar;
    return true;
  }
  IndexMap m = b.whole() ? broadcast_map(t.shape(), out) : block_map(t.shape(), b.width, out);
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
  bool outer_aligned = true;  // every group of V starts on a vector boundary (a block's rows too)
  for (size_t d = 0; d + 1 < dims.size(); ++d) outer_aligned = outer_aligned && dims[d].second % V == 0;
  if (inner % V != 0) f.mode = kGather;
  else if (inner_stride == 0) f.mode = kSplat;
  else f.mode = inner_stride == 1 && aligned && outer_aligned ? kContig : kGather;
  return true;
}

// Whether L (registers assigned) is the known program P with every result of dtype T.
bool match_known(const FLaunch& L, const KProgram& P, FType T) {
  if (L.n_in != P.n_in || L.n_ins != P.n_ins || L.out_reg != P.out_reg || L.out_type != T) return false;
  for (int s = 0; s < P.n_ins; ++s) {
    const FInstr& f = L.ins[s];
    const KInstr& k = P.ins[s];
    if (f.op != k.op || f.nread != k.nread || f.dst != k.dst || f.imm != k.imm || f.ipow != k.ipow || f.type != T ||
        f.flags != 0)
      return false;
    if (!(f.imm & 1) && f.src[0] != k.src0) return false;
    if (k.nread > 1 && !(f.imm & 2) && f.src[1] != k.src1) return false;
  }
  return true;
}

template <int NR, int V, int MIN_BLOCKS>
void launch(const KernelContext& ctx, const FLaunch& L) {
  const int64_t groups = (int64_t(L.n) + V - 1) / V;
  launch_kernel(ew_fast_kernel<NR, V, MIN_BLOCKS>, blocks_for(groups, kFastThreads), kFastThreads, 0, ctx.stream(), L);
}

// Runs L with a known-program kernel when it is one; false when not.
template <class P>
bool launch_known(const KernelContext& ctx, const FLaunch& L) {
  constexpr int V = 8;  // 16-byte loads of f16/bf16
  const unsigned blocks = blocks_for((int64_t(L.n) + V - 1) / V, kFastThreads);
  if (match_known(L, P::p, kF16))
    launch_kernel(ew_known_kernel<P, V, kF16>, blocks, kFastThreads, 0, ctx.stream(), L);
  else if (match_known(L, P::p, kBF16))
    launch_kernel(ew_known_kernel<P, V, kBF16>, blocks, kFastThreads, 0, ctx.stream(), L);
  else if (match_known(L, P::p, kF32))
    launch_kernel(ew_known_kernel<P, V, kF32>, blocks, kFastThreads, 0, ctx.stream(), L);
  else return false;
  return true;
}

}  // namespace

bool run_ew_fast(const KernelContext& ctx, const EwProgram& p, const std::vector<const Tensor*>& inputs,
                 const std::vector<const Tensor*>& host, const std::vector<FusedBlock>& blocks, Tensor& out) {
  const int64_t n = out.numel();
  if (n <= 0 || n >= (int64_t(1) << 31) || p.n_inputs > kEwMaxInputs) return false;
  for (size_t k = 0; k < blocks.size(); ++k)  // a block's tensor is larger than the output
    if (!blocks[k].whole() && inputs[k]->numel() >= (int64_t(1) << 31)) return false;
  FLaunch L;
  L.n = uint32_t(n);
  L.n_ins = p.n_instrs;
  L.out = out.raw();
  if (!ftype_of(out.dtype(), L.out_type)) return false;
  for (int s = 0; s < p.n_instrs; ++s) {
    const EwInstr& in = p.instr[s];
    FInstr& f = L.ins[s];
    if (in.kind != EwKind::f32 || !fast_op(in.op) || !ftype_of(in.dtype, f.type)) return false;
    f.op = in.op, f.a = in.a, f.b = in.b;
    f.nread = nread_of(in.op);
    if (in.nargs < f.nread) return false;  // cannot happen: the builder gives each op its operands
    f.flags = in.flags;
    if (in.op == EwOp::clip) {  // a bound without its slot is the attribute a / b
      if ((in.flags & 1) && in.args[1] == kEwNone) f.flags |= 4;
      if ((in.flags & 2) && in.args[2] == kEwNone) f.flags |= 8;
    }
  }
  // Inputs: immediates (one element known on the host), read from memory, or not read at all.
  std::vector<bool> read(size_t(p.n_inputs), false), imm(size_t(p.n_inputs), false), reg_input(size_t(p.n_inputs), false);
  std::vector<float> imm_value(size_t(p.n_inputs), 0.0f);
  for (int s = 0; s < p.n_instrs; ++s)
    for (int j = 0; j < p.instr[s].nargs; ++j)
      if (p.instr[s].args[j] != kEwNone && p.instr[s].args[j] < p.n_inputs) read[p.instr[s].args[j]] = true;
  for (int k = 0; k < p.n_inputs; ++k) {
    if (!read[size_t(k)]) continue;
    const Tensor* h = size_t(k) < host.size() ? host[size_t(k)] : nullptr;
    if (!blocks[size_t(k)].whole()) h = nullptr;  // a block is read, never an immediate
    FType ft;
    if (h && h->numel() == 1 && h->dtype() == inputs[size_t(k)]->dtype() && ftype_of(h->dtype(), ft)) {
      imm[size_t(k)] = true;
      imm_value[size_t(k)] = float(h->item_f64(0));  // exact: f16/bf16/f32 values are floats, bool 0/1
    } else {
      reg_input[size_t(k)] = true;
    }
  }
  // Pow with an immediate integer exponent 2 or 3 multiplies.
  for (int s = 0; s < p.n_instrs; ++s) {
    const EwInstr& in = p.instr[s];
    const int e = in.args[1];
    if (in.op == EwOp::pow && e != kEwNone && e < p.n_inputs && imm[size_t(e)] &&
        (imm_value[size_t(e)] == 2.0f || imm_value[size_t(e)] == 3.0f))
      L.ins[s].ipow = uint8_t(imm_value[size_t(e)]);
  }
  // Registers first (they pick V), then the inputs' access modes for that V.
  const int regs = assign_registers(p, L, 16, reg_input, imm, imm_value);
  if (regs == 0) return false;
  const bool known = regs <= kKnownRegs;  // a known program may match: it runs with V = 8
  const int V = regs <= 4 ? 8 : 4;  // 8 elements a thread where the register file is small
  const uintptr_t out_vec = uintptr_t(dtype_size(out.dtype())) * uintptr_t(V);
  if (reinterpret_cast<uintptr_t>(L.out) % out_vec != 0) return false;
  for (int k = 0; k < p.n_inputs; ++k) {
    if (!reg_input[size_t(k)]) continue;
    if (!set_input(L.in[L.n_in++], *inputs[size_t(k)], blocks[size_t(k)], out.shape(), L.n, V)) return false;
  }
  if (known && (launch_known<GeluTanh>(ctx, L) || launch_known<SiluMul>(ctx, L) || launch_known<MulMulAdd>(ctx, L))) {
  } else if (regs <= 4) {
    launch<4, 8, 4>(ctx, L);
  } else if (regs <= 8) {
    launch<8, 4, 5>(ctx, L);
  } else {
    launch<16, 4, 3>(ctx, L);
  }
  check_launch(ctx);
  return true;
}

}  // namespace tessera::cuda
