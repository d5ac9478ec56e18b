// See fuse_rope.h.
#include "passes/fuse_rope.h"

#include <limits>
#include <optional>
#include <unordered_set>

#include "passes/uses.h"

namespace tessera {
namespace {

std::optional<std::vector<int64_t>> ints(const Node& n, size_t i) {
  const Value* v = n.input(i);
  if (!v) return std::nullopt;
  if (!v->is_constant()) return std::vector<int64_t>{-999};  // present but unknown: never matches
  return v->constant->to_i64_vector();
}

// Slice(x, [start], [end], [last axis], [1]) of a static last dim: its x, start and end.
struct SliceOf {
  Value* x = nullptr;
  int64_t start = 0, end = 0;
};
std::optional<SliceOf> last_axis_slice(const Node& s) {
  Value* x = s.input(0);
  if (!x || !x->rank_known || x->shape.empty() || x->shape.back() < 0) return std::nullopt;
  int64_t rank = int64_t(x->shape.size()), d = x->shape.back();
  auto st = ints(s, 1), en = ints(s, 2), ax = ints(s, 3), sp = ints(s, 4);
  if (!st || !en || !ax || st->size() != 1 || en->size() != 1 || ax->size() != 1) return std::nullopt;
  if ((*ax)[0] != -1 && (*ax)[0] != rank - 1) return std::nullopt;
  if (sp && *sp != std::vector<int64_t>{1}) return std::nullopt;
  int64_t b = (*st)[0], e = std::min((*en)[0], d);
  if (b < 0 || b > d || e < 0) return std::nullopt;
  return SliceOf{x, b, e};
}

// The operand of binary `n` that is not `v`, or null.
Value* other(const Node& n, const Value* v) {
  if (n.inputs.size() != 2) return nullptr;
  return n.inputs[0] == v ? n.inputs[1] : n.inputs[1] == v ? n.inputs[0] : nullptr;
}

bool broadcasts_to(const Value* t, const Value* x) {
  if (!t || !t->rank_known || t->dtype != x->dtype || t->shape.size() > x->shape.size()) return false;
  size_t lead = x->shape.size() - t->shape.size();
  for (size_t i = 0; i < t->shape.size(); ++i) {
    int64_t a = t->shape[i], b = x->shape[lead + i];
    if (a != 1 && a != b) return false;  // an unknown dim must be the same unknown, which we cannot tell: refuse
    if (a < 0) return false;
  }
  return true;
}

// The chain ending at Add `add`, as the nodes to drop and Rope's inputs; false if `add` is not one.
bool match(const Uses& r, const Node& add, std::vector<Node*>& dead, Value*& x, Value*& cos, Value*& sin) {
  if (add.op != "Add" || add.inputs.size() != 2) return false;
  for (int order = 0; order < 2; ++order) {
    Node* m_sin = r.sole_producer(add.inputs[size_t(order)], "Mul");
    Node* m_cos = r.sole_producer(add.inputs[size_t(1 - order)], "Mul");
    if (!m_sin || !m_cos || m_sin->inputs.size() != 2) continue;
    for (int side = 0; side < 2; ++side) {
      Node* cat = r.sole_producer(m_sin->inputs[size_t(side)], "Concat");
      if (!cat || cat->inputs.size() != 2) continue;
      Node* neg = r.sole_producer(cat->inputs[0], "Neg");
      Node* hi = neg ? r.sole_producer(neg->inputs.at(0), "Slice") : nullptr;
      Node* lo = r.sole_producer(cat->inputs[1], "Slice");
      if (!hi || !lo) continue;
      auto h = last_axis_slice(*hi), l = last_axis_slice(*lo);
      if (!h || !l || h->x != l->x) continue;
      x = h->x;
      int64_t d = x->shape.back(), rank = int64_t(x->shape.size()), axis = cat->attrs.get_int("axis", 0);
      if (d % 2 || l->start != 0 || l->end != d / 2 || h->start != d / 2 || h->end != d) continue;
      if (axis != -1 && axis != rank - 1) continue;
      sin = m_sin->inputs[size_t(1 - side)];
      cos = other(*m_cos, x);
      if (!cos || !broadcasts_to(cos, x) || !broadcasts_to(sin, x)) continue;
      dead = {m_sin, m_cos, cat, neg, hi, lo};
      return true;
    }
  }
  return false;
}

}  // namespace

void fuse_rope(Graph& g) {
  Uses r(g);
  std::unordered_set<const Node*> dead;
  for (auto& up : g.nodes()) {
    Node& add = *up;
    std::vector<Node*> chain;
    Value *x = nullptr, *cos = nullptr, *sin = nullptr;
    if (dead.count(&add) || !match(r, add, chain, x, cos, sin)) continue;
    bool clash = false;
    for (Node* n : chain) clash = clash || dead.count(n);
    if (clash) continue;
    for (Node* n : chain) {
      dead.insert(n);
      n->outputs.clear();
    }
    add.op = "Rope";
    add.domain.clear();
    add.inputs = {x, cos, sin};
    add.attrs = {};
  }
  if (!dead.empty()) g.remove_nodes_if([&](const Node& n) { return dead.count(&n) != 0; });
}

}  // namespace tessera
