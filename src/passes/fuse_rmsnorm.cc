// See fuse_rmsnorm.h. Each match is anchored at its ReduceMean and walks the
// single-reader chain forward; the final weight Mul is rewritten in place into
// RMSNormalization (its inputs come before it, so the order stays
// topological) and the rest of the chain is dropped.
#include "passes/fuse_rmsnorm.h"

#include <cmath>
#include <unordered_set>

#include "passes/uses.h"

namespace tessera {

std::vector<int64_t> reduction_axes(const Node& n, const Tensor* axes_input, int64_t rank, bool& known);

namespace {

bool is(const Node* n, const char* op, size_t inputs) {
  return n && n->op == op && n->inputs.size() == inputs && n->outputs.size() == 1 && n->outputs[0];
}

// A one-element constant of rank <= max_rank (so broadcasting it changes no shape).
std::optional<double> scalar_constant(const Value* v, size_t max_rank) {
  if (!v || !v->is_constant() || v->constant->numel() != 1 || v->shape.size() > max_rank) return std::nullopt;
  return v->constant->item_f64(0);
}

// The operand of binary `n` that is not `v`, or null when neither or both are `v`.
Value* other_operand(const Node* n, const Value* v) {
  if (n->inputs[0] == v && n->inputs[1] != v) return n->inputs[1];
  if (n->inputs[1] == v && n->inputs[0] != v) return n->inputs[0];
  return nullptr;
}

struct Match {
  Node* final = nullptr;       // Mul(weight, ·): becomes the RMSNormalization
  Value* x = nullptr;          // what the fused node normalises
  Value* weight = nullptr;
  double eps = 0;
  std::vector<Node*> dropped;  // the rest of the chain
};

// Squared input: Pow(v, 2) or Mul(v, v).
Value* squared_input(const Node* sq, size_t rank) {
  if (is(sq, "Pow", 2)) {
    auto e = scalar_constant(sq->inputs[1], rank);
    return e && *e == 2.0 ? sq->inputs[0] : nullptr;
  }
  if (is(sq, "Mul", 2) && sq->inputs[0] == sq->inputs[1]) return sq->inputs[0];
  return nullptr;
}

std::optional<Match> match_at(Node* rm, const Uses& uses) {
  if (!is(rm, "ReduceMean", rm->inputs.size()) || rm->attrs.get_int("keepdims", 1) != 1) return std::nullopt;
  Node* sq = rm->inputs[0] ? rm->inputs[0]->producer : nullptr;
  if (!sq || uses.sole_reader(sq->outputs[0]) != rm) return std::nullopt;
  Value* v = sq->inputs.empty() ? nullptr : sq->inputs[0];
  if (!v || !v->rank_known || v->shape.empty() || v->shape.back() <= 0 || !is_float(v->dtype)) return std::nullopt;
  size_t rank = v->shape.size();
  if (squared_input(sq, rank) != v) return std::nullopt;
  // Axes: exactly the last one.
  bool known = true;
  const Value* axes_in = rm->input(1);
  if (axes_in && !axes_in->is_constant()) return std::nullopt;
  std::vector<int64_t> axes =
      reduction_axes(*rm, axes_in ? &*axes_in->constant : nullptr, int64_t(rank), known);
  if (!known || axes != std::vector<int64_t>{int64_t(rank) - 1}) return std::nullopt;

  Match m;
  m.dropped = {sq, rm};
  // Add(eps) → Sqrt.
  Node* add = uses.sole_reader(rm->outputs[0]);
  if (!is(add, "Add", 2)) return std::nullopt;
  auto eps = scalar_constant(other_operand(add, rm->outputs[0]), rank);
  if (!eps || !(*eps >= 0)) return std::nullopt;
  m.eps = *eps;
  Node* sqrt = uses.sole_reader(add->outputs[0]);
  if (!is(sqrt, "Sqrt", 1)) return std::nullopt;
  m.dropped.insert(m.dropped.end(), {add, sqrt});
  // Reciprocal | Div(1, ·), then Mul(v, ·); or Div(v, sqrt).
  Node* next = uses.sole_reader(sqrt->outputs[0]);
  Node* norm = nullptr;
  if (is(next, "Div", 2) && next->inputs[0] == v && next->inputs[1] == sqrt->outputs[0]) {
    norm = next;
  } else {
    bool recip = is(next, "Reciprocal", 1) ||
                 (is(next, "Div", 2) && next->inputs[1] == sqrt->outputs[0] && scalar_constant(next->inputs[0], rank) == 1.0);
    if (!recip) return std::nullopt;
    m.dropped.push_back(next);
    norm = uses.sole_reader(next->outputs[0]);
    if (!is(norm, "Mul", 2) || other_operand(norm, next->outputs[0]) != v) return std::nullopt;
  }
  m.dropped.push_back(norm);
  // [Cast] → Mul(weight, ·).
  Value* normed = norm->outputs[0];
  Node* after = uses.sole_reader(normed);
  if (is(after, "Cast", 1) && is_float(after->outputs[0]->dtype)) {
    m.dropped.push_back(after);
    normed = after->outputs[0];
    after = uses.sole_reader(normed);
  }
  if (!is(after, "Mul", 2)) return std::nullopt;
  Value* w = other_operand(after, normed);
  if (!w || !w->rank_known || w->shape != Shape{v->shape.back()} || w->dtype != normed->dtype) return std::nullopt;
  if (after->outputs[0]->dtype != w->dtype || after->outputs[0]->shape != v->shape) return std::nullopt;
  m.final = after;
  m.weight = w;
  // A leading upcast is absorbed: the op reads x as is and computes in f32.
  m.x = v;
  Node* up = v->producer;
  if (is(up, "Cast", 1) && v->dtype == DType::f32 && up->inputs[0]) {
    DType from = up->inputs[0]->dtype;
    if (from == DType::f32 || from == DType::f16 || from == DType::bf16) {
      m.x = up->inputs[0];
      // Dropped only when the chain was its sole use (Pow/Mul and the normalising Mul/Div).
      auto it = uses.readers.find(v);
      size_t chain_reads = 0;
      for (Node* r : it->second) chain_reads += (r == sq || r == norm) ? 1 : 0;
      if (!uses.outputs.count(v) && chain_reads == it->second.size()) m.dropped.push_back(up);
    }
  }
  return m;
}

// "/model/layers.0/input_layernorm/ReduceMean" → "/model/layers.0/input_layernorm/RMSNormalization".
std::string fused_name(const Node& rm) {
  size_t slash = rm.name.rfind('/');
  return slash == std::string::npos ? rm.name + "/RMSNormalization" : rm.name.substr(0, slash + 1) + "RMSNormalization";
}

}  // namespace

void fuse_rmsnorm(Graph& g) {
  Uses uses(g);
  std::unordered_set<const Node*> dropped;
  std::vector<Node*> anchors;
  for (auto& n : g.nodes())
    if (n->op == "ReduceMean") anchors.push_back(n.get());
  for (Node* rm : anchors) {
    std::optional<Match> m = match_at(rm, uses);
    if (!m) continue;
    // Chains never share nodes (every link has one reader) except a shared upcast.
    bool clash = false;
    for (Node* d : m->dropped) clash = clash || dropped.count(d);
    if (clash) continue;
    Node& f = *m->final;
    f.name = fused_name(*rm);
    f.op = "RMSNormalization";
    f.inputs = {m->x, m->weight};
    f.attrs = Attributes();
    f.attrs.set("axis", int64_t(-1));
    f.attrs.set("epsilon", float(m->eps));
    dropped.insert(m->dropped.begin(), m->dropped.end());
  }
  if (!dropped.empty()) g.remove_nodes_if([&](const Node& n) { return dropped.count(&n) != 0; });
}

}  // namespace tessera
