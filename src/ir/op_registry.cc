#include "ir/op_registry.h"

#include <map>

namespace tessera {

namespace {
std::map<std::string, OpSchema>& table() {
  static std::map<std::string, OpSchema> t;
  return t;
}
}  // namespace

void OpRegistry::add(OpSchema schema) {
  std::string name = schema.name;
  if (!table().emplace(name, std::move(schema)).second)
    fail(ErrorKind::Internal, "op '", name, "' is registered twice");
}

const OpSchema* OpRegistry::find(const std::string& op) {
  auto it = table().find(op);
  return it == table().end() ? nullptr : &it->second;
}

std::vector<std::string> OpRegistry::names() {
  std::vector<std::string> out;
  for (auto& [k, v] : table()) out.push_back(k);
  return out;
}

const TensorType& InferContext::input(size_t i) const {
  if (!has_input(i)) error("input ", i, " is required");
  return types_[i];
}

const Tensor& InferContext::require_value(size_t i, const char* what) const {
  const Tensor* t = value(i);
  if (!t) error(what, " (input ", i, ") must be known at build time (a constant); give the model static shapes or fold it");
  return *t;
}

static std::vector<TensorType> run_infer(const Node& node, std::vector<TensorType> types, std::vector<const Tensor*> values) {
  const OpSchema* s = OpRegistry::find(node.op);
  if (!s) fail(ErrorKind::Unsupported, "node '", node.name, "': op '", node.op, "' is not supported");
  int n_in = int(node.inputs.size()), n_out = int(node.outputs.size());
  if (n_in < s->min_inputs || n_in > s->max_inputs)
    fail(ErrorKind::Parse, "node '", node.name, "' (", node.op, "): has ", n_in, " inputs, expected ", s->min_inputs, "..", s->max_inputs);
  if (n_out < s->min_outputs || n_out > s->max_outputs)
    fail(ErrorKind::Parse, "node '", node.name, "' (", node.op, "): has ", n_out, " outputs, expected ", s->min_outputs, "..", s->max_outputs);
  InferContext ctx(node, std::move(types), std::move(values));
  std::vector<TensorType> out = s->infer(ctx);
  if (out.size() < node.outputs.size()) fail(ErrorKind::Internal, "node '", node.name, "': inference gave too few outputs");
  return out;
}

std::vector<TensorType> infer_node(const Node& node) {
  std::vector<TensorType> types;
  std::vector<const Tensor*> values;
  for (Value* v : node.inputs) {
    types.push_back(v ? TensorType{v->dtype, v->shape, v->rank_known} : TensorType{});
    values.push_back(v && v->constant ? &*v->constant : nullptr);
  }
  return run_infer(node, std::move(types), std::move(values));
}

std::vector<TensorType> infer_node(const Node& node, const std::vector<const Tensor*>& inputs) {
  std::vector<TensorType> types;
  for (const Tensor* t : inputs) types.push_back(t ? TensorType{t->dtype(), t->shape(), true} : TensorType{});
  return run_infer(node, std::move(types), inputs);
}

std::vector<TensorType> infer_node(const Node& node, std::vector<TensorType> types, std::vector<const Tensor*> values) {
  return run_infer(node, std::move(types), std::move(values));
}

TensorType same_as_input(const InferContext& ctx, size_t i) { return ctx.input(i); }

TensorType broadcast_inputs(const InferContext& ctx, DType out) {
  TensorType t{out, {}, true};
  for (size_t i = 0; i < ctx.num_inputs(); ++i) {
    if (!ctx.has_input(i)) continue;
    const TensorType& in = ctx.input(i);
    if (!in.rank_known) return TensorType{out, {}, false};
    t.shape = broadcast_shapes(t.shape, in.shape, str("node '", ctx.node().name, "' (", ctx.node().op, ")"));
  }
  return t;
}

}  // namespace tessera
