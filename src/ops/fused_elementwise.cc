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
  std::vector<int64_t> blocks;
  for (size_t k = 0; k < p.blocks.size(); ++k)
    if (!p.blocks[k].whole()) blocks.insert(blocks.end(), {int64_t(k), p.blocks[k].start, p.blocks[k].width});
  attrs.erase("blocks");
  if (!blocks.empty()) attrs.set("blocks", blocks);
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
  p.blocks.assign(size_t(p.n_inputs), FusedBlock{});
  if (a.has("blocks")) {
    std::vector<int64_t> b = a.get_ints("blocks");
    if (b.empty() || b.size() % 3 != 0) bad("attribute 'blocks' must be [input, start, width] triples, got ", b.size(), " ints");
    for (size_t i = 0; i < b.size(); i += 3) {
      if (b[i] < 0 || b[i] >= p.n_inputs) bad("a block of input ", b[i], " of ", p.n_inputs);
      if (b[i + 1] < 0 || b[i + 2] < 1) bad("the block of input ", b[i], " starts at ", b[i + 1], " with width ", b[i + 2]);
      FusedBlock& fb = p.blocks[size_t(b[i])];
      if (!fb.whole()) bad("input ", b[i], " has two blocks");
      fb = {b[i + 1], b[i + 2]};
    }
  }
  return p;
}

Shape block_shape(const Shape& in, const FusedBlock& b, const std::string& where) {
  if (b.whole()) return in;
  if (in.empty() || b.start < 0 || b.width < 1 || b.start + b.width > in.back())
    fail(ErrorKind::Shape, where, ": columns ", b.start, "..", b.start + b.width - 1, " of an input of shape ", to_string(in));
  Shape s = in;
  s.back() = b.width;
  return s;
}

namespace {

std::vector<TensorType> infer(const InferContext& c) {
  FusedProgram p = get_fused_program(c.node());
  const std::string where = str("node '", c.node().name, "' (FusedElementwise)");
  TensorType t{p.instrs.back().dtype, {}, true};
  for (size_t i = 0; i < c.num_inputs(); ++i) {
    if (!c.has_input(i)) continue;
    const TensorType& in = c.input(i);
    if (!in.rank_known) return {TensorType{t.dtype, {}, false}};
    t.shape = broadcast_shapes(t.shape, block_shape(in.shape, p.blocks[i], where + " input " + std::to_string(i)), where);
  }
  return {t};
}

TESSERA_REGISTER_OP({"FusedElementwise", 1, 64, 1, 1, infer});

}  // namespace
}  // namespace tessera
