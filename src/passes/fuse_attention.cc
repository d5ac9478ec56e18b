// fuse_attention: find the exporters' attention decompositions and replace
// each by one Attention node (ops/attention.cc). Matched, from the output up:
//
//   MatMul(P, V)                       V: [B, H, Tk, Dv]
//   P  = [Casts] Softmax(axis=-1) [Casts] S          (float-to-float Casts)
//   S  = Add(S0, mask) | Add(mask, S0)                    additive mask
//      | Where(cond, S0, fill) | Where(cond, fill, S0)     fill = -inf or <= -1e30
//      | S0
//   S0 = Mul/Div by scalar constants (any number) of MatMul(Qs, Kts)
//   Qs, Kts = Mul/Div by scalar constants of Q, Kᵀ (SDPA's sqrt(scale) on each)
//   Kᵀ = Transpose(x, perm)                          (HF: K = x or a Transpose of x)
//      | Reshape(Transpose(Reshape(K, [-1,Tk,D]), [0,2,1]), [B,H,D,Tk])  (dynamo SDPA)
//      | anything else of rank 4                      (a Transpose is inserted)
//
// GQA: a K or V that is Reshape(Expand|Tile(Unsqueeze(x, 2))) — a pure
// repeat_interleave of heads, proven from static shapes — is replaced by x
// when K and V both un-repeat to the same head count.
//
// Masks: a constant mask whose every [Tq, Tk] slice is the top-left causal
// pattern (0 where j <= i, <= -1e4 or -inf elsewhere) becomes causal=1 and
// is dropped (the rows keep their diagonal, so a large finite "minimum" and
// -inf give the same softmax); an all-zero constant mask is dropped; any
// other mask (BERT's padding mask from attention_mask) stays the mask input.
// A Where's fill must be -inf or <= -1e30, so that adding it instead of
// selecting it gives the same softmax even for a fully masked row.
//
// Every intermediate from MatMul(Qs, Kts) to P must have no other reader
// (an exported attention-probabilities output keeps the unfused graph). The
// nodes left without readers are removed by eliminate_dead_code at the end.
//
// attention_layout (at the end of this file) then absorbs the head-split and
// head-merge Transposes(perm = [0, 2, 1, 3]) around each Attention into its
// layout attribute; pack_attention_qkv (after merge_matmuls) reads a Split
// of one fused QKV projection through the packed attribute; see
// fuse_attention.h.
#include "passes/fuse_attention.h"

#include <cmath>
#include <map>
#include <optional>
#include <unordered_map>
#include <unordered_set>

#include "ir/op_registry.h"
#include "ops/attention_rules.h"
#include "passes/pass_manager.h"
#include "passes/uses.h"

namespace tessera {
namespace {


class Matcher {
 public:
  explicit Matcher(Graph& g) : g_(g) { count_uses(); }
  bool try_fuse(Node& mm);

 private:
  struct Scores {
    Value* q = nullptr;
    Value* kt = nullptr;
    Node* qk = nullptr;
    double scale = 1.0;
  };

  void count_uses() {
    uses_.clear();
    for (auto& n : g_.nodes())
      for (Value* in : n->inputs)
        if (in) ++uses_[in];
    for (Value* o : g_.outputs) uses_[o] += 2;  // a graph output is never an intermediate
  }
  // An intermediate: produced by a node of `op`, read only once (by the chain).
  Node* sole(Value* v, const char* op) const {
    if (!v || !v->producer || v->producer->op != op) return nullptr;
    auto it = uses_.find(v);
    return it != uses_.end() && it->second == 1 ? v->producer : nullptr;
  }
  static std::optional<double> scalar(const Value* v) {
    if (!v || !v->is_constant() || v->constant->numel() != 1 || !is_float(v->dtype)) return std::nullopt;
    return v->constant->item_f64();
  }
  // Peel float-to-float Casts (torchscript exports two f32→f32 Casts after Softmax).
  Value* peel_casts(Value* v) const {
    for (int depth = 0; depth < 3; ++depth) {
      Node* c = sole(v, "Cast");
      if (!c || !is_float(c->inputs[0]->dtype) || !is_float(v->dtype)) break;
      v = c->inputs[0];
    }
    return v;
  }
  // Peel Mul/Div by scalar constants (single-reader) off `v`, folding them into `scale`.
  Value* peel_scale(Value* v, double& scale) const;
  std::optional<Scores> match_scores(Value* v) const;
  Value* key_from_transposed(Value* kt);
  static Value* unrepeat(Value* x, int64_t& heads);
  Value* mask_from_where(Node& w, Value*& s0_out, DType dt);
  Value* add_node_1(const std::string& op, const std::string& hint, std::vector<Value*> ins, Attributes a = {});
  static bool dims_match(const Value* a, size_t i, const Value* b, size_t j);

  Graph& g_;
  std::unordered_map<const Value*, int> uses_;
};

Value* Matcher::add_node_1(const std::string& op, const std::string& hint, std::vector<Value*> ins, Attributes a) {
  Value* out = g_.add_value(g_.unique_name(hint), DType::f32, {});
  Node* n = g_.add_node(op, out->name, std::move(ins), {out}, std::move(a));
  TensorType t = infer_node(*n).at(0);
  out->dtype = t.dtype, out->shape = t.shape, out->rank_known = t.rank_known;
  return out;
}

bool Matcher::dims_match(const Value* a, size_t i, const Value* b, size_t j) {
  int64_t x = a->shape[i], y = b->shape[j];
  if (x != kUnknownDim || y != kUnknownDim) return x == y;
  // Both symbolic: equal only when they carry the same dim name.
  return i < a->dim_names.size() && j < b->dim_names.size() && !a->dim_names[i].empty() && a->dim_names[i] == b->dim_names[j];
}

Value* Matcher::peel_scale(Value* v, double& scale) const {
  for (int depth = 0; depth < 4; ++depth) {
    Node* n = sole(v, "Mul");
    if (!n) n = sole(v, "Div");
    if (!n || n->inputs.size() != 2) return v;
    auto c1 = scalar(n->inputs[1]);
    auto c0 = n->op == "Mul" ? scalar(n->inputs[0]) : std::nullopt;
    // The output must keep the tensor operand's shape (a scalar never broadcasts it up).
    if (c1 && n->inputs[0]->shape == v->shape) scale *= n->op == "Mul" ? *c1 : 1.0 / *c1, v = n->inputs[0];
    else if (c0 && n->inputs[1]->shape == v->shape) scale *= *c0, v = n->inputs[1];
    else return v;
  }
  return v;
}

std::optional<Matcher::Scores> Matcher::match_scores(Value* v) const {
  Scores s;
  Value* x = peel_scale(v, s.scale);
  s.qk = sole(x, "MatMul");
  if (!s.qk || x->shape.size() != 4) return std::nullopt;
  s.q = peel_scale(s.qk->inputs[0], s.scale);
  s.kt = peel_scale(s.qk->inputs[1], s.scale);
  if (s.q->shape.size() != 4 || s.kt->shape.size() != 4 || s.q->dtype != s.kt->dtype) return std::nullopt;
  return s;
}

// K [B, H, Tk, D] from Kᵀ [B, H, D, Tk].
Value* Matcher::key_from_transposed(Value* kt) {
  if (kt->producer && kt->producer->op == "Transpose") {
    Node& t = *kt->producer;
    std::vector<int64_t> p = t.attrs.get_ints("perm");
    if (p.size() == 4) {
      std::swap(p[2], p[3]);
      if (p == std::vector<int64_t>{0, 1, 2, 3}) return t.inputs[0];
      Attributes a;
      a.set("perm", p);
      return add_node_1("Transpose", t.inputs[0]->name + ".k", {t.inputs[0]}, std::move(a));
    }
  }
  // torchlib's SDPA: Reshape(Transpose(Reshape(K, [-1, Tk, D]), [0, 2, 1]), [B, H, D, Tk]).
  if (kt->producer && kt->producer->op == "Reshape") {
    Value* tv = kt->producer->inputs[0];
    Node* t = tv->producer;
    if (t && t->op == "Transpose" && t->attrs.get_ints("perm") == std::vector<int64_t>{0, 2, 1}) {
      Value* r = t->inputs[0];
      Node* rn = r->producer;
      if (rn && rn->op == "Reshape") {
        Value* k = rn->inputs[0];
        const Shape &ks = k->shape, &rs = r->shape, &kts = kt->shape;
        if (ks.size() == 4 && rs.size() == 3 && is_static(ks) && is_static(kts) && rs[0] == ks[0] * ks[1] &&
            rs[1] == ks[2] && rs[2] == ks[3] && kts == Shape{ks[0], ks[1], ks[3], ks[2]})
          return k;
        // The same with GQA's repeated K still 5-D ([B, Hkv, r, T, D]): give it its 4-D
        // shape so unrepeat() can see the repeat through the Reshape.
        if (ks.size() == 5 && rs.size() == 3 && is_static(ks) && is_static(kts) && rs[0] == ks[0] * ks[1] * ks[2] &&
            rs[1] == ks[3] && rs[2] == ks[4] && kts == Shape{ks[0], ks[1] * ks[2], ks[4], ks[3]}) {
          Value* shape = g_.add_constant(g_.unique_name(k->name + ".k_shape"),
                                         Tensor::vector_i64({ks[0], ks[1] * ks[2], ks[3], ks[4]}));
          return add_node_1("Reshape", k->name + ".k", {k, shape});
        }
      }
    }
  }
  Attributes a;
  a.set("perm", std::vector<int64_t>{0, 1, 3, 2});
  return add_node_1("Transpose", kt->name + ".k", {kt}, std::move(a));
}

// x [B, Hkv·r, T, D] = Reshape(Expand|Tile(Unsqueeze(x0 [B, Hkv, T, D]) [B, Hkv, 1, T, D]) [B, Hkv, r, T, D]):
// returns x0 and sets heads = Hkv, or returns x.
Value* Matcher::unrepeat(Value* x, int64_t& heads) {
  heads = x->shape.size() == 4 ? x->shape[1] : kUnknownDim;
  Node* rs = x->producer;
  if (!rs || rs->op != "Reshape" || !is_static(x->shape) || x->shape.size() != 4) return x;
  Value* e = rs->inputs[0];
  Node* en = e->producer;
  if (!en || (en->op != "Expand" && en->op != "Tile") || e->shape.size() != 5 || !is_static(e->shape)) return x;
  Value* u = en->inputs[0];
  Node* un = u->producer;
  if (!un || (un->op != "Unsqueeze" && un->op != "Reshape")) return x;
  Value* x0 = un->inputs[0];
  const Shape &xs = x->shape, &es = e->shape, &x0s = x0->shape;
  if (x0s.size() != 4 || !is_static(x0s)) return x;
  int64_t hkv = x0s[1], r = es[2];
  if (u->shape != Shape{x0s[0], hkv, 1, x0s[2], x0s[3]}) return x;
  if (es != Shape{x0s[0], hkv, r, x0s[2], x0s[3]} || xs != Shape{x0s[0], hkv * r, x0s[2], x0s[3]}) return x;
  if (en->op == "Tile") {
    const Value* reps = en->input(1);
    if (!reps || !reps->is_constant() || reps->constant->to_i64_vector() != std::vector<int64_t>{1, 1, r, 1, 1}) return x;
  }
  heads = hkv;
  return x0;
}

// The additive mask equivalent to Where(cond, S0, fill) or Where(cond, fill, S0); sets s0_out.
Value* Matcher::mask_from_where(Node& w, Value*& s0_out, DType dt) {
  if (w.inputs.size() != 3) return nullptr;
  bool keep_when_true;
  std::optional<double> fill;
  if ((fill = scalar(w.inputs[2]))) keep_when_true = true, s0_out = w.inputs[1];
  else if ((fill = scalar(w.inputs[1]))) keep_when_true = false, s0_out = w.inputs[2];
  else return nullptr;
  if (!(std::isinf(*fill) && *fill < 0) && !(*fill <= -1e30)) return nullptr;
  Value* cond = w.inputs[0];
  if (cond->dtype != DType::boolean) return nullptr;
  if (cond->is_constant()) {  // fold it here, so a causal mask is recognised
    Tensor c = cond->constant->cast(DType::f64), m = Tensor::empty(DType::f64, c.shape());
    for (int64_t i = 0; i < c.numel(); ++i) m.data<double>()[i] = (c.data<double>()[i] != 0) == keep_when_true ? 0.0 : *fill;
    return g_.add_constant(g_.unique_name(w.name + ".mask"), m.cast(dt));
  }
  Tensor zero = Tensor::zeros(DType::f64, {}).cast(dt);
  Tensor neg = Tensor::from<double>(DType::f64, {}, {*fill}).cast(dt);
  Value* z = g_.add_constant(g_.unique_name(w.name + ".zero"), zero);
  Value* f = g_.add_constant(g_.unique_name(w.name + ".fill"), neg);
  return add_node_1("Where", w.name + ".mask", keep_when_true ? std::vector<Value*>{cond, z, f} : std::vector<Value*>{cond, f, z});
}

// A constant mask whose every [Tq, Tk] slice is top-left causal.
bool is_causal_mask(const Tensor& m, int64_t tq, int64_t tk) {
  if (m.rank() < 2 || m.dim(-2) != tq || m.dim(-1) != tk) return false;
  Tensor d = m.cast(DType::f64);
  const double* p = d.data<double>();
  for (int64_t s = 0; s < d.numel() / std::max<int64_t>(tq * tk, 1); ++s)
    for (int64_t i = 0; i < tq; ++i)
      for (int64_t j = 0; j < tk; ++j) {
        double v = p[(s * tq + i) * tk + j];
        if (j <= i ? v != 0.0 : !(v <= -1e4)) return false;
      }
  return true;
}

bool all_zero(const Tensor& m) {
  Tensor d = m.cast(DType::f64);
  for (int64_t i = 0; i < d.numel(); ++i)
    if (d.data<double>()[i] != 0.0) return false;
  return true;
}

bool Matcher::try_fuse(Node& mm) {
  if (mm.inputs.size() != 2 || mm.outputs.size() != 1) return false;
  Value* out = mm.outputs[0];
  Value* v = mm.inputs[1];
  Value* p = mm.inputs[0];
  p = peel_casts(p);
  // torch's SDPA export guards fully masked rows: Where(IsNaN(P), 0, P). The
  // fused op has no such rows when its mask turns out causal or absent, so
  // the guard is dropped then (checked below), and the fusion refused otherwise.
  bool nan_guard = false;
  if (Node* w = sole(p, "Where"); w && w->inputs.size() == 3) {
    Node* isnan = sole(w->inputs[0], "IsNaN");
    std::optional<double> zero = scalar(w->inputs[1]);
    if (isnan && zero && *zero == 0.0 && isnan->inputs[0] == w->inputs[2]) {
      Value* x = w->inputs[2];
      auto it = uses_.find(x);
      if (x->producer && x->producer->op == "Softmax" && it != uses_.end() && it->second == 2) p = x, nan_guard = true;
    }
  }
  Node* sm = nan_guard ? p->producer : sole(p, "Softmax");
  if (!sm || p->shape.size() != 4) return false;
  if (normalize_axis(sm->attrs.get_int("axis", -1), 4, sm->name) != 3) return false;
  Value* s = sm->inputs[0];
  s = peel_casts(s);
  const Shape scores_shape = s->shape;

  // The mask, and the scaled scores it applies to.
  Value* mask = nullptr;
  std::optional<Scores> sc;
  Node* where = nullptr;
  if (Node* add = sole(s, "Add")) {
    for (int i = 0; i < 2 && !sc; ++i)
      if ((sc = match_scores(add->inputs[size_t(i)]))) mask = add->inputs[size_t(1 - i)];
  } else if ((where = sole(s, "Where"))) {
    Value* s0 = nullptr;
    if (where->inputs.size() == 3) {
      s0 = scalar(where->inputs[2]) ? where->inputs[1] : where->inputs[2];
      sc = match_scores(s0);
    }
  } else {
    sc = match_scores(s);
  }
  if (!sc) return false;
  Value* scores = sc->qk->outputs[0];
  if (scores->shape != scores_shape || !is_float(scores->dtype)) return false;
  if (mask && (!is_float(mask->dtype) || !mask->rank_known || mask->shape.size() > 4)) return false;

  Value* q = sc->q;
  if (!is_float(q->dtype) || v->dtype != q->dtype || v->shape.size() != 4 || out->dtype != q->dtype) return false;
  const int64_t tq = q->shape[2], tk = sc->kt->shape[3];
  // Q·Kᵀ and P·V must not broadcast over batch or heads.
  for (size_t d = 0; d < 2; ++d)
    if (!dims_match(q, d, sc->kt, d) || !dims_match(q, d, v, d)) return false;
  if (!dims_match(q, 3, sc->kt, 2) || !dims_match(sc->kt, 3, v, 2)) return false;

  // Rewrite from here on (nothing above touched the graph).
  if (where) {
    Value* s0 = nullptr;
    mask = mask_from_where(*where, s0, scores->dtype);
    if (!mask) return false;
  }
  bool causal = false;
  if (mask && mask->is_constant()) {
    if (is_causal_mask(*mask->constant, tq, tk)) causal = true, mask = nullptr;
    else if (all_zero(*mask->constant)) mask = nullptr;
  }
  if (nan_guard && mask) return false;  // rows could be fully masked: keep the guard's zeros
  Value* k = key_from_transposed(sc->kt);
  int64_t hk = 0, hv = 0;
  Value* k0 = unrepeat(k, hk);
  Value* v0 = unrepeat(v, hv);
  if (k0 != k && v0 != v && hk == hv) k = k0, v = v0;

  Attributes a;
  a.set("scale", float(sc->scale));
  a.set("causal", int64_t(causal));
  std::vector<Value*> ins = {q, k, v};
  if (mask) ins.push_back(mask);
  mm.outputs.clear();  // the MatMul (and the chain above it) is dead now
  Node* n = g_.add_node("Attention", mm.name + ".attention", ins, {out}, std::move(a));
  TensorType t = infer_node(*n).at(0);
  if (t.dtype != out->dtype || (t.rank_known && out->rank_known && t.shape != out->shape))
    fail(ErrorKind::Internal, "fuse_attention: node '", n->name, "' infers ", to_string(t.shape), " but the MatMul gave ", to_string(out->shape));
  count_uses();
  return true;
}

}  // namespace

void fuse_attention(Graph& g) {
  std::vector<Node*> matmuls;
  for (auto& n : g.nodes())
    if (n->op == "MatMul" && n->domain.empty()) matmuls.push_back(n.get());
  Matcher m(g);
  bool any = false;
  for (Node* mm : matmuls) any = m.try_fuse(*mm) || any;
  if (!any) return;
  g.toposort();
  eliminate_dead_code(g);
}

namespace {

// A Transpose swapping dims 1 and 2 of a rank-4 tensor: [B, H, T, D] <-> [B, T, H, D].
bool swaps_heads_and_length(const Node& n) {
  return n.op == "Transpose" && n.domain.empty() && n.inputs.size() == 1 && n.outputs.size() == 1 &&
         n.attrs.get_ints("perm") == std::vector<int64_t>{0, 2, 1, 3};
}

// The tables' shape for X in [B, T, H, D] instead of [B, H, T, D]: right-aligned
// to rank 4, heads broadcast (dim 1 is 1), then [t0, t2, 1, t3]. Empty when
// the table is not static or does not broadcast over heads.
Shape table_for_seq_major(const Value* t) {
  if (!t || !t->rank_known || t->shape.size() > 4) return {};
  Shape a(4 - t->shape.size(), 1);
  a.insert(a.end(), t->shape.begin(), t->shape.end());
  if (!is_static(a) || a[1] != 1) return {};
  return {a[0], a[2], 1, a[3]};
}

// The tables viewed for seq-major Ropes, one Reshape per (table, shape): Q's
// and K's Ropes usually share cos and sin.
class TableViews {
 public:
  Value* get(Graph& g, Value* t, const Shape& shape, const std::string& rope_name) {
    Value*& v = views_[{t, shape}];
    if (!v) {
      v = g.add_value(g.unique_name(t->name + ".seq_major"), t->dtype, shape);
      g.add_node("Reshape", rope_name + "/" + t->name + ".seq_major",
                 {t, g.add_constant(v->name + ".shape", Tensor::vector_i64(shape))}, {v});
    }
    return v;
  }

 private:
  std::map<std::pair<const Value*, Shape>, Value*> views_;
};

// Q or K as Rope(Transpose(perm [0, 2, 1, 3]) of X [B, T, H, D], cos, sin), the
// Transpose and the Rope read only there (Llama's rotary embedding between the
// head split and attention): the Rope then runs on X itself with its tables
// viewed as [.., T, 1, D], and Attention reads its output in layout 1. True if rewritten.
bool rope_on_seq_major(Graph& g, Node& n, size_t i, const Uses& u, TableViews& views) {
  Value* r = n.input(i);
  Node* rope = r ? r->producer : nullptr;
  if (!rope || rope->op != "Rope" || !rope->domain.empty() || u.sole_reader(r) != &n || rope->inputs.size() != 3) return false;
  Value* tx = rope->inputs[0];
  if (!tx || !tx->producer || !swaps_heads_and_length(*tx->producer) || u.sole_reader(tx) != rope) return false;
  Shape cs = table_for_seq_major(rope->inputs[1]), sn = table_for_seq_major(rope->inputs[2]);
  Value* x = tx->producer->inputs[0];
  if (cs.empty() || sn.empty() || !x->rank_known || x->shape.size() != 4) return false;
  rope->inputs = {x, views.get(g, rope->inputs[1], cs, rope->name), views.get(g, rope->inputs[2], sn, rope->name)};
  r->shape = x->shape;
  return true;
}

// Absorb the Transposes around one Attention node; true if any went.
bool absorb_transposes(Graph& g, Node& n, const Uses& u, TableViews& views) {
  std::vector<int64_t> layout = n.attrs.get_ints("layout", {0, 0, 0, 0});
  if (layout.size() != 4) return false;  // inference reports it
  bool changed = false;
  for (size_t i = 0; i < 3; ++i) {
    if (layout[i] == 0 && i < 2 && rope_on_seq_major(g, n, i, u, views)) {
      layout[i] = 1, changed = true;
      continue;
    }
    Value* x = n.input(i);
    // The Transpose's output must be read by this input alone (not also as another input, not a graph output).
    if (layout[i] != 0 || !x || !x->producer || !swaps_heads_and_length(*x->producer) || u.sole_reader(x) != &n) continue;
    n.inputs[i] = x->producer->inputs[0];
    layout[i] = 1, changed = true;
  }
  Value* o = n.outputs.size() == 1 ? n.outputs[0] : nullptr;
  Node* t = o ? u.sole_reader(o) : nullptr;  // null for a graph output
  if (layout[3] == 0 && t && swaps_heads_and_length(*t) && t->inputs[0] == o) {
    // Attention writes the Transpose's output (its name, readers and graph-output status stay); the
    // Transpose, left without outputs, and the old output go with eliminate_dead_code.
    n.outputs[0] = t->outputs[0];
    t->outputs.clear();
    layout[3] = 1, changed = true;
  }
  if (!changed) return false;
  n.attrs.set("layout", layout);
  TensorType want{n.outputs[0]->dtype, n.outputs[0]->shape, n.outputs[0]->rank_known};
  TensorType got = infer_node(n).at(0);
  if (got.dtype != want.dtype || (got.rank_known && want.rank_known && got.shape != want.shape))
    fail(ErrorKind::Internal, "attention_layout: node '", n.name, "' infers ", to_string(got.shape), " with layout [",
         layout[0], ",", layout[1], ",", layout[2], ",", layout[3], "] but the graph has ", to_string(want.shape));
  return true;
}

// The Split of a [B, T, W] tensor along W into its three outputs, read as Q, K, V through
// Reshapes to [B, T, H, D] (GPT-2's fused c_attn): Attention reads the tensor itself with
// packed = [Hq, Hkv] (its Q, K, V are those column blocks), so the Split's three copies go.
// Null when input i is not such a Reshape of output i of a Split.
Node* packed_split(const Node& n, size_t i, const Uses& u) {
  Node* r = u.sole_producer(n.input(i), "Reshape");
  Node* sp = r ? u.sole_producer(r->inputs[0], "Split") : nullptr;
  if (!sp || !sp->domain.empty() || sp->outputs.size() != 3 || sp->outputs[i] != r->inputs[0]) return nullptr;
  const Value* x = sp->inputs[0];
  if (!x || !x->rank_known || x->shape.size() != 3 || !is_static(x->shape)) return nullptr;
  if (normalize_axis(sp->attrs.get_int("axis", 0), 3, "Split axis") != 2) return nullptr;
  return sp;
}

// Attention n's layout is checked by pack_attention.
bool pack_qkv(Node& n, const Uses& u) {
  Node* sp = packed_split(n, 0, u);
  if (!sp || packed_split(n, 1, u) != sp || packed_split(n, 2, u) != sp) return false;
  const Shape& x = sp->inputs[0]->shape;
  int64_t heads[3], d = 0;
  for (size_t i = 0; i < 3; ++i) {
    const Value* q = n.input(i);  // [B, T, H, D]: a Reshape of the Split's [B, T, H·D] output i
    const Value* part = sp->outputs[i];
    if (!q->rank_known || q->shape.size() != 4 || !is_static(q->shape) || !part->rank_known || part->shape.size() != 3) return false;
    if (q->shape[0] != x[0] || q->shape[1] != x[1] || part->shape != Shape{x[0], x[1], q->shape[2] * q->shape[3]}) return false;
    if (i > 0 && q->shape[3] != d) return false;
    heads[i] = q->shape[2], d = q->shape[3];
  }
  if (heads[1] != heads[2] || heads[1] == 0 || heads[0] % heads[1] || (heads[0] + 2 * heads[1]) * d != x[2]) return false;
  n.inputs[0] = n.inputs[1] = n.inputs[2] = sp->inputs[0];
  n.attrs.set("packed", std::vector<int64_t>{heads[0], heads[1]});
  return true;
}

// A one-element integer constant's value, or nullopt.
std::optional<int64_t> int_constant(const Value* v) {
  if (!v || !v->is_constant() || v->constant->numel() != 1 || is_float(v->dtype)) return std::nullopt;
  return v->constant->item_i64(0);
}

// True if `sl` is Slice(x, begin, W or past it, last axis, step 1) of the [B, T, W] tensor x.
bool slices_columns_from(const Node& sl, const Value* x, int64_t begin) {
  if (!sl.domain.empty() || sl.inputs.size() < 3 || sl.inputs[0] != x || sl.outputs.size() != 1) return false;
  const int64_t w = x->shape[2];
  std::optional<int64_t> start = int_constant(sl.input(1)), end = int_constant(sl.input(2));
  std::optional<int64_t> axis = sl.input(3) ? int_constant(sl.input(3)) : std::optional<int64_t>(-1);
  std::optional<int64_t> step = sl.input(4) ? int_constant(sl.input(4)) : std::optional<int64_t>(1);
  return start && end && axis && step && (*axis == 2 || *axis == -1) && *step == 1 && *start == begin && *end >= w;
}

// True if r is Rope(x, cos, sin) with block = [begin, heads, D], not full (heads and D set).
bool block_rope(const Node& r, const Value* x, int64_t begin, int64_t& heads, int64_t& d) {
  if (!r.domain.empty() || r.inputs.size() != 3 || r.inputs[0] != x || r.attrs.get_int("full", 0) != 0) return false;
  std::vector<int64_t> b = r.attrs.get_ints("block", {});
  if (b.size() != 3 || b[0] != begin) return false;
  heads = b[1], d = b[2];
  return true;
}

// pack_attention_qkv's form after rope_blocks (Llama's merged q/k/v): Q and K are Ropes of
// a [B, T, W] tensor's column blocks [0, Hq·D) and [Hq·D, (Hq + Hkv)·D) with the same tables,
// V a Reshape of its Slice from (Hq + Hkv)·D. The Attention reads the tensor packed and takes
// the tables itself (RoPE in its prologue: ops/attention.cc), so the two Ropes and the Slice
// go and Q and K are never written rotated. The tables must broadcast to [B, T, 1, D], as
// the Attention takes them; they do to the Ropes' [B, T, heads, D] blocks already.
bool pack_rope_qkv(Node& n, const Uses& u) {
  Node* rq = u.sole_producer(n.input(0), "Rope");
  Node* rk = u.sole_producer(n.input(1), "Rope");
  Node* rv = u.sole_producer(n.input(2), "Reshape");
  Node* sl = rv ? u.sole_producer(rv->inputs[0], "Slice") : nullptr;
  if (!rq || !rk || rq == rk || !sl || !rq->inputs[0] || n.inputs.size() > 4) return false;
  Value* x = rq->inputs[0];
  if (!x->rank_known || x->shape.size() != 3 || !is_static(x->shape)) return false;
  int64_t hq = 0, hkv = 0, d = 0, dk = 0;
  if (!block_rope(*rq, x, 0, hq, d) || !block_rope(*rk, x, hq * d, hkv, dk) || dk != d) return false;
  if (rk->inputs[1] != rq->inputs[1] || rk->inputs[2] != rq->inputs[2] ||
      rk->attrs.get_int("interleaved", 0) != rq->attrs.get_int("interleaved", 0))
    return false;
  const Shape& xs = x->shape;
  const Value* v = n.input(2);
  if (hkv <= 0 || hq % hkv || (hq + 2 * hkv) * d != xs[2] || !slices_columns_from(*sl, x, (hq + hkv) * d)) return false;
  if (!v->rank_known || v->shape != Shape{xs[0], xs[1], hkv, d}) return false;
  for (const Value* t : {rq->inputs[1], rq->inputs[2]}) {
    rules::TableStrides st;
    if (!t || !t->rank_known || !is_static(t->shape) || !rules::rope_table(t->shape, xs[0], xs[1], d, st).empty()) return false;
  }
  Value* mask = n.input(3);
  n.inputs = {x, x, x, mask, rq->inputs[1], rq->inputs[2]};
  n.attrs.set("packed", std::vector<int64_t>{hq, hkv});
  if (rq->attrs.get_int("interleaved", 0)) n.attrs.set("rope_interleaved", int64_t(1));
  return true;
}

bool pack_attention(Node& n, const Uses& u) {
  std::vector<int64_t> layout = n.attrs.get_ints("layout", {0, 0, 0, 0});
  if (n.attrs.has("packed") || layout.size() != 4 || layout[0] != 1 || layout[1] != 1 || layout[2] != 1) return false;
  return pack_qkv(n, u) || pack_rope_qkv(n, u);
}

}  // namespace

void attention_layout(Graph& g) {
  TableViews views;
  // Looking through a Rope adds Reshape nodes: rewrite_each collects the Attention nodes first.
  if (!rewrite_each(g, "Attention", [&](Node& n, const Uses& u) { return absorb_transposes(g, n, u, views); })) return;
  g.toposort();  // recomputes producers (each absorbed output's is its Attention now) and places the table Reshapes
  eliminate_dead_code(g);
}

void pack_attention_qkv(Graph& g) {
  if (!rewrite_each(g, "Attention", [&](Node& n, const Uses& u) { return pack_attention(n, u); })) return;
  eliminate_dead_code(g);  // the Split, or the Ropes and the Slice
}

}  // namespace tessera
