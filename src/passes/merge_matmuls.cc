// See merge_matmuls.h.
#include "passes/merge_matmuls.h"

#include <cstring>
#include <map>
#include <unordered_set>

#include "ops/fused_elementwise.h"
#include "passes/uses.h"

namespace tessera {
namespace {

// A MatMul this pass can merge: A of known rank, B a 2-D constant of A's float dtype read only here.
bool mergeable(const Node& n, const Uses& u) {
  if (n.op != "MatMul" || !n.domain.empty() || n.inputs.size() != 2 || n.outputs.size() != 1) return false;
  const Value* a = n.inputs[0];
  const Value* b = n.inputs[1];
  if (!a || !b || !a->rank_known || a->shape.empty() || !b->is_constant() || b->shape.size() != 2) return false;
  return is_float(a->dtype) && b->dtype == a->dtype && u.count(b) == 1 && b->shape[1] > 0 && b->shape[1] % 8 == 0;
}

// Row-major [rows, N_i] tensors side by side as one of `shape` ([rows, N_0 + N_1 + ...], or
// [N_0 + N_1 + ...] for rows = 1): the weights [K, N_i], or the biases [N_i].
Tensor concat_columns(const std::vector<const Tensor*>& parts, const Shape& shape) {
  DType dt = parts[0]->dtype();
  size_t es = dtype_size(dt);
  const int64_t n_total = shape.back(), rows = numel(shape) / n_total;
  Tensor w = Tensor::empty(dt, shape);
  int64_t col = 0;
  for (const Tensor* t : parts) {
    int64_t n = t->numel() / rows;
    for (int64_t r = 0; r < rows; ++r)
      std::memcpy(static_cast<char*>(w.raw()) + size_t(r * n_total + col) * es,
                  static_cast<const char*>(t->raw()) + size_t(r * n) * es, size_t(n) * es);
    col += n;
  }
  return w;
}

// The input of `add` that is not `y`.
const Value* other_input(const Node& add, const Value* y) { return add.inputs[0] == y ? add.inputs[1] : add.inputs[0]; }

// The Add of a constant bias [N] (or [1, .., N]) of the MatMul's dtype that alone reads `mm`'s
// output and alone reads the bias (BERT's and Qwen's q/k/v Linear layers); null if none.
Node* bias_add(const Node& mm, const Uses& u) {
  const Value* y = mm.outputs[0];
  Node* add = u.sole_reader(y);
  if (!add || add->op != "Add" || !add->domain.empty() || add->inputs.size() != 2 || add->outputs.size() != 1) return nullptr;
  const Value* b = other_input(*add, y);
  if (b == y || !b->is_constant() || b->dtype != y->dtype || u.count(b) != 1 || b->shape.empty()) return nullptr;
  if (numel(b->shape) != b->shape.back() || b->shape.back() != mm.inputs[1]->shape[1] || b->shape.size() > y->shape.size())
    return nullptr;
  return add;
}

void merge(Graph& g, const std::vector<Node*>& group, const Uses& u, std::unordered_set<const Node*>& dead) {
  Node& first = *group[0];
  // Every member's bias Add joins the merged GEMM (one Add before the Split), or none does.
  std::vector<Node*> adds;
  for (Node* mm : group)
    if (Node* a = bias_add(*mm, u)) adds.push_back(a);
  if (adds.size() != group.size()) adds.clear();
  int64_t k = first.inputs[1]->shape[0], n_total = 0;
  std::vector<int64_t> sizes;
  std::vector<Value*> outs;
  std::vector<const Tensor*> weights, biases;
  for (size_t i = 0; i < group.size(); ++i) {
    const Node* mm = group[i];
    sizes.push_back(mm->inputs[1]->shape[1]);
    n_total += sizes.back();
    weights.push_back(&*mm->inputs[1]->constant);
    if (adds.empty()) {
      outs.push_back(mm->outputs[0]);
    } else {
      outs.push_back(adds[i]->outputs[0]);
      biases.push_back(&*other_input(*adds[i], mm->outputs[0])->constant);
    }
  }
  Value* w = g.add_constant(g.unique_name(first.name + ".merged_weight"), concat_columns(weights, {k, n_total}));
  Shape y_shape = first.outputs[0]->shape;
  y_shape.back() = n_total;
  Value* y = g.add_value(g.unique_name(first.name + ".merged"), first.outputs[0]->dtype, y_shape);
  Attributes a;
  a.set("axis", int64_t(-1));
  g.add_node("MatMul", first.name + ".merged", {first.inputs[0], w}, {y});
  if (!adds.empty()) {
    Value* yb = g.add_value(g.unique_name(first.name + ".merged_bias"), y->dtype, y_shape);
    g.add_node("Add", first.name + ".merged_bias",
               {y, g.add_constant(g.unique_name(first.name + ".merged_bias_value"), concat_columns(biases, {n_total}))}, {yb});
    y = yb;
  }
  g.add_node("Split", first.name + ".merged_split", {y, g.add_constant(g.unique_name(first.name + ".split"), Tensor::vector_i64(sizes))},
             outs, std::move(a));
  for (Node* mm : group) {
    mm->outputs.clear();
    dead.insert(mm);
  }
  for (Node* add : adds) {
    add->outputs.clear();
    dead.insert(add);
  }
}

// Whether the group may merge beyond kMergeMaxN columns: few rows of A, and every output read
// only by elementwise ops that fuse_elementwise will fuse (the Split then becomes column blocks).
bool wide_ok(const std::vector<Node*>& group, const Uses& u) {
  const Value* a = group[0]->inputs[0];
  if (!is_static(a->shape) || numel(a->shape) / a->shape.back() > kMergeWideMaxRows) return false;
  for (const Node* mm : group) {
    const Value* y = mm->outputs[0];
    auto it = u.readers.find(y);
    if (u.outputs.count(y) || it == u.readers.end()) return false;
    for (const Node* r : it->second)
      if (!r->domain.empty() || !is_fusible_elementwise(r->op)) return false;
  }
  return true;
}

}  // namespace

void merge_matmuls(Graph& g) {
  Uses u(g);
  // (A, K) -> its MatMuls; groups and members in graph order, so names do not depend on pointers.
  std::map<std::pair<const Value*, int64_t>, size_t> index;
  std::vector<std::vector<Node*>> siblings;
  for (auto& n : g.nodes()) {
    if (!mergeable(*n, u)) continue;
    auto [it, fresh] = index.try_emplace({n->inputs[0], n->inputs[1]->shape[0]}, siblings.size());
    if (fresh) siblings.emplace_back();
    siblings[it->second].push_back(n.get());
  }
  std::unordered_set<const Node*> dead;
  for (auto& group : siblings) {
    int64_t n_total = 0;
    for (const Node* mm : group) n_total += mm->inputs[1]->shape[1];
    if (group.size() < 2 || (n_total > kMergeMaxN && !wide_ok(group, u))) continue;
    merge(g, group, u, dead);
  }
  if (dead.empty()) return;
  g.remove_nodes_if([&](const Node& n) { return dead.count(&n) != 0; });
  g.toposort();
}

}  // namespace tessera
