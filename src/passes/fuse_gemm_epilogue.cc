// See fuse_gemm_epilogue.h. Each match rewrites the MatMul node in place into
// FusedMatMul (keeping its name) and drops the absorbed nodes; the fused node
// sits where the MatMul was, before every reader of the chain's result, so
// the order stays topological.
#include "passes/fuse_gemm_epilogue.h"

#include <cmath>
#include <unordered_map>
#include <unordered_set>

#include "passes/uses.h"

namespace tessera {
namespace {

// The operand of binary node `n` that is not `v` (null if `v` is not an operand).
Value* other_operand(const Node& n, const Value* v) {
  if (n.inputs.size() != 2) return nullptr;
  if (n.inputs[0] == v) return n.inputs[1];
  if (n.inputs[1] == v) return n.inputs[0];
  return nullptr;
}

// A constant holding one number close to `want`.
bool is_scalar_const(const Value* v, double want) {
  if (!v || !v->is_constant() || v->constant->numel() != 1 || !is_float(v->dtype)) return false;
  double got = v->constant->cast(DType::f64).item_f64(0);
  return std::fabs(got - want) <= 1e-3 * std::fabs(want);
}

// The erf GELU chain torch.onnx writes for x:
//   Div(x, 1.41421) | Mul(x, 0.70711) → Erf → Add(·, 1) → Mul(x, ·) → Mul(·, 0.5)
// (the 0.5 may also multiply x first: Mul(Mul(x, 0.5), ·)). Returns the
// chain's output and fills `nodes` with its nodes, or null when `x`'s readers
// are not exactly this chain.
Value* match_erf_gelu(const Uses& u, Value* x, std::vector<Node*>& nodes) {
  if (u.outputs.count(x) || u.count(x) != 2) return nullptr;
  Node* scale = nullptr;
  Node* other = nullptr;
  for (Node* r : u.readers.at(x)) {
    bool div = r->op == "Div" && r->inputs.size() == 2 && r->inputs[0] == x && is_scalar_const(r->inputs[1], std::sqrt(2.0));
    bool mul = r->op == "Mul" && is_scalar_const(other_operand(*r, x), std::sqrt(0.5));
    if ((div || mul) && !scale) scale = r;
    else other = r;
  }
  if (!scale || !other || other->op != "Mul") return nullptr;
  Node* erf = u.sole_reader(scale->outputs[0]);
  if (!erf || erf->op != "Erf") return nullptr;
  Node* plus1 = u.sole_reader(erf->outputs[0]);
  if (!plus1 || plus1->op != "Add" || !is_scalar_const(other_operand(*plus1, erf->outputs[0]), 1.0)) return nullptr;
  Value* one_plus = plus1->outputs[0];
  Value* x_side = other_operand(*other, x);  // Mul(x, ·): the other operand is 1+erf or 0.5
  Node* last = nullptr;
  if (x_side == one_plus) {  // Mul(x, 1+erf) → Mul(·, 0.5)
    last = u.sole_reader(other->outputs[0]);
    if (!last || last->op != "Mul" || !is_scalar_const(other_operand(*last, other->outputs[0]), 0.5)) return nullptr;
    if (u.sole_reader(one_plus) != other) return nullptr;
  } else if (is_scalar_const(x_side, 0.5)) {  // Mul(x, 0.5) → Mul(·, 1+erf)
    last = u.sole_reader(other->outputs[0]);
    if (!last || last->op != "Mul" || other_operand(*last, other->outputs[0]) != one_plus) return nullptr;
    if (u.sole_reader(one_plus) != last) return nullptr;
  } else {
    return nullptr;
  }
  nodes.insert(nodes.end(), {scale, erf, plus1, other, last});
  return last->outputs[0];
}

// The tanh GELU chain (GPT-2's NewGELUActivation, torch's gelu(approximate="tanh")) for x:
//   Mul(x, 0.5) and Mul(·, Add(Tanh(Mul(Add(x, Mul(Pow(x, 3), 0.044715)), 0.79788)), 1))
// Returns the chain's output and fills `nodes`, or null when `x`'s readers are not exactly this chain.
Value* match_tanh_gelu(const Uses& u, Value* x, std::vector<Node*>& nodes) {
  if (u.outputs.count(x) || u.count(x) != 3) return nullptr;
  Node *half = nullptr, *pow = nullptr, *add = nullptr;
  for (Node* r : u.readers.at(x)) {
    if (r->op == "Mul" && is_scalar_const(other_operand(*r, x), 0.5)) half = r;
    else if (r->op == "Pow" && r->inputs.size() == 2 && r->inputs[0] == x && is_scalar_const(r->inputs[1], 3.0)) pow = r;
    else if (r->op == "Add" && other_operand(*r, x)) add = r;
  }
  if (!half || !pow || !add) return nullptr;
  Node* cube = u.sole_reader(pow->outputs[0]);
  if (!cube || cube->op != "Mul" || !is_scalar_const(other_operand(*cube, pow->outputs[0]), 0.044715)) return nullptr;
  if (other_operand(*add, x) != cube->outputs[0] || u.sole_reader(cube->outputs[0]) != add) return nullptr;
  Node* scale = u.sole_reader(add->outputs[0]);
  if (!scale || scale->op != "Mul" || !is_scalar_const(other_operand(*scale, add->outputs[0]), std::sqrt(2.0 / 3.14159265358979))) return nullptr;
  Node* tanh = u.sole_reader(scale->outputs[0]);
  if (!tanh || tanh->op != "Tanh") return nullptr;
  Node* plus1 = u.sole_reader(tanh->outputs[0]);
  if (!plus1 || plus1->op != "Add" || !is_scalar_const(other_operand(*plus1, tanh->outputs[0]), 1.0)) return nullptr;
  Node* last = u.sole_reader(plus1->outputs[0]);
  if (!last || last->op != "Mul" || other_operand(*last, plus1->outputs[0]) != half->outputs[0]) return nullptr;
  if (u.sole_reader(half->outputs[0]) != last) return nullptr;
  nodes.insert(nodes.end(), {half, pow, cube, add, scale, tanh, plus1, last});
  return last->outputs[0];
}

// The activation reading `v`, if it can join the epilogue: fills `act` and
// `nodes`, returns the activation's output (or null).
Value* match_activation(const Uses& u, Value* v, std::string& act, std::vector<Node*>& nodes) {
  if (Node* r = u.sole_reader(v)) {
    if (r->op == "Relu") act = "relu";
    else if (r->op == "Gelu") act = r->attrs.get_string("approximate", "none") == "tanh" ? "gelu_tanh" : "gelu";
    if (!act.empty()) {
      nodes.push_back(r);
      return r->outputs[0];
    }
  }
  std::vector<Node*> chain;
  if (Value* out = match_erf_gelu(u, v, chain)) {
    act = "gelu";
    nodes.insert(nodes.end(), chain.begin(), chain.end());
    return out;
  }
  if (Value* out = match_tanh_gelu(u, v, chain)) {
    act = "gelu_tanh";
    nodes.insert(nodes.end(), chain.begin(), chain.end());
    return out;
  }
  return nullptr;
}

// MatMul(x, W) [+ Add(1-D constant bias of length N)]: the bias (or null)
// and the Add in `absorbed`. False when the node is not a float MatMul.
bool matmul_head(const Uses& u, Node& mm, Value*& bias, Value*& cur, std::vector<Node*>& absorbed) {
  Value* a = mm.inputs.size() == 2 ? mm.inputs[0] : nullptr;
  Value* b = mm.inputs.size() == 2 ? mm.inputs[1] : nullptr;
  Value* y = mm.outputs[0];
  if (!a || !b || !a->rank_known || !b->rank_known || b->shape.size() < 2 || a->shape.empty()) return false;
  if (!is_float(a->dtype) || b->dtype != a->dtype || y->dtype != a->dtype) return false;
  int64_t n = b->shape.back();
  cur = y;
  if (Node* add = u.sole_reader(cur); add && add->op == "Add" && n >= 0) {
    Value* c = other_operand(*add, cur);
    if (c && c != cur && c->is_constant() && c->dtype == a->dtype && c->constant->rank() == 1 &&
        c->constant->dim(0) == n && add->outputs[0]->shape == y->shape) {
      bias = c;
      absorbed.push_back(add);
      cur = add->outputs[0];
    }
  }
  return true;
}

// The Transpose(perm [1, 0]) of a 2-D constant that feeds only `mm`'s B, or null.
Node* weight_transpose(const Uses& u, const Node& mm) {
  Value* b = mm.inputs.size() >= 2 ? mm.inputs[1] : nullptr;
  Node* t = b ? b->producer : nullptr;
  if (!t || t->op != "Transpose" || u.sole_reader(b) != &mm || b->shape.size() != 2) return nullptr;
  Value* w = t->inputs[0];
  if (!w->is_constant() || w->shape.size() != 2 || t->attrs.get_ints("perm") != std::vector<int64_t>{1, 0}) return nullptr;
  return t;
}

// A GEMM between Reshapes that flatten leading dims and restore them, as
// the dynamo exporter writes a linear layer on [B, T, K]:
//   Reshape(X -> [M, K]) -> Gemm/MatMul (2-D B) -> Reshape([M, N] -> [L..., N]), M = prod(L)
// Fused, the GEMM reads [L..., K] and writes [L..., N] (FusedMatMul follows
// MatMul's rules for a 2-D B), so the activation or residual after the
// second Reshape can join it. X is read as is when it is [L..., K]; else
// (attention's [B, T, H, D] before an output projection) the first Reshape
// is kept, retargeted to [L..., K], when the GEMM alone reads it. All shapes
// static; the second Reshape must be the GEMM's only reader.
struct Flattened {
  Node* in = nullptr;   // the flattening Reshape
  Node* out = nullptr;  // the restoring Reshape
  Shape lk;             // [L..., K]
  bool direct = false;  // X is [L..., K]: the GEMM reads it, and `in` goes if nobody else reads it
  explicit operator bool() const { return out != nullptr; }
};
bool all_static(const Value* v) { return v && v->rank_known && is_static(v->shape); }
Flattened flattened(const Uses& u, const Node& mm) {
  if (mm.inputs.size() < 2 || !mm.inputs[0] || !mm.inputs[1]) return {};
  Value* a = mm.inputs[0];
  Value* b = mm.inputs[1];
  Node* in = a->producer;
  Node* out = u.sole_reader(mm.outputs[0]);
  if (!in || in->op != "Reshape" || !out || out->op != "Reshape" || !b->rank_known || b->shape.size() != 2) return {};
  Value* x = in->inputs.at(0);
  Value* y = mm.outputs[0];
  Value* z = out->outputs[0];
  if (!all_static(x) || !all_static(a) || !all_static(y) || !all_static(z) || z->shape.size() < 3) return {};
  if (a->shape.size() != 2 || y->shape.size() != 2) return {};
  int64_t m = 1;
  for (size_t i = 0; i + 1 < z->shape.size(); ++i) m *= z->shape[i];
  if (a->shape[0] != m || y->shape != Shape{m, z->shape.back()}) return {};
  Flattened f{in, out, Shape(z->shape.begin(), z->shape.end() - 1), false};
  f.lk.push_back(a->shape[1]);
  f.direct = x->shape == f.lk;
  if (!f.direct && u.sole_reader(a) != &mm) return {};
  return f;
}

// Gemm(A, B[, C]) with transA = 0 and alpha = 1 whose C (if it counts, i.e.
// beta != 0) is a bias: beta = 1 and C 1-D of length N, or a [1, N] constant
// (reshaped to a new 1-D constant). False when the Gemm is not of that form.
bool gemm_head(Graph& g, Node& gm, Value*& bias, Value*& cur) {
  if (gm.inputs.size() < 2 || gm.inputs.size() > 3) return false;
  Value* a = gm.inputs[0];
  Value* b = gm.inputs[1];
  Value* c = gm.inputs.size() == 3 ? gm.inputs[2] : nullptr;
  Value* y = gm.outputs[0];
  if (!a || !b || !a->rank_known || !b->rank_known || a->shape.size() != 2 || b->shape.size() != 2) return false;
  if (!is_float(a->dtype) || b->dtype != a->dtype || y->dtype != a->dtype) return false;
  if (gm.attrs.get_int("transA", 0) != 0 || gm.attrs.get_float("alpha", 1.0f) != 1.0f) return false;
  float beta = gm.attrs.get_float("beta", 1.0f);
  int64_t n = gm.attrs.get_int("transB", 0) ? b->shape[0] : b->shape[1];
  cur = y;
  if (!c || beta == 0.0f) return true;  // Gemm ignores C when beta is 0
  if (beta != 1.0f || n < 0 || c->dtype != a->dtype || !c->rank_known) return false;
  if (c->shape == Shape{n}) {
    bias = c;
    return true;
  }
  if (c->shape == Shape{1, n} && c->is_constant()) {
    bias = g.add_constant(c->name + ".row", c->constant->reshaped({n}));
    return true;
  }
  return false;
}

// Whether `a` and `b` surely have one shape at run time: equal static dims,
// and unknown dims with the same symbolic name.
bool same_shape(const Value* a, const Value* b) {
  if (!a->rank_known || !b->rank_known || a->shape != b->shape) return false;
  for (size_t i = 0; i < a->shape.size(); ++i) {
    if (a->shape[i] >= 0) continue;
    const std::string* na = i < a->dim_names.size() ? &a->dim_names[i] : nullptr;
    const std::string* nb = i < b->dim_names.size() ? &b->dim_names[i] : nullptr;
    if (!na || !nb || na->empty() || *na != *nb) return false;
  }
  return true;
}

// The residual `mm`'s output can take in: the other operand of the Add that
// alone reads it, of the same shape and dtype, defined before `mm`. Null if none.
Value* residual_for(const Uses& u, const Node& mm, const std::unordered_map<const Node*, size_t>& pos) {
  Value* y = mm.outputs[0];
  if (mm.attrs.get_string("activation", "") != "" || mm.inputs.size() > 3 || mm.inputs.size() < 2) return nullptr;
  if (!is_float(y->dtype) || (mm.op == "MatMul" && mm.inputs.size() != 2)) return nullptr;
  const Value* b = mm.inputs[1];
  if (!b || !b->rank_known || b->shape.size() != 2 || y->shape.empty() || y->shape.back() < 0 || y->shape.back() % 8) return nullptr;
  Node* add = u.sole_reader(y);
  if (!add || add->op != "Add" || add->inputs.size() != 2) return nullptr;
  Value* r = other_operand(*add, y);
  if (!r || r == y || r->dtype != y->dtype || !same_shape(r, y) || !same_shape(add->outputs[0], y)) return nullptr;
  if (r->producer && (!pos.count(r->producer) || pos.at(r->producer) > pos.at(&mm))) return nullptr;
  return r;
}

}  // namespace

void fuse_gemm_residual(Graph& g) {
  Uses u(g);
  std::unordered_map<const Node*, size_t> pos;
  for (auto& n : g.nodes()) pos[n.get()] = pos.size();
  std::unordered_set<const Node*> dead;
  for (auto& up : g.nodes()) {
    Node& mm = *up;
    if ((mm.op != "FusedMatMul" && mm.op != "MatMul") || dead.count(&mm)) continue;
    Value* r = residual_for(u, mm, pos);
    if (!r) continue;
    Node* add = u.sole_reader(mm.outputs[0]);
    if (dead.count(add)) continue;
    dead.insert(add);
    mm.op = "FusedMatMul";  // a plain MatMul (no bias, no activation) is one with no epilogue
    mm.domain.clear();
    mm.inputs.resize(3, nullptr);
    mm.inputs.push_back(r);
    mm.outputs[0] = add->outputs[0];
    mm.outputs[0]->producer = &mm;
    add->outputs.clear();
  }
  if (!dead.empty()) g.remove_nodes_if([&](const Node& n) { return dead.count(&n) != 0; });
}

void fuse_gemm_epilogue(Graph& g) {
  Uses u(g);
  std::unordered_set<const Node*> dead;
  // Collected first: gemm_head may add constants while we walk.
  std::vector<Node*> heads;
  for (auto& up : g.nodes())
    if (up->op == "MatMul" || up->op == "Gemm") heads.push_back(up.get());
  for (Node* hp : heads) {
    Node& mm = *hp;
    if (dead.count(&mm)) continue;
    bool gemm = mm.op == "Gemm";
    bool trans_b = gemm && mm.attrs.get_int("transB", 0) != 0;
    std::vector<Node*> absorbed;
    Value* bias = nullptr;
    Value* cur = nullptr;
    std::string act;
    Flattened flat = flattened(u, mm);
    if (gemm) {
      // A Gemm already runs its bias in the epilogue: it is worth fusing only
      // with an activation after it, or to drop the Reshapes around it (then
      // a residual can join). Check the activation before gemm_head, which
      // may add a constant.
      std::vector<Node*> probe;
      if (!match_activation(u, flat ? flat.out->outputs[0] : mm.outputs[0], act, probe) && !flat) continue;
      act.clear();
      if (!gemm_head(g, mm, bias, cur)) continue;
    } else if (!matmul_head(u, mm, bias, cur, absorbed)) {
      continue;
    }
    if (flat && cur == mm.outputs[0]) {
      absorbed.push_back(flat.out);
      if (flat.direct && u.sole_reader(mm.inputs[0]) == &mm) absorbed.push_back(flat.in);
      cur = flat.out->outputs[0];
    } else {
      flat = {};
    }
    // MatMul(x, Transpose(W[N, K])) of a constant W that constant folding kept
    // (a tied embedding, e.g. GPT-2's LM head): read W as [N, K] in place.
    Node* transpose = gemm ? nullptr : weight_transpose(u, mm);
    if (transpose && !dead.count(transpose)) trans_b = true, absorbed.push_back(transpose);
    if (Value* out = match_activation(u, cur, act, absorbed)) cur = out;
    if (absorbed.empty()) continue;
    // Every absorbed node must still be live (not taken by an earlier match).
    bool clash = false;
    for (Node* n2 : absorbed) clash = clash || dead.count(n2);
    if (clash) continue;
    for (Node* n2 : absorbed) {
      dead.insert(n2);
      n2->outputs.clear();
    }
    mm.op = "FusedMatMul";
    mm.domain.clear();
    mm.inputs.resize(2);
    if (transpose) mm.inputs[1] = transpose->inputs[0];
    if (flat && flat.direct) {
      mm.inputs[0] = flat.in->inputs[0];
    } else if (flat) {  // the GEMM alone reads the first Reshape: it now makes [L..., K]
      flat.in->inputs[1] = g.add_constant(flat.in->name + ".lead_k", Tensor::vector_i64(flat.lk));
      flat.in->outputs[0]->shape = flat.lk;
    }
    if (bias) mm.inputs.push_back(bias);
    mm.attrs = {};
    mm.attrs.set("activation", act);
    if (trans_b) mm.attrs.set("trans_b", int64_t(1));
    mm.outputs[0] = cur;
    cur->producer = &mm;
  }
  if (dead.empty()) return;
  g.remove_nodes_if([&](const Node& n) { return dead.count(&n) != 0; });
}

}  // namespace tessera
