#include "backend/cpu/kernel_registry.h"

#include <map>

namespace tessera::cpu {

namespace {
std::map<std::string, KernelFn>& table() {
  static std::map<std::string, KernelFn> t;
  return t;
}
}  // namespace

void KernelRegistry::add(const std::string& op, KernelFn fn) {
  if (!table().emplace(op, fn).second) fail(ErrorKind::Internal, "CPU kernel for '", op, "' is registered twice");
}

KernelFn KernelRegistry::find(const std::string& op) {
  auto it = table().find(op);
  return it == table().end() ? nullptr : it->second;
}

std::vector<std::string> KernelRegistry::names() {
  std::vector<std::string> out;
  for (auto& [k, v] : table()) out.push_back(k);
  return out;
}

const Tensor& KernelContext::input(size_t i) const {
  if (!has_input(i)) error("input ", i, " is required");
  return *inputs_[i];
}

Tensor& KernelContext::output(size_t i) {
  Tensor& t = outputs_.at(i);
  if (!t.defined()) t = Tensor::empty(types_[i].dtype, types_[i].shape);
  return t;
}

void KernelContext::set_output(size_t i, Tensor t) {
  if (t.dtype() != types_.at(i).dtype || t.shape() != types_[i].shape)
    error("kernel produced ", dtype_name(t.dtype()), to_string(t.shape()), " for output ", i, ", inference said ",
          dtype_name(types_[i].dtype), to_string(types_[i].shape));
  outputs_[i] = std::move(t);
}

RunContext& KernelContext::run() const {
  if (!run_) error("needs a run context (communicators); it cannot run during constant folding");
  return *run_;
}

std::vector<Tensor> run_node(const Node& node, const std::vector<const Tensor*>& inputs, RunContext* run) {
  KernelFn fn = KernelRegistry::find(node.op);
  if (!fn) fail(ErrorKind::Unsupported, "node '", node.name, "': op '", node.op, "' has no CPU kernel");
  std::vector<TensorType> types = infer_node(node, inputs);
  types.resize(node.outputs.size());
  KernelContext ctx(node, inputs, std::move(types), run);
  fn(ctx);
  for (size_t i = 0; i < ctx.num_outputs(); ++i)
    if (node.outputs[i] && !ctx.outputs()[i].defined()) ctx.error("the CPU kernel did not produce output ", i);
  return std::move(ctx.outputs());
}

}  // namespace tessera::cpu
