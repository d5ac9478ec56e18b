// Elementwise ops: NumPy broadcasting, output dtype from the inputs (bool for
// comparisons and logic). Kernels: backend/*/kernels/elementwise.*.
#include "ir/op_registry.h"

namespace tessera {
namespace {

std::vector<TensorType> broadcast_same(const InferContext& c) { return {broadcast_inputs(c, c.input(0).dtype)}; }
std::vector<TensorType> broadcast_bool(const InferContext& c) { return {broadcast_inputs(c, DType::boolean)}; }
std::vector<TensorType> unary(const InferContext& c) { return {c.input(0)}; }
std::vector<TensorType> where(const InferContext& c) { return {broadcast_inputs(c, c.input(1).dtype)}; }
std::vector<TensorType> cast(const InferContext& c) {
  TensorType t = c.input(0);
  if (c.node().op == "CastLike") t.dtype = c.input(1).dtype;
  else t.dtype = DType(c.attrs().get_int("to"));
  return {t};
}
std::vector<TensorType> dropout(const InferContext& c) {
  TensorType mask = c.input(0);
  mask.dtype = DType::boolean;
  return {c.input(0), mask};
}

const char* kBinary[] = {"Add", "Sub", "Mul", "Div", "Pow", "Mod"};
const char* kVariadic[] = {"Max", "Min", "Sum", "Mean"};
const char* kCompare[] = {"Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual", "And", "Or", "Xor"};
const char* kUnary[] = {"Neg", "Abs", "Exp", "Log", "Sqrt", "Reciprocal", "Tanh", "Erf", "Sigmoid", "Relu",
                        "Sin", "Cos", "Floor", "Ceil", "Round", "Sign", "LeakyRelu", "HardSigmoid",
                        "HardSwish", "Gelu", "Elu", "Softplus", "Identity", "Selu", "Celu", "Mish", "Softsign"};

struct Registrar {
  Registrar() {
    for (const char* op : kBinary) OpRegistry::add({op, 2, 2, 1, 1, broadcast_same});
    for (const char* op : kVariadic) OpRegistry::add({op, 1, 64, 1, 1, broadcast_same});
    for (const char* op : kCompare) OpRegistry::add({op, 2, 2, 1, 1, broadcast_bool});
    for (const char* op : kUnary) OpRegistry::add({op, 1, 1, 1, 1, unary});
    OpRegistry::add({"Not", 1, 1, 1, 1, unary});
    OpRegistry::add({"IsNaN", 1, 1, 1, 1, [](const InferContext& c) {
                       return std::vector<TensorType>{{DType::boolean, c.input(0).shape, c.input(0).rank_known}};
                     }});
    OpRegistry::add({"Clip", 1, 3, 1, 1, unary});
    OpRegistry::add({"Where", 3, 3, 1, 1, where});
    OpRegistry::add({"Cast", 1, 1, 1, 1, cast});
    OpRegistry::add({"CastLike", 2, 2, 1, 1, cast});
    OpRegistry::add({"Dropout", 1, 3, 1, 2, dropout});
  }
} registrar;

}  // namespace
}  // namespace tessera
