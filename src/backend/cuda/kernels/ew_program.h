// Elementwise programs for the CUDA backend. Every elementwise op, and every
// FusedElementwise node, runs as one *program*: a short list of scalar
// instructions over slots (slots 0..n_inputs-1 are the inputs, read through
// broadcast maps; slot n_inputs+k is instruction k's result). One kernel
// (ew_kernel.cu) interprets it per output element and stores the last
// instruction's result, so fusing N ops costs one pass over memory.
//
// Values are computed in a *kind*: f32 (f16/bf16/f32), f64, or i64 (every
// integer type and bool). Each instruction converts its operands to its kind,
// computes, and rounds the result to its IR dtype, exactly as the CPU
// reference does when the op runs on its own (f16 rounded, i32 wrapped, bool 0/1).
//
// This header is plain host C++ (no CUDA types), so programs are built in host
// code: EwBuilder turns ONNX op names + attributes into instructions.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "ir/attribute.h"
#include "ops/fused_elementwise.h"

namespace tessera::cuda {

class KernelContext;

enum class EwKind : uint8_t { f32, f64, i64 };

constexpr EwKind ew_kind_of(DType t) {
  switch (t) {
    case DType::f32: case DType::f16: case DType::bf16: return EwKind::f32;
    case DType::f64: return EwKind::f64;
    default: return EwKind::i64;
  }
}

// The scalar ops (ew_kernel.cu's ew_eval evaluates them). Attributes in
// EwInstr::a / b as noted.
enum class EwOp : uint8_t {
  copy,  // Cast, and one-input Sum/Max/Min: the rounding to dtype is the whole op
  add, sub, mul, div, pow, mod, fmod, max, min,
  div_const,  // x / a (Mean's final division)
  equal, less, greater, less_equal, greater_equal, logical_and, logical_or, logical_xor,  // → bool
  logical_not, is_nan,                                                                   // → bool
  where,  // args: cond, x, y
  clip,   // args: x, lo, hi; flags bit0/bit1: lo/hi present (slot, or a/b when the slot is kEwNone)
  neg, abs, exp, log, sqrt, reciprocal, tanh, erf, sigmoid, relu, sin, cos, floor, ceil, round, sign,
  softsign, hard_swish, softplus, mish,
  leaky_relu,    // a = alpha
  hard_sigmoid,  // a = alpha, b = beta
  elu, celu,     // a = alpha
  selu,          // a = alpha, b = gamma
  gelu, gelu_tanh,
};

constexpr int kEwMaxInputs = 12;
constexpr int kEwMaxInstrs = 40;
constexpr int kEwMaxArgs = 3;
constexpr uint8_t kEwNone = 255;  // an omitted optional operand

struct EwInstr {
  EwOp op = EwOp::copy;
  EwKind kind = EwKind::f32;    // operands are converted to this kind
  DType dtype = DType::f32;     // the result is rounded to this dtype; its slot has ew_kind_of(dtype)
  uint8_t nargs = 0;
  uint8_t args[kEwMaxArgs] = {kEwNone, kEwNone, kEwNone};
  uint8_t flags = 0;
  float a = 0, b = 0;
};

struct EwProgram {
  int n_inputs = 0;
  int n_instrs = 0;
  DType in_dtype[kEwMaxInputs] = {};
  EwInstr instr[kEwMaxInstrs];
  constexpr DType out_dtype() const { return instr[n_instrs - 1].dtype; }
};

// Builds a program from ONNX elementwise ops, one node at a time.
class EwBuilder {
 public:
  // `where` names the node in errors.
  EwBuilder(const std::vector<DType>& input_dtypes, std::string where);
  // Appends the instructions of `op` (an ONNX elementwise op name, with the
  // node's attributes) over operand slots `args` (kEwNone for an omitted
  // optional input), whose result has IR dtype `out`; returns its slot.
  int add(const std::string& op, const Attributes& attrs, const std::vector<int>& args, DType out);
  DType slot_dtype(int slot) const { return slot_dtype_.at(size_t(slot)); }
  const EwProgram& program() const { return p_; }

 private:
  int emit(EwOp op, EwKind kind, DType out, std::vector<int> args, float a = 0, float b = 0, uint8_t flags = 0);
  EwProgram p_;
  std::vector<DType> slot_dtype_;
  std::string where_;
};

// True for the op names EwBuilder::add knows.
bool ew_supported(const std::string& op);

// Where input `t` read under block `b` (FusedElementwise's blocks) starts: its column b.start.
inline const void* block_data(const Tensor& t, const FusedBlock& b) {
  return static_cast<const char*>(t.raw()) + (b.whole() ? 0 : b.start * int64_t(dtype_size(t.dtype())));
}

// Runs `p` on ctx's stream: inputs[k] is program input k (a device tensor that
// broadcasts to `out`, or whose column block blocks[k] does); `out` receives
// the last instruction's result. host[k], when given and not null, is input
// k's value on the host (ctx.host_value): one-element ones become immediates
// of the fast path instead of loads. Blocks (none, or one per input) must fit
// their tensors (block_shape checks them).
void run_ew_program(const KernelContext& ctx, const EwProgram& p, const std::vector<const Tensor*>& inputs, Tensor& out,
                    const std::vector<const Tensor*>& host = {}, const std::vector<FusedBlock>& blocks = {});

// run_ew_program's fast path (ew_fast.cu): runs `p` and returns true when
// every value is float-like (f32/f16/bf16/bool, computed in f32) and the
// output has fewer than 2^31 elements; returns false, launching nothing, else.
// blocks: one per input, checked.
bool run_ew_fast(const KernelContext& ctx, const EwProgram& p, const std::vector<const Tensor*>& inputs,
                 const std::vector<const Tensor*>& host, const std::vector<FusedBlock>& blocks, Tensor& out);

}  // namespace tessera::cuda
