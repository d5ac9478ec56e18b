// Constant folding, the pass that removes the Shape→Gather→Concat→Reshape
// chains exporters emit. Nodes are visited in order; each is first inferred
// (so Shape of a statically-shaped value is known), then evaluated with the
// CPU reference kernels when all its inputs are constants. Shape and Size
// fold from a static input shape alone.
#include <unordered_set>

#include "backend/cpu/kernel_registry.h"
#include "ir/op_registry.h"
#include "passes/pass_manager.h"

namespace tessera {

void apply_inferred(Node& n, const std::vector<TensorType>& types);

namespace {

// Folding must not blow weights up (an Expand of a weight to a batch, say).
constexpr size_t kMaxFoldedBytes = size_t(64) << 20;

bool foldable(const Node& n) {
  if (const OpSchema* s = OpRegistry::find(n.op); s && s->collective) return false;
  if (n.op == "Shape" || n.op == "Size") {
    const Value* in = n.input(0);
    return in && in->rank_known && is_static(in->shape);
  }
  for (const Value* in : n.inputs)
    if (in && !in->constant) return false;
  return cpu::KernelRegistry::find(n.op) != nullptr;
}

bool fold(Node& n) {
  std::vector<Tensor> shape_only;  // Shape/Size read only the input's shape: give them a zero-filled stand-in
  shape_only.reserve(n.inputs.size());  // pointers into it are kept below
  std::vector<const Tensor*> ins;
  for (const Value* in : n.inputs) {
    if (!in) { ins.push_back(nullptr); continue; }
    if (in->constant) { ins.push_back(&*in->constant); continue; }
    shape_only.push_back(Tensor::view(in->dtype, in->shape, nullptr, nullptr));
    ins.push_back(&shape_only.back());
  }
  std::vector<TensorType> types = infer_node(n, ins);
  for (size_t i = 0; i < n.outputs.size(); ++i)
    if (n.outputs[i] && numel(types[i].shape) * int64_t(dtype_size(types[i].dtype)) > int64_t(kMaxFoldedBytes)) return false;
  std::vector<Tensor> outs = cpu::run_node(n, ins);
  for (size_t i = 0; i < n.outputs.size(); ++i) {
    Value* v = n.outputs[i];
    if (!v) continue;
    v->constant = outs[i].clone();  // own the bytes: a kernel may alias its input
    v->dtype = outs[i].dtype();
    v->shape = outs[i].shape();
    v->rank_known = true;
    v->producer = nullptr;
  }
  return true;
}

}  // namespace

void fold_constants(Graph& g) {
  std::vector<Node*> folded;
  for (auto& n : g.mutable_nodes()) {
    apply_inferred(*n, infer_node(*n));
    if (foldable(*n) && fold(*n)) folded.push_back(n.get());
  }
  std::unordered_set<Node*> dead(folded.begin(), folded.end());
  g.remove_nodes_if([&](const Node& n) { return dead.count(const_cast<Node*>(&n)) != 0; });
}

}  // namespace tessera
