// FusedElementwise (fused_elementwise.h): schema, inference from the program
// in its attributes, and the attribute encoding shared by the pass and the kernels.
#include "ops/fused_elementwise.h"

#include <set>

#include "ir/op_registry.h"

namespace tessera {

bool is_fusible_elementwise(const std::string& op) {
  static const std::set<std::string> ops = {
      "Add", "Sub", "Mul", "Div", "Pow", "Mod", "Max", "Min", "Sum", "Mean",
      "Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual", "And", "Or", "Xor", "Not",
      "Neg", "Abs", "Exp", "Log", "Sqrt", "Reciprocal", "Tanh", "Erf", "Sigmoid", "Relu",
      "Sin", "Cos", "Floor", "Ceil", "Round", "Sign", "LeakyRelu", "HardSigmoid", "HardSwish",
      "Gelu", "Elu", "Softplus", "Selu", "Celu", "Mish", "Softsign", "IsNaN", "Clip", "Where", "Cast", "CastLike"};
  return ops.count(op) != 0;
}

void set_fused_program(Attributes& attrs, const FusedProgram& p) {
  std::vector<std::string> ops;
  std::vector<int64_t> arity, args, dtypes;
  std::string expr;
  auto slot_name = [&](int s) {
    return s < 0 ? std::string("none") : s < p.n_inputs ? "x" + std::to_string(s) : "t" + std::to_string(s - p.n_inputs);
  };
  for (size_t k = 0; k < p.instrs.size(); ++k) {
    const FusedInstr& in = p.instrs[k];
    ops.push_back(in.op);
    arity.push_back(int64_t(in.args.size()));
    dtypes.push_back(int64_t(in.dtype));
    if (k) expr += "; ";
    expr += "t" + std::to_string(k) + " = " + in.op;
    if (!in.attrs.all().empty()) {
      expr += "[";
      bool first = true;
      for (const auto& [name, value] : in.attrs.all()) {
        expr += (first ? "" : ", ") + name + "=" + attribute_to_string(value);
        first = false;
        attrs.set("i" + std::to_string(k) + "." + name, value);
      }
      expr += "]";
    }
    expr += "(";
    for (size_t j = 0; j < in.args.size(); ++j) {
      args.push_back(in.args[j]);
      expr += (j ? ", " : "") + slot_name(in.args[j]);
    }
    expr += ")";
  }
  attrs.set("ops", ops);
  attrs.set("arity", arity);
  attrs.set("args", args);
  attrs.set("dtypes", dtypes);
  attrs.set("expr", expr);
}

FusedProgram get_fused_program(const Node& node) {
  auto bad = [&](const auto&... what) {
    fail(ErrorKind::Internal, "node '", node.name, "' (FusedElementwise): ", what...);
  };
  const Attributes& a = node.attrs;
  if (!a.has("ops")) bad("no program (attribute 'ops')");
  const auto* ops = std::get_if<std::vector<std::string>>(&a.all().at("ops"));
  if (!ops) bad("attribute 'ops' is not a list of strings");
  std::vector<int64_t> arity = a.get_ints("arity"), args = a.get_ints("args"), dtypes = a.get_ints("dtypes");
  if (ops->empty() || arity.size() != ops->size() || dtypes.size() != ops->size()) bad("ops, arity and dtypes differ in length");
  FusedProgram p;
  p.n_inputs = int(node.inputs.size());
  size_t at = 0;
  for (size_t k = 0; k < ops->size(); ++k) {
    FusedInstr in;
    in.op = (*ops)[k];
    if (dtypes[k] < 0 || dtypes[k] > int64_t(DType::boolean)) bad("instruction ", k, " has dtype code ", dtypes[k]);
    in.dtype = DType(dtypes[k]);
    for (int64_t j = 0; j < arity[k]; ++j, ++at) {
      if (at >= args.size()) bad("attribute 'args' is shorter than the arities say");
      int64_t s = args[at];
      if (s < -1 || s >= p.n_inputs + int64_t(k)) bad("instruction ", k, " reads slot ", s, ", not yet defined");
      in.args.push_back(int(s));
    }
    if (in.args.empty() || in.args[0] < 0) bad("instruction ", k, " has no first operand");
    std::string prefix = "i" + std::to_string(k) + ".";
    for (const auto& [name, value] : a.all())
      if (name.compare(0, prefix.size(), prefix) == 0) in.attrs.set(name.substr(prefix.size()), value);
    p.instrs.push_back(std::move(in));
  }
  if (at != args.size()) bad("attribute 'args' is longer than the arities say");
  return p;
}

namespace {

std::vector<TensorType> infer(const InferContext& c) {
  FusedProgram p = get_fused_program(c.node());
  return {broadcast_inputs(c, p.instrs.back().dtype)};
}

TESSERA_REGISTER_OP({"FusedElementwise", 1, 64, 1, 1, infer});

}  // namespace
}  // namespace tessera
