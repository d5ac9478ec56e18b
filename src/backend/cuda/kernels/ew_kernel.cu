// The elementwise program kernel (programs: ew_program.h). One scalar-op table
// (ew_eval) and one kernel: a grid-stride loop over output elements that runs
// the program per element. Memory-bound, so the one-instruction program (a
// plain ONNX node) over same-shape inputs takes 4 elements per thread with
// vector loads (16 bytes for f32) and keeps everything in registers; longer
// programs keep their intermediate results in a small per-thread array.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

#include "backend/cuda/device_util.cuh"
#include "backend/cuda/kernels/ew_ops.cuh"
#include "backend/cuda/kernels/ew_program.h"
#include "backend/cuda/pdl.cuh"

namespace tessera::cuda {
namespace {

union EwReg {
  float f;      // EwKind::f32
  double d;     // EwKind::f64
  long long i;  // EwKind::i64 (bool as 0/1)
};

enum InputMode : uint8_t { kSameShape, kScalar, kBroadcast };

struct EwLaunch {
  EwProgram p;
  const void* in[kEwMaxInputs];
  IndexMap map[kEwMaxInputs];
  InputMode mode[kEwMaxInputs];
  EwKind slot_kind[kEwMaxInputs + kEwMaxInstrs];
  void* out;
  int64_t n;
};

// ---- loads, stores and conversions ----------------------------------------

// A value of device type T as a register of kind ew_kind_of(T), and back
// (the register already rounded to T).
template <typename T>
__device__ __forceinline__ EwReg ew_reg(T v) {
  EwReg r;
  if constexpr (std::is_same_v<T, float> || std::is_same_v<T, __half> || std::is_same_v<T, __nv_bfloat16>) r.f = load(&v, 0);
  else if constexpr (std::is_same_v<T, double>) r.d = v;
  else if constexpr (std::is_same_v<T, bool>) r.i = *reinterpret_cast<const uint8_t*>(&v) != 0;
  else r.i = v;
  return r;
}
template <typename T>
__device__ __forceinline__ T ew_value(EwReg r) {
  T v;
  if constexpr (std::is_same_v<T, float> || std::is_same_v<T, __half> || std::is_same_v<T, __nv_bfloat16>) store(&v, 0, r.f);
  else if constexpr (std::is_same_v<T, double>) v = r.d;
  else if constexpr (std::is_same_v<T, bool>) v = r.i != 0;
  else v = T(r.i);
  return v;
}

// visit_device_dtype for device code.
template <typename F>
__device__ __forceinline__ decltype(auto) ew_visit(DType t, F&& f) {
  switch (t) {
    case DType::f16: return f.template operator()<__half>();
    case DType::bf16: return f.template operator()<__nv_bfloat16>();
    case DType::f64: return f.template operator()<double>();
    case DType::i64: return f.template operator()<int64_t>();
    case DType::i32: return f.template operator()<int32_t>();
    case DType::i8: return f.template operator()<int8_t>();
    case DType::u8: return f.template operator()<uint8_t>();
    case DType::boolean: return f.template operator()<bool>();
    default: return f.template operator()<float>();
  }
}

__device__ __forceinline__ EwReg ew_load(DType t, const void* p, int64_t off) {
  return ew_visit(t, [&]<typename T>() { return ew_reg<T>(static_cast<const T*>(p)[off]); });
}
__device__ __forceinline__ void ew_store(DType t, void* p, int64_t off, EwReg r) {
  ew_visit(t, [&]<typename T>() { static_cast<T*>(p)[off] = ew_value<T>(r); });
}

// An operand read in another kind: ints ↔ floats as C++ conversions do.
__device__ __forceinline__ EwReg ew_convert(EwReg r, EwKind from, EwKind to) {
  if (from == to) return r;
  EwReg o;
  if (from == EwKind::f32) {
    if (to == EwKind::f64) o.d = r.f;
    else o.i = (long long)r.f;
  } else if (from == EwKind::f64) {
    if (to == EwKind::f32) o.f = float(r.d);
    else o.i = (long long)r.d;
  } else {
    if (to == EwKind::f32) o.f = float(r.i);
    else o.d = double(r.i);
  }
  return o;
}

// A result of kind `from` rounded to dtype t (kind ew_kind_of(t)), as
// Tensor::cast does: floats → ints through int64, anything → bool is != 0.
__device__ __forceinline__ EwReg ew_round(EwReg r, EwKind from, DType t) {
  EwKind to = ew_kind_of(t);
  if (t == DType::boolean) {
    EwReg o;
    o.i = from == EwKind::f32 ? r.f != 0 : from == EwKind::f64 ? r.d != 0 : r.i != 0;
    return o;
  }
  EwReg o = ew_convert(r, from, to);
  switch (t) {
    case DType::f16: o.f = __half2float(__float2half(o.f)); break;
    case DType::bf16: o.f = __bfloat162float(__float2bfloat16(o.f)); break;
    case DType::i32: o.i = int32_t(o.i); break;
    case DType::i8: o.i = int8_t(o.i); break;
    case DType::u8: o.i = uint8_t(o.i); break;
    default: break;
  }
  return o;
}

__device__ __forceinline__ bool ew_truthy(EwReg r, EwKind k) {
  return k == EwKind::f32 ? r.f != 0 : k == EwKind::f64 ? r.d != 0 : r.i != 0;
}

// ---- the scalar ops (semantics in ew_ops.cuh), dispatched at run time -----

// Float functions, C = float or double (integer inputs go through double, as on the CPU).
template <typename C>
__device__ C ew_unary(EwOp op, C x, float a, float b) {
  switch (op) {
#define TESSERA_EW_CASE(o) case EwOp::o: return ew_unary_op<EwOp::o, C>(x, a, b);
    TESSERA_EW_UNARY_OPS(TESSERA_EW_CASE)
#undef TESSERA_EW_CASE
    default: return x;
  }
}

// Integer unary ops: Neg/Abs/Relu/Sign exact, the rest through double.
__device__ long long ew_unary_int(EwOp op, long long x, float a, float b) {
  switch (op) {
    case EwOp::neg: return -x;
    case EwOp::abs: return x < 0 ? -x : x;
    case EwOp::relu: return x > 0 ? x : 0;
    case EwOp::sign: return x > 0 ? 1 : (x < 0 ? -1 : 0);
    default: return (long long)ew_unary<double>(op, double(x), a, b);
  }
}

template <typename C>
__device__ C ew_binary(EwOp op, C x, C y, float fa) {
  switch (op) {
#define TESSERA_EW_CASE(o) case EwOp::o: return ew_binary_op<EwOp::o, C>(x, y, fa);
    TESSERA_EW_BINARY_OPS(TESSERA_EW_CASE)
#undef TESSERA_EW_CASE
    default: return x;
  }
}

template <typename C>
__device__ bool ew_compare(EwOp op, C x, C y) {
  switch (op) {
#define TESSERA_EW_CASE(o) case EwOp::o: return ew_compare_op<EwOp::o, C>(x, y);
    TESSERA_EW_COMPARE_OPS(TESSERA_EW_CASE)
#undef TESSERA_EW_CASE
    default: return false;
  }
}

template <typename C>
__device__ __forceinline__ C& ew_as(EwReg& r) {
  if constexpr (std::is_same_v<C, float>) return r.f;
  else if constexpr (std::is_same_v<C, double>) return r.d;
  else return r.i;
}

// One instruction in compute type C: operands v[] already in kind in.kind
// (Where's condition v[0] is tested in its own kind by the caller).
template <typename C>
__device__ EwReg ew_eval_in(const EwInstr& in, EwReg* v, bool cond) {
  EwReg r;
  C x = ew_as<C>(v[0]);
  switch (in.op) {
    case EwOp::copy: ew_as<C>(r) = x; return r;
    case EwOp::add: case EwOp::sub: case EwOp::mul: case EwOp::div: case EwOp::pow: case EwOp::mod:
    case EwOp::fmod: case EwOp::max: case EwOp::min: case EwOp::div_const:
      ew_as<C>(r) = ew_binary<C>(in.op, x, ew_as<C>(v[1]), in.a);
      return r;
    case EwOp::equal: case EwOp::less: case EwOp::greater: case EwOp::less_equal: case EwOp::greater_equal:
    case EwOp::logical_and: case EwOp::logical_or: case EwOp::logical_xor:
      r.i = ew_compare<C>(in.op, x, ew_as<C>(v[1]));
      return r;
    case EwOp::logical_not: r.i = x == C(0); return r;
    case EwOp::is_nan:
      if constexpr (std::is_same_v<C, long long>) r.i = 0;
      else r.i = isnan(x);
      return r;
    case EwOp::where: ew_as<C>(r) = cond ? ew_as<C>(v[1]) : ew_as<C>(v[2]); return r;
    case EwOp::clip: {  // std::min(std::max(x, lo), hi): NaN stays NaN
      if (in.flags & 1) {
        C lo = in.args[1] != kEwNone ? ew_as<C>(v[1]) : C(in.a);
        x = x < lo ? lo : x;
      }
      if (in.flags & 2) {
        C hi = in.args[2] != kEwNone ? ew_as<C>(v[2]) : C(in.b);
        x = hi < x ? hi : x;
      }
      ew_as<C>(r) = x;
      return r;
    }
    default:
      if constexpr (std::is_same_v<C, long long>) r.i = ew_unary_int(in.op, x, in.a, in.b);
      else ew_as<C>(r) = ew_unary<C>(in.op, x, in.a, in.b);
      return r;
  }
}

// Evaluates `in` on raw operands v[] of kinds k[], returning the result
// rounded to in.dtype (kind ew_kind_of(in.dtype)).
__device__ __forceinline__ EwReg ew_eval(const EwInstr& in, EwReg* v, const EwKind* k) {
  bool cond = in.op == EwOp::where && ew_truthy(v[0], k[0]);
#pragma unroll
  for (int j = 0; j < kEwMaxArgs; ++j)
    if (j < in.nargs && in.args[j] != kEwNone) v[j] = ew_convert(v[j], k[j], in.kind);
  bool to_bool = in.op >= EwOp::equal && in.op <= EwOp::is_nan;
  EwReg r;
  switch (in.kind) {
    case EwKind::f32: r = ew_eval_in<float>(in, v, cond); break;
    case EwKind::f64: r = ew_eval_in<double>(in, v, cond); break;
    default: r = ew_eval_in<long long>(in, v, cond); break;
  }
  return ew_round(r, to_bool ? EwKind::i64 : in.kind, in.dtype);
}

// ---- the kernel ------------------------------------------------------------

__device__ __forceinline__ EwReg ew_input(const EwLaunch& L, int k, int64_t i) {
  int64_t off = L.mode[k] == kSameShape ? i : (L.mode[k] == kScalar ? 0 : L.map[k].offset(i));
  return ew_load(L.p.in_dtype[k], L.in[k], off);
}

// The whole program for output element i.
__device__ void ew_run_one(const EwLaunch& L, int64_t i) {
  const EwProgram& p = L.p;
  EwReg regs[kEwMaxInstrs];
  for (int s = 0; s < p.n_instrs; ++s) {
    const EwInstr& in = p.instr[s];
    EwReg v[kEwMaxArgs];
    EwKind k[kEwMaxArgs];
#pragma unroll
    for (int j = 0; j < kEwMaxArgs; ++j) {
      int a = in.args[j];
      v[j].i = 0, k[j] = in.kind;
      if (j >= in.nargs || a == kEwNone) continue;
      v[j] = a < p.n_inputs ? ew_input(L, a, i) : regs[a - p.n_inputs];
      k[j] = L.slot_kind[a];
    }
    regs[s] = ew_eval(in, v, k);
  }
  ew_store(p.out_dtype(), L.out, i, regs[p.n_instrs - 1]);
}

template <typename T, int V>
struct alignas(sizeof(T) * V) EwVec { T x[V]; };

// V consecutive elements of input k from element `base` (a multiple of V;
// same-shape inputs are then aligned to V elements: checked on the host).
template <int V>
__device__ __forceinline__ void ew_input_vec(const EwLaunch& L, int k, int64_t base, EwReg (&v)[V]) {
  if (L.mode[k] != kSameShape) {
#pragma unroll
    for (int t = 0; t < V; ++t) v[t] = ew_input(L, k, base + t);
    return;
  }
  ew_visit(L.p.in_dtype[k], [&]<typename T>() {
    EwVec<T, V> w = *reinterpret_cast<const EwVec<T, V>*>(static_cast<const T*>(L.in[k]) + base);
#pragma unroll
    for (int t = 0; t < V; ++t) v[t] = ew_reg<T>(w.x[t]);
  });
}

template <int V>
__device__ __forceinline__ void ew_store_vec(const EwLaunch& L, int64_t base, EwReg (&r)[V]) {
  DType t_out = L.p.out_dtype();
  ew_visit(t_out, [&]<typename T>() {
    EwVec<T, V> w;
#pragma unroll
    for (int t = 0; t < V; ++t) w.x[t] = ew_value<T>(r[t]);
    *reinterpret_cast<EwVec<T, V>*>(static_cast<T*>(L.out) + base) = w;
  });
}

// A one-instruction program on V elements, every operand an input: registers only.
template <int V>
__device__ __forceinline__ void ew_run_single(const EwLaunch& L, int64_t base) {
  const EwInstr& in = L.p.instr[0];
  EwReg v[kEwMaxArgs][V];
  EwKind k[kEwMaxArgs];
#pragma unroll
  for (int j = 0; j < kEwMaxArgs; ++j) {
    int a = in.args[j];
    k[j] = in.kind;
    if (j < in.nargs && a != kEwNone) {
      ew_input_vec<V>(L, a, base, v[j]);
      k[j] = L.slot_kind[a];
    } else {
#pragma unroll
      for (int t = 0; t < V; ++t) v[j][t].i = 0;
    }
  }
  EwReg r[V];
#pragma unroll
  for (int t = 0; t < V; ++t) {
    EwReg u[kEwMaxArgs] = {v[0][t], v[1][t], v[2][t]};
    r[t] = ew_eval(in, u, k);
  }
  ew_store_vec<V>(L, base, r);
}

// V > 1 only for one-instruction programs whose same-shape operands and
// output are aligned to V elements; the tail (n % V) runs element by element.
// With V == 1 a one-instruction program still skips the register array.
template <int V>
__global__ void __launch_bounds__(256) ew_kernel(const __grid_constant__ EwLaunch L) {
  pdl_enter();
  int64_t stride = int64_t(gridDim.x) * blockDim.x * V;
  for (int64_t base = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) * V; base < L.n; base += stride) {
    if (V == 1 && L.p.n_instrs == 1) {
      ew_run_single<1>(L, base);
    } else if (V > 1 && base + V <= L.n) {
      ew_run_single<V>(L, base);
    } else {
      for (int64_t i = base; i < base + V && i < L.n; ++i) {
        if (V > 1) ew_run_single<1>(L, i);  // the tail of a one-instruction program
        else ew_run_one(L, i);
      }
    }
  }
}

}  // namespace

void run_ew_program(const KernelContext& ctx, const EwProgram& p, const std::vector<const Tensor*>& inputs, Tensor& out,
                    const std::vector<const Tensor*>& host, const std::vector<FusedBlock>& given_blocks) {
  if (int(inputs.size()) != p.n_inputs || p.n_instrs < 1)
    ctx.error("elementwise program with ", p.n_inputs, " inputs and ", p.n_instrs, " instructions given ", inputs.size(), " tensors");
  if (out.dtype() != p.out_dtype())
    ctx.error("elementwise program computes ", dtype_name(p.out_dtype()), " but the output is ", dtype_name(out.dtype()));
  int64_t n = out.numel();
  if (n == 0) return;
  for (int k = 0; k < p.n_inputs; ++k)
    if (inputs[size_t(k)]->dtype() != p.in_dtype[k])
      ctx.error("input ", k, " of the elementwise program is ", dtype_name(inputs[size_t(k)]->dtype()), ", expected ",
                dtype_name(p.in_dtype[k]));
  if (!given_blocks.empty() && given_blocks.size() != inputs.size())
    ctx.error("elementwise program with ", inputs.size(), " inputs given ", given_blocks.size(), " blocks");
  std::vector<FusedBlock> blocks = given_blocks;  // one per input
  blocks.resize(inputs.size());
  for (size_t k = 0; k < blocks.size(); ++k)
    block_shape(inputs[k]->shape(), blocks[k], str("node '", ctx.node().name, "' (", ctx.node().op, ") on cuda: input ", k));
  if (run_ew_fast(ctx, p, inputs, host, blocks, out)) return;
  EwLaunch L;
  L.p = p;
  L.out = out.raw();
  L.n = n;
  constexpr int kVec = 4;
  auto aligned = [](const void* ptr, DType t) { return reinterpret_cast<uintptr_t>(ptr) % (dtype_size(t) * kVec) == 0; };
  bool vec = p.n_instrs == 1 && aligned(L.out, out.dtype());
  for (int k = 0; k < p.n_inputs; ++k) {
    const Tensor& t = *inputs[size_t(k)];
    if (t.dtype() != p.in_dtype[k])
      ctx.error("input ", k, " of the elementwise program is ", dtype_name(t.dtype()), ", expected ", dtype_name(p.in_dtype[k]));
    L.in[k] = block_data(t, blocks[size_t(k)]);
    L.slot_kind[k] = ew_kind_of(t.dtype());
    if (!blocks[size_t(k)].whole()) {  // a column block: strided rows
      L.mode[k] = kBroadcast;
      L.map[k] = block_map(t.shape(), blocks[size_t(k)].width, out.shape());
    } else if (t.numel() == n) {
      L.mode[k] = kSameShape;
      vec = vec && aligned(t.raw(), t.dtype());
    } else if (t.numel() == 1) {
      L.mode[k] = kScalar;
    } else {
      L.mode[k] = kBroadcast;
      L.map[k] = broadcast_map(t.shape(), out.shape());
    }
  }
  for (int s = 0; s < p.n_instrs; ++s) L.slot_kind[p.n_inputs + s] = ew_kind_of(p.instr[s].dtype);
  if (vec)
    launch_kernel(ew_kernel<kVec>, blocks_for((n + kVec - 1) / kVec), 256, 0, ctx.stream(), L);
  else
    launch_kernel(ew_kernel<1>, blocks_for(n), 256, 0, ctx.stream(), L);
  check_launch(ctx);
}

}  // namespace tessera::cuda
