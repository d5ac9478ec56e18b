// See fuse_rmsnorm.h. Each match is anchored at its ReduceMean and walks the
// single-reader chain forward; the final weight Mul is rewritten in place into
// RMSNormalization (its inputs come before it, so the order stays
// topological) and the rest of the chain is dropped. A second, separate
// rewrite then lets an RMSNormalization whose f32 output is only cast down to
// f16/bf16 write that dtype itself (emit_low_precision_directly).
#include "passes/fuse_rmsnorm.h"

#include <cmath>
#include <cstring>
#include <map>
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

// `scale` (f32) converted to `to`, or nullopt when some value would not come
// back bit for bit (converted to `to` and back to f32). NaN is refused: its
// payload need not survive the round trip, so the product's bits could differ.
std::optional<Tensor> exactly_as(const Tensor& scale, DType to) {
  Tensor low = scale.cast(to), back = low.cast(DType::f32);
  for (int64_t i = 0; i < scale.numel(); ++i) {
    float a = scale.data<float>()[i], b = back.data<float>()[i];
    if (std::isnan(a) || std::memcmp(&a, &b, sizeof a) != 0) return std::nullopt;
  }
  return low;
}

// RMSNormalization(x, scale_f32) → Y f32 → Cast(to = D), D f16 or bf16, Y read
// by nothing else and no graph output, scale a constant whose every value is
// exactly a D: scale becomes that D constant and the node writes the Cast's
// output itself (ONNX: Y takes scale's dtype), so the f32 Y is never written
// and read back. This is what torch's nn.RMSNorm in a bf16 module exports
// (the weight converted to f32, the result cast back).
//
// Exact, bit for bit, on both backends, because neither rounds the scale
// product anywhere but into Y, and an exact D scale is the same number as the
// f32 one:
// - CPU (backend/cpu/kernels/rms_norm.cc): double(x) * inv * double(scale) is
//   rounded to f32 (x's compute type) and then Tensor::cast rounds it into Y's
//   dtype; for f16/bf16 that goes through f32 (core/tensor.cc, store) with the
//   f32_to_bf16 / f32_to_f16 that the Cast kernel (also Tensor::cast) uses.
// - CUDA (normalization.cu): both kernels, rms_norm_rows and norm_rows.cuh's
//   register-resident rms_norm, compute x * inv * scale in f32 and round once
//   with __float2bfloat16 / __float2half, the conversions the CUDA Cast uses.
//   Which kernel runs depends on x's dtype, n, scale dtype == Y dtype (true
//   before and after) and 16-byte alignment (the plan's arena and uploads are
//   256-aligned), so both graphs sum the squares in the same order.
// x must compute in f32 (f32/f16/bf16), which keeps the CUDA product in f32.
void emit_low_precision_directly(Graph& g) {
  Uses uses(g);
  std::unordered_set<const Node*> dropped;
  std::map<std::pair<const Value*, DType>, Value*> converted;  // a scale shared by several norms is converted once
  for (auto& up : g.nodes()) {
    Node& rms = *up;
    if (!is(&rms, "RMSNormalization", 2) || !rms.inputs[0] || !rms.inputs[1]) continue;
    Value *x = rms.inputs[0], *scale = rms.inputs[1], *y = rms.outputs[0];
    if (x->dtype != DType::f32 && x->dtype != DType::f16 && x->dtype != DType::bf16) continue;
    if (!scale->is_constant() || scale->dtype != DType::f32 || y->dtype != DType::f32) continue;
    Node* cast = uses.sole_reader(y);
    if (!is(cast, "Cast", 1)) continue;
    DType to = cast->outputs[0]->dtype;
    if (to != DType::f16 && to != DType::bf16) continue;
    Value*& low = converted[{scale, to}];
    if (!low) {
      std::optional<Tensor> t = exactly_as(*scale->constant, to);
      if (!t) continue;
      low = g.add_constant(g.unique_name(scale->name + "_" + dtype_name(to)), std::move(*t));
    }
    rms.inputs[1] = low;
    rms.outputs[0] = cast->outputs[0];
    rms.outputs[0]->producer = &rms;
    cast->outputs.clear();  // so removing the Cast leaves its former output's producer alone
    dropped.insert(cast);
  }
  if (!dropped.empty()) g.remove_nodes_if([&](const Node& n) { return dropped.count(&n) != 0; });
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
  emit_low_precision_directly(g);
}

}  // namespace tessera
