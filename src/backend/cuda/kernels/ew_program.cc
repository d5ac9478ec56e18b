// EwBuilder: ONNX elementwise ops (names and attributes as in
// ops/elementwise.cc) → program instructions. Attribute defaults and operand
// conversions mirror the CPU reference kernels (backend/cpu/kernels/elementwise.cc).
#include "backend/cuda/kernels/ew_program.h"

#include <map>

#include "core/error.h"

namespace tessera::cuda {
namespace {

// f16/bf16 are computed, and accumulated across variadic inputs, in f32.
DType compute_dtype(DType t) { return t == DType::f16 || t == DType::bf16 ? DType::f32 : t; }

const std::map<std::string, EwOp>& binary_ops() {
  static const std::map<std::string, EwOp> m = {{"Add", EwOp::add}, {"Sub", EwOp::sub}, {"Mul", EwOp::mul},
                                                {"Div", EwOp::div}, {"Pow", EwOp::pow}, {"Mod", EwOp::mod}};
  return m;
}
const std::map<std::string, EwOp>& variadic_ops() {
  static const std::map<std::string, EwOp> m = {{"Sum", EwOp::add}, {"Mean", EwOp::add}, {"Max", EwOp::max}, {"Min", EwOp::min}};
  return m;
}
const std::map<std::string, EwOp>& compare_ops() {
  static const std::map<std::string, EwOp> m = {
      {"Equal", EwOp::equal}, {"Less", EwOp::less}, {"Greater", EwOp::greater}, {"LessOrEqual", EwOp::less_equal},
      {"GreaterOrEqual", EwOp::greater_equal}, {"And", EwOp::logical_and}, {"Or", EwOp::logical_or}, {"Xor", EwOp::logical_xor}};
  return m;
}
// Unary ops without attributes, or whose attributes are read in unary_attrs.
const std::map<std::string, EwOp>& unary_ops() {
  static const std::map<std::string, EwOp> m = {
      {"Neg", EwOp::neg}, {"Abs", EwOp::abs}, {"Exp", EwOp::exp}, {"Log", EwOp::log}, {"Sqrt", EwOp::sqrt},
      {"Reciprocal", EwOp::reciprocal}, {"Tanh", EwOp::tanh}, {"Erf", EwOp::erf}, {"Sigmoid", EwOp::sigmoid},
      {"Relu", EwOp::relu}, {"Sin", EwOp::sin}, {"Cos", EwOp::cos}, {"Floor", EwOp::floor}, {"Ceil", EwOp::ceil},
      {"Round", EwOp::round}, {"Sign", EwOp::sign}, {"Softsign", EwOp::softsign}, {"HardSwish", EwOp::hard_swish},
      {"Softplus", EwOp::softplus}, {"Mish", EwOp::mish}, {"LeakyRelu", EwOp::leaky_relu},
      {"HardSigmoid", EwOp::hard_sigmoid}, {"Elu", EwOp::elu}, {"Celu", EwOp::celu}, {"Selu", EwOp::selu},
      {"Gelu", EwOp::gelu}};
  return m;
}

// The op's float attributes, with the CPU kernel's defaults.
void unary_attrs(EwOp& op, const Attributes& at, float& a, float& b) {
  switch (op) {
    case EwOp::leaky_relu: a = at.get_float("alpha", 0.01f); break;
    case EwOp::hard_sigmoid: a = at.get_float("alpha", 0.2f), b = at.get_float("beta", 0.5f); break;
    case EwOp::elu: case EwOp::celu: a = at.get_float("alpha", 1.0f); break;
    case EwOp::selu:
      a = at.get_float("alpha", 1.67326319217681884765625f), b = at.get_float("gamma", 1.05070102214813232421875f);
      break;
    case EwOp::gelu:
      if (at.get_string("approximate", "none") == "tanh") op = EwOp::gelu_tanh;
      break;
    default: break;
  }
}

}  // namespace

bool ew_supported(const std::string& op) {
  return binary_ops().count(op) || variadic_ops().count(op) || compare_ops().count(op) || unary_ops().count(op) ||
         op == "Not" || op == "IsNaN" || op == "Clip" || op == "Where" || op == "Cast" || op == "CastLike";
}

EwBuilder::EwBuilder(const std::vector<DType>& input_dtypes, std::string where) : where_(std::move(where)) {
  if (input_dtypes.size() > size_t(kEwMaxInputs))
    fail(ErrorKind::Unsupported, where_, ": elementwise program with ", input_dtypes.size(), " inputs (at most ", kEwMaxInputs, ")");
  p_.n_inputs = int(input_dtypes.size());
  for (size_t k = 0; k < input_dtypes.size(); ++k) p_.in_dtype[k] = input_dtypes[k];
  slot_dtype_ = input_dtypes;
}

int EwBuilder::emit(EwOp op, EwKind kind, DType out, std::vector<int> args, float a, float b, uint8_t flags) {
  if (p_.n_instrs == kEwMaxInstrs)
    fail(ErrorKind::Unsupported, where_, ": elementwise program longer than ", kEwMaxInstrs, " instructions");
  EwInstr& in = p_.instr[p_.n_instrs++];
  in.op = op, in.kind = kind, in.dtype = out, in.a = a, in.b = b, in.flags = flags;
  in.nargs = uint8_t(args.size());
  for (size_t j = 0; j < args.size(); ++j) {
    if (args[j] != kEwNone && (args[j] < 0 || size_t(args[j]) >= slot_dtype_.size()))
      fail(ErrorKind::Internal, where_, ": elementwise operand slot ", args[j], " out of range");
    in.args[j] = uint8_t(args[j]);
  }
  slot_dtype_.push_back(out);
  return int(slot_dtype_.size()) - 1;
}

int EwBuilder::add(const std::string& op, const Attributes& at, const std::vector<int>& args, DType out) {
  auto need = [&](size_t n) {
    if (args.size() < n || args[0] == kEwNone) fail(ErrorKind::Internal, where_, ": ", op, " needs ", n, " operands");
  };
  need(1);
  DType t0 = slot_dtype(args[0]);
  EwKind k0 = ew_kind_of(t0);
  auto no_bool = [&] {
    if (t0 == DType::boolean) fail(ErrorKind::Unsupported, where_, ": ", op, " on bool tensors is not supported");
  };
  if (auto it = binary_ops().find(op); it != binary_ops().end()) {
    need(2);
    no_bool();
    EwOp e = it->second == EwOp::mod && at.get_int("fmod", 0) != 0 ? EwOp::fmod : it->second;
    return emit(e, k0, out, {args[0], args[1]});
  }
  if (auto it = variadic_ops().find(op); it != variadic_ops().end()) {
    no_bool();
    bool mean = op == "Mean";
    if (args.size() == 1 && !mean) return emit(EwOp::copy, k0, out, {args[0]});
    DType acc_t = compute_dtype(t0);  // the CPU kernel accumulates in the compute type of input 0
    int acc = args[0];
    for (size_t j = 1; j < args.size(); ++j)
      acc = emit(it->second, k0, j + 1 == args.size() && !mean ? out : acc_t, {acc, args[j]});
    if (mean) acc = emit(EwOp::div_const, k0, out, {acc}, float(args.size()));
    return acc;
  }
  if (auto it = compare_ops().find(op); it != compare_ops().end()) {
    need(2);
    return emit(it->second, k0, DType::boolean, {args[0], args[1]});
  }
  if (auto it = unary_ops().find(op); it != unary_ops().end()) {
    no_bool();
    EwOp e = it->second;
    float a = 0, b = 0;
    unary_attrs(e, at, a, b);
    return emit(e, k0, out, {args[0]}, a, b);
  }
  if (op == "Not") return emit(EwOp::logical_not, EwKind::i64, DType::boolean, {args[0]});
  if (op == "IsNaN") return emit(EwOp::is_nan, k0, DType::boolean, {args[0]});
  if (op == "Cast" || op == "CastLike") return emit(EwOp::copy, k0, out, {args[0]});
  if (op == "Where") {
    need(3);
    return emit(EwOp::where, ew_kind_of(slot_dtype(args[1])), out, {args[0], args[1], args[2]});
  }
  if (op == "Clip") {
    no_bool();
    int lo = args.size() > 1 ? args[1] : kEwNone, hi = args.size() > 2 ? args[2] : kEwNone;
    float a = 0, b = 0;
    uint8_t flags = (lo != kEwNone ? 1 : 0) | (hi != kEwNone ? 2 : 0);
    if (at.has("min")) a = at.get_float("min", 0), lo = kEwNone, flags |= 1;  // opset < 11: bounds as attributes
    if (at.has("max")) b = at.get_float("max", 0), hi = kEwNone, flags |= 2;
    return emit(EwOp::clip, k0, out, {args[0], lo, hi}, a, b, flags);
  }
  fail(ErrorKind::Unsupported, where_, ": ", op, " is not an elementwise op of the CUDA program kernel");
}

}  // namespace tessera::cuda
