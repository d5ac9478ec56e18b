// Shard propagation: follows activations that the plan left sharded (the
// output features of colwise layers, Shard(last)) through the ops between a
// colwise and a rowwise layer — elementwise ops, head reshapes, transposes,
// GQA's unsqueeze/expand, batched attention MatMuls, softmax, RoPE's slices —
// tracking which dim is sharded and dividing the head counts written in
// constant Reshape/Expand targets by the TP degree. Every rule keeps one
// invariant: along the sharded dim, rank r holds block r of the global extent
// (colwise chunks features contiguously, and reshapes map the shard to the
// leading dim of its group), so a constant operand spanning that dim is
// sliced to block r, as a colwise bias is. Any op it cannot prove
// correct on a shard is an error naming the node. Needs the pre-shard graph's
// inferred (global) shapes.
#include "parallel/propagate.h"

#include <map>
#include <set>

#include "core/error.h"
#include "ir/op_registry.h"
#include "parallel/shard.h"

namespace tessera::parallel {

namespace {

const std::set<std::string> kElementwise = {
    "Relu", "Gelu", "Tanh", "Sigmoid", "Erf", "Neg", "Abs", "Exp", "Log", "Sqrt", "Cast", "CastLike", "Identity",
    "Dropout", "HardSwish", "HardSigmoid", "LeakyRelu", "Elu", "Softplus", "Mish", "Reciprocal", "Add", "Sub", "Mul",
    "Div", "Pow", "Max", "Min", "Where", "Clip", "Sin", "Cos", "Sign", "Floor", "Ceil", "Round", "Selu", "Celu",
    "Softsign", "Equal", "Less", "Greater", "And", "Or", "Not", "IsNaN"};

struct Ctx {
  Graph& g;
  int rank, degree;
  bool dry_run;
  std::unordered_map<const Value*, int64_t> dim;  // sharded value → its sharded dim
  std::unordered_map<const Value*, std::string> from;
  std::map<std::pair<const Value*, int64_t>, Value*> sliced;  // (constant, dim) → this rank's block, made once
};

[[noreturn]] void cannot(const Node& n, const std::string& from, const std::string& why) {
  fail(ErrorKind::InvalidArgument, "node '", n.name, "' (", n.op, ") reads an activation sharded by the plan (from colwise '", from,
       "'): ", why, "; tessera cannot prove this op correct on a shard: end the sharded region with a rowwise layer first, or change the plan");
}

int64_t product(const Shape& s, size_t end) {
  int64_t p = 1;
  for (size_t i = 0; i < end && i < s.size(); ++i) p *= s[i];
  return p;
}

// Give `n` a private copy of constant input `slot` with element `at` divided by the degree.
void divide_constant(Ctx& c, Node& n, size_t slot, int64_t at, const std::string& from) {
  Value* v = n.inputs[slot];
  if (!v || !v->constant) cannot(n, from, "its target shape is not a constant");
  std::vector<int64_t> t = v->constant->to_i64_vector();
  if (at < 0 || at >= int64_t(t.size())) cannot(n, from, "its target shape has no dim " + std::to_string(at));
  if (t[size_t(at)] > 0) {
    if (t[size_t(at)] % c.degree) cannot(n, from, "dim " + std::to_string(at) + " (" + std::to_string(t[size_t(at)]) + ") does not divide by the TP degree");
    t[size_t(at)] /= c.degree;
  }
  if (c.dry_run) return;
  Value* copy = c.g.add_constant(c.g.unique_name(v->name + ".shard"), Tensor::vector_i64(t).cast(v->constant->dtype()));
  n.inputs[slot] = copy;
}

// Replace constant input `slot` of `n` with this rank's block of it along `at`
// (its extent there must be the global extent of the sharded dim).
void slice_constant(Ctx& c, Node& n, size_t slot, int64_t at, const std::string& from) {
  Value* v = n.inputs[slot];
  if (v->shape[size_t(at)] % c.degree)
    cannot(n, from, "constant '" + v->name + "' dim " + std::to_string(at) + " (" + std::to_string(v->shape[size_t(at)]) +
                        ") does not divide by the TP degree");
  if (c.dry_run) return;
  Value*& copy = c.sliced[{v, at}];
  if (!copy) copy = c.g.add_constant(c.g.unique_name(v->name + ".shard"), chunk(*v->constant, at, c.rank, c.degree, "constant '" + v->name + "'"));
  n.inputs[slot] = copy;
}

// The output dim that a sharded input dim `d` maps to, or -1 if none can be proven.
int64_t reshape_dim(const Shape& in, const Shape& out, int64_t d) {
  int64_t before = product(in, size_t(d));
  // The group of output dims covering input dim d starts where the prefix
  // products agree; its leading (non-unit) dim carries the shard — the heads
  // of [B, T, H*D] → [B, T, H, D], the merged dim of the reverse.
  for (size_t k = 0; k < out.size(); ++k)
    if (product(out, k) == before && out[k] != 1) return int64_t(k);
  return -1;
}

// Where the sharded input `in` (dim d) ends up in `n`'s first output; rewrites targets on the way.
int64_t propagate_node(Ctx& c, Node& n, Value* in, int64_t d, const std::string& from) {
  Value* out = n.outputs[0];
  if (!out || !out->rank_known || !in->rank_known) cannot(n, from, "its shapes are unknown at build time (use static shapes, or --shape)");
  int64_t in_rank = int64_t(in->shape.size()), out_rank = int64_t(out->shape.size());
  if (kElementwise.count(n.op)) {
    int64_t od = d + (out_rank - in_rank);
    for (size_t slot = 0; slot < n.inputs.size(); ++slot) {
      Value* other = n.inputs[slot];
      if (!other || other == in || c.dim.count(other)) continue;
      int64_t r = int64_t(other->shape.size()), at = od - (out_rank - r);
      if (!other->rank_known || at < 0 || other->shape[size_t(at)] == 1) continue;
      if (other->constant && other->shape[size_t(at)] == in->shape[size_t(d)]) slice_constant(c, n, slot, at, from);
      else cannot(n, from, "operand '" + other->name + "' is not sharded but spans the sharded dim");
    }
    for (Value* other : n.inputs)
      if (other && c.dim.count(other) && c.dim[other] + (out_rank - int64_t(other->shape.size())) != od)
        cannot(n, from, "its operands are sharded along different dims");
    return od;
  }
  if (n.op == "Transpose") {
    auto perm = n.attrs.get_ints("perm", {});
    for (size_t i = 0; i < perm.size(); ++i)
      if (perm[i] == d) return int64_t(i);
    return in_rank - 1 - d;  // default perm reverses
  }
  if (n.op == "Reshape") {
    int64_t k = reshape_dim(in->shape, out->shape, d);
    if (k < 0) cannot(n, from, "the reshape splits or merges the sharded dim unevenly");
    divide_constant(c, n, 1, k, from);
    return k;
  }
  if (n.op == "Expand") {
    int64_t od = d + (out_rank - in_rank);
    divide_constant(c, n, 1, od - (out_rank - int64_t(n.inputs[1]->constant ? n.inputs[1]->constant->numel() : out_rank)), from);
    return od;
  }
  if (n.op == "Unsqueeze" || n.op == "Squeeze") {
    // Map by counting dims: the sharded dim keeps its place among the dims that survive.
    std::vector<int64_t> axes = n.input(1) && n.input(1)->constant ? n.input(1)->constant->to_i64_vector() : n.attrs.get_ints("axes");
    int64_t r = n.op == "Unsqueeze" ? out_rank : in_rank;
    for (int64_t& a : axes) a = a < 0 ? a + r : a;
    std::sort(axes.begin(), axes.end());
    int64_t od = d;
    if (n.op == "Unsqueeze") {
      for (int64_t a : axes) if (a <= od) ++od;
    } else {
      for (int64_t a : axes) {
        if (a == d) cannot(n, from, "it squeezes the sharded dim");
        if (a < d) --od;
      }
    }
    return od;
  }
  if (n.op == "MatMul") {
    // Attention: both operands sharded along the same batch (head) dim.
    Value* a = n.input(0);
    Value* b = n.input(1);
    if (!c.dim.count(a) || !c.dim.count(b)) cannot(n, from, "only one operand is sharded");
    int64_t da = c.dim[a] + (out_rank - int64_t(a->shape.size())), db = c.dim[b] + (out_rank - int64_t(b->shape.size()));
    if (da != db || da >= out_rank - 2) cannot(n, from, "the shard is not a batch (head) dim of both operands");
    return da;
  }
  if (n.op == "Softmax" || n.op == "LogSoftmax") {
    int64_t axis = n.attrs.get_int("axis", -1);
    if ((axis < 0 ? axis + in_rank : axis) == d) cannot(n, from, "it normalises along the sharded dim");
    return d;
  }
  if (n.op == "Slice") {
    auto axes = n.input(3) && n.input(3)->constant ? n.input(3)->constant->to_i64_vector() : std::vector<int64_t>{};
    if (axes.empty()) for (int64_t i = 0; i < in_rank; ++i) axes.push_back(i);  // no axes: all dims
    for (int64_t a : axes)
      if ((a < 0 ? a + in_rank : a) == d && in->shape[size_t(d)] != out->shape[size_t(d)]) cannot(n, from, "it slices the sharded dim");
    return d;
  }
  if (n.op == "Concat") {
    int64_t axis = n.attrs.get_int("axis", 0);
    if ((axis < 0 ? axis + in_rank : axis) == d) cannot(n, from, "it concatenates along the sharded dim");
    for (Value* other : n.inputs)
      if (other && !c.dim.count(other)) cannot(n, from, "operand '" + other->name + "' is not sharded");
    return d;
  }
  cannot(n, from, "no sharding rule for this op");
}

}  // namespace

void propagate_shards(Graph& g, int rank, int degree, const std::unordered_map<const Value*, std::string>& seeds,
                      const std::set<const Node*>& stops, bool dry_run) {
  Ctx c{g, rank, degree, dry_run, {}, {}, {}};
  for (auto& [v, name] : seeds) {
    c.dim[v] = int64_t(v->shape.size()) - 1;
    c.from[v] = name;
  }
  for (auto& n : g.mutable_nodes()) {
    Value* in = nullptr;
    for (Value* x : n->inputs)
      if (x && c.dim.count(x)) { in = x; break; }
    if (!in || stops.count(n.get()) || n->op == "AllGather") continue;
    if (n->outputs.size() != 1 && n->op != "Split") cannot(*n, c.from[in], "it has several outputs");
    int64_t d = propagate_node(c, *n, in, c.dim[in], c.from[in]);
    for (Value* o : n->outputs)
      if (o) c.dim[o] = d, c.from[o] = c.from[in];
  }
  for (const Value* o : g.outputs)
    if (c.dim.count(o))
      fail(ErrorKind::InvalidArgument, "graph output '", o->name, "' would hold only this rank's shard (sharded by colwise '", c.from[o],
           "'); end the region with a rowwise layer or give the colwise layer output_layouts=Replicate()");
}

}  // namespace tessera::parallel
