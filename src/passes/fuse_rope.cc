// See fuse_rope.h.
#include "passes/fuse_rope.h"

#include <algorithm>
#include <limits>
#include <optional>
#include <unordered_set>

#include "passes/pass_manager.h"
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

// Split(x) along the last axis into two equal halves: num_outputs = 2, a
// constant split = [d/2, d/2], or neither (ONNX then splits evenly).
bool last_axis_halves(const Node& sp) {
  Value* x = sp.input(0);
  if (!x || !x->rank_known || x->shape.empty() || sp.outputs.size() != 2) return false;
  int64_t rank = int64_t(x->shape.size()), d = x->shape.back(), axis = sp.attrs.get_int("axis", 0);
  if (d < 0 || d % 2 || (axis != -1 && axis != rank - 1)) return false;
  if (sp.attrs.get_int("num_outputs", 2) != 2) return false;
  std::vector<int64_t> halves{d / 2, d / 2};
  if (sp.attrs.has("split") && sp.attrs.get_ints("split") != halves) return false;  // before opset 13
  auto split = ints(sp, 1);
  return !split || *split == halves;
}

// The x with `lo` = x[..., :d/2] and `hi` = x[..., d/2:] (d static and even),
// and the nodes that compute them: two last-axis Slices, or one Split whose
// outputs are (lo, hi). Each half must be read by the chain only; null if
// the halves are anything else.
Value* halves_of(const Uses& r, Value* lo, Value* hi, std::vector<Node*>& nodes) {
  Node* sl = r.sole_producer(lo, "Slice");
  Node* sh = r.sole_producer(hi, "Slice");
  if (sl && sh) {
    auto l = last_axis_slice(*sl), h = last_axis_slice(*sh);
    if (!l || !h || l->x != h->x) return nullptr;
    int64_t d = l->x->shape.back();
    if (d % 2 || l->start != 0 || l->end != d / 2 || h->start != d / 2 || h->end != d) return nullptr;
    nodes = {sl, sh};
    return l->x;
  }
  Node* sp = r.sole_producer(lo, "Split");
  if (!sp || r.sole_producer(hi, "Split") != sp || !last_axis_halves(*sp)) return nullptr;
  if (sp->outputs[0] != lo || sp->outputs[1] != hi) return nullptr;
  nodes = {sp};
  return sp->inputs[0];
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
      std::vector<Node*> halves;
      x = neg ? halves_of(r, cat->inputs[1], neg->inputs.at(0), halves) : nullptr;
      if (!x) continue;
      int64_t rank = int64_t(x->shape.size()), axis = cat->attrs.get_int("axis", 0);
      if (axis != -1 && axis != rank - 1) continue;
      sin = m_sin->inputs[size_t(1 - side)];
      cos = other(*m_cos, x);
      if (!cos || !broadcasts_to(cos, x) || !broadcasts_to(sin, x)) continue;
      dead = {m_sin, m_cos, cat, neg};
      dead.insert(dead.end(), halves.begin(), halves.end());
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

namespace {

// The Ropes reading Split output `part` as Rope(Reshape(part) to [..., H, D]), X's leading dims
// kept; empty when `part` has any other reader.
std::vector<Node*> block_ropes(const Value* part, const Shape& x, const Uses& u, int64_t& heads, int64_t& d) {
  Node* r = u.sole_reader(part);
  if (!r || r->op != "Reshape" || !r->domain.empty() || r->inputs[0] != part || r->outputs.size() != 1) return {};
  const Value* v = r->outputs[0];
  if (u.outputs.count(v) || u.count(v) == 0 || !v->rank_known || v->shape.size() != x.size() + 1 || !is_static(v->shape)) return {};
  if (!std::equal(x.begin(), x.end() - 1, v->shape.begin()) || v->shape[x.size() - 1] * v->shape.back() != part->shape.back())
    return {};
  std::vector<Node*> ropes;
  for (Node* n : u.readers.at(v)) {
    if (n->op != "Rope" || !n->domain.empty() || n->attrs.has("block") || n->inputs.size() != 3 || n->inputs[0] != v ||
        n->inputs[1] == v || n->inputs[2] == v)
      return {};
    ropes.push_back(n);
  }
  heads = v->shape[x.size() - 1], d = v->shape.back();
  return ropes;
}

// True if `sp`'s Rope readers now read its input; its one other output is then made by a Slice.
bool rope_blocks_of(Graph& g, Node& sp, const Uses& u) {
  if (!splits_last_axis(sp) || sp.outputs.size() < 2) return false;
  const Value* x = sp.inputs[0];
  const int64_t last = int64_t(x->shape.size()) - 1;
  std::vector<std::vector<Node*>> ropes(sp.outputs.size());
  std::vector<int64_t> offset(sp.outputs.size()), heads(sp.outputs.size()), d(sp.outputs.size());
  int64_t col = 0, left = -1;
  for (size_t i = 0; i < sp.outputs.size(); ++i) {
    const Value* part = sp.outputs[i];
    offset[i] = col, col += part->shape.back();
    ropes[i] = u.outputs.count(part) ? std::vector<Node*>{} : block_ropes(part, x->shape, u, heads[i], d[i]);
    if (ropes[i].empty()) {
      if (left >= 0) return false;  // two outputs kept: the Split stays as it is
      left = int64_t(i);
    }
  }
  for (size_t i = 0; i < sp.outputs.size(); ++i)
    for (Node* n : ropes[i]) {
      n->inputs[0] = sp.inputs[0];
      n->attrs.set("block", std::vector<int64_t>{offset[i], heads[i], d[i]});
    }
  if (left >= 0) {
    Value* keep = sp.outputs[size_t(left)];
    auto c = [&](const char* what, int64_t v) {
      return g.add_constant(g.unique_name(sp.name + "." + what), Tensor::vector_i64({v}));
    };
    g.add_node("Slice", sp.name + ".kept", {sp.inputs[0], c("starts", offset[size_t(left)]),
               c("ends", offset[size_t(left)] + keep->shape.back()), c("axes", last)}, {keep});
  }
  sp.outputs.clear();  // eliminate_dead_code removes it and the Reshapes
  return true;
}

}  // namespace

void rope_blocks(Graph& g) {
  if (!rewrite_each(g, "Split", [&](Node& sp, const Uses& u) { return rope_blocks_of(g, sp, u); })) return;
  g.toposort();
  eliminate_dead_code(g);
}

}  // namespace tessera
