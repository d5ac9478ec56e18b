// See merge_matmuls.h.
#include "passes/merge_matmuls.h"

#include <cstring>
#include <map>
#include <unordered_set>

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

// [K, N_0 + N_1 + ...]: the weights side by side.
Tensor concat_columns(const std::vector<Node*>& group, int64_t k, int64_t n_total) {
  DType dt = group[0]->inputs[1]->dtype;
  size_t es = dtype_size(dt);
  Tensor w = Tensor::empty(dt, {k, n_total});
  int64_t col = 0;
  for (const Node* mm : group) {
    const Tensor& b = *mm->inputs[1]->constant;
    int64_t n = b.dim(1);
    for (int64_t r = 0; r < k; ++r)
      std::memcpy(static_cast<char*>(w.raw()) + size_t(r * n_total + col) * es,
                  static_cast<const char*>(b.raw()) + size_t(r * n) * es, size_t(n) * es);
    col += n;
  }
  return w;
}

void merge(Graph& g, const std::vector<Node*>& group, std::unordered_set<const Node*>& dead) {
  Node& first = *group[0];
  int64_t k = first.inputs[1]->shape[0], n_total = 0;
  std::vector<int64_t> sizes;
  std::vector<Value*> outs;
  for (Node* mm : group) {
    sizes.push_back(mm->inputs[1]->shape[1]);
    n_total += sizes.back();
    outs.push_back(mm->outputs[0]);
  }
  Value* w = g.add_constant(g.unique_name(first.name + ".merged_weight"), concat_columns(group, k, n_total));
  Shape y_shape = first.outputs[0]->shape;
  y_shape.back() = n_total;
  Value* y = g.add_value(g.unique_name(first.name + ".merged"), first.outputs[0]->dtype, y_shape);
  Attributes a;
  a.set("axis", int64_t(-1));
  g.add_node("MatMul", first.name + ".merged", {first.inputs[0], w}, {y});
  g.add_node("Split", first.name + ".merged_split", {y, g.add_constant(g.unique_name(first.name + ".split"), Tensor::vector_i64(sizes))},
             outs, std::move(a));
  for (Node* mm : group) {
    mm->outputs.clear();
    dead.insert(mm);
  }
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
    if (group.size() < 2 || n_total > kMergeMaxN) continue;
    merge(g, group, dead);
  }
  if (dead.empty()) return;
  g.remove_nodes_if([&](const Node& n) { return dead.count(&n) != 0; });
  g.toposort();
}

}  // namespace tessera
