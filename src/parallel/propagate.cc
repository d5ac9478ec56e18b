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

#include <algorithm>
#include <map>
#include <set>
#include <tuple>

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
  // Blocks along the sharded dim when fewer than the degree (GQA's KV heads,
  // replicated over degree/parts ranks: rank r holds block r / (degree/parts)).
  std::unordered_map<const Value*, int64_t> parts;
  // GQA's head repeat [.., KV, rep, ..]: sharded over dims d and d+1 together
  // (KV block and repeat block), valid only once they are merged into heads.
  std::set<const Value*> joint;
  std::map<std::tuple<const Value*, int64_t, int64_t>, Value*> sliced;  // (constant, dim, parts) → this rank's block, made once
  // Sequence mode: the shard is a dim of a whole-feature activation (Shard(1)
  // after a reduce-scatter or in a sequence_parallel module); replicated
  // activations it meets are sliced locally, and `features` (values the
  // feature propagation sharded) may not be met.
  bool seq = false;
  std::unordered_map<const Value*, int64_t> features;
  std::map<std::pair<const Value*, int64_t>, Value*> local;  // (replicated activation, dim) → this rank's block
  int64_t parts_of(const Value* v) const {
    auto it = parts.find(v);
    return it == parts.end() ? degree : it->second;
  }
  int block(int64_t p) const { return int(rank / (degree / p)); }
};

// Where a sharded value ends up in a node's output.
struct Placement {
  int64_t dim;
  int64_t parts;
  bool joint = false;
};

// `from` says where the shard began: "colwise 'mlp.fc1'" (features), or a
// rowwise output / sequence_parallel module (sequence, Shard(1)).
[[noreturn]] void cannot(const Node& n, const std::string& from, const std::string& why) {
  bool features = from.starts_with("colwise ");
  fail(ErrorKind::InvalidArgument, "node '", n.name, "' (", n.op, ") reads an activation sharded by the plan (from ", from, "): ", why,
       "; tessera cannot prove this op correct on a shard: ",
       features ? "end the sharded region with a rowwise layer first, or change the plan"
                : "end the sequence-sharded region with a colwise layer with input_layouts=Shard(1), or change the plan");
}

int64_t product(const Shape& s, size_t end) {
  int64_t p = 1;
  for (size_t i = 0; i < end && i < s.size(); ++i) p *= s[i];
  return p;
}

// Give `n` a private copy of constant input `slot` with element `at` divided
// by `by` (the degree, or the blocks of a shard with fewer blocks than ranks).
void divide_constant(Ctx& c, Node& n, size_t slot, int64_t at, const std::string& from, int64_t by) {
  Value* v = n.inputs[slot];
  if (!v || !v->constant) cannot(n, from, "its target shape is not a constant");
  std::vector<int64_t> t = v->constant->to_i64_vector();
  if (at < 0 || at >= int64_t(t.size())) cannot(n, from, "its target shape has no dim " + std::to_string(at));
  if (t[size_t(at)] > 0) {
    if (t[size_t(at)] % by)
      cannot(n, from, "dim " + std::to_string(at) + " (" + std::to_string(t[size_t(at)]) + ") does not divide by " +
                          (by == c.degree ? "the TP degree" : std::to_string(by)));
    t[size_t(at)] /= by;
  }
  if (c.dry_run) return;
  Value* copy = c.g.add_constant(c.g.unique_name(v->name + ".shard"), Tensor::vector_i64(t).cast(v->constant->dtype()));
  n.inputs[slot] = copy;
}

// Replace constant input `slot` of `n` with this rank's block (of `p`) of it
// along `at` (its extent there must be the global extent of the sharded dim).
void slice_constant(Ctx& c, Node& n, size_t slot, int64_t at, const std::string& from, int64_t p) {
  Value* v = n.inputs[slot];
  if (v->shape[size_t(at)] % p)
    cannot(n, from, "constant '" + v->name + "' dim " + std::to_string(at) + " (" + std::to_string(v->shape[size_t(at)]) +
                        ") does not divide by the TP degree");
  if (c.dry_run) return;
  Value*& copy = c.sliced[{v, at, p}];
  if (!copy) copy = c.g.add_constant(c.g.unique_name(v->name + ".shard"), chunk(*v->constant, at, c.block(p), int(p), "constant '" + v->name + "'"));
  n.inputs[slot] = copy;
}

// Sequence mode: replace activation input `slot` of `n`, replicated on every
// rank, with this rank's block of it along `at` — a local Slice, as DTensor
// redistributes Replicate() to Shard(d) without communication.
void localize(Ctx& c, Node& n, size_t slot, int64_t at, const std::string& from) {
  Value* v = n.inputs[slot];
  if (!v->rank_known || at >= int64_t(v->shape.size()) || v->shape[size_t(at)] < 0)
    cannot(n, from, "'" + v->name + "' has an unknown extent along dim " + std::to_string(at) + " (use static shapes, or --shape)");
  int64_t ext = v->shape[size_t(at)];
  if (ext % c.degree)
    fail(ErrorKind::InvalidArgument, "node '", n.name, "' (", n.op, ", ", from, "): dim ", at, " of '", v->name, "' (", ext,
         ") does not divide by the TP degree ", c.degree, ": sequence parallelism needs the sequence length to divide by the ranks");
  Value*& out = c.local[{v, at}];
  if (!out) {
    int64_t len = ext / c.degree;
    std::string base = v->name + ".seq_shard";
    out = c.g.add_value(c.g.unique_name(base), v->dtype, v->shape);  // global shape, as the propagation reads them
    out->rank_known = true;
    Value* starts = c.g.add_constant(c.g.unique_name(base + ".starts"), Tensor::vector_i64({c.rank * len}));
    Value* ends = c.g.add_constant(c.g.unique_name(base + ".ends"), Tensor::vector_i64({(c.rank + 1) * len}));
    Value* axes = c.g.add_constant(c.g.unique_name(base + ".axes"), Tensor::vector_i64({at}));
    c.g.add_node("Slice", c.g.unique_name(n.name + "/seq_shard"), {v, starts, ends, axes}, {out});
    c.dim[out] = at;
    c.from[out] = from;
  }
  n.inputs[slot] = out;
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

// The output dim where a reshape splits input dim `d` into [.., heads, head_dim, ..]: the start of a group of
// two or more output dims covering it, counting a unit heads dim (one KV head: MQA); -1 if it is not split.
int64_t head_split_dim(const Shape& in, const Shape& out, int64_t d) {
  int64_t before = product(in, size_t(d)), span = before * in[size_t(d)], best = -1;
  for (size_t k = 0; k < out.size(); ++k) {
    if (product(out, k) != before) continue;
    size_t m = k + 1;
    while (m < out.size() && product(out, m) < span) ++m;
    if (product(out, m) == span && m - k >= 2) best = int64_t(k);
  }
  return best;
}

// Where the sharded input `in` (dim d) ends up in `n`'s first output; rewrites targets on the way.
Placement propagate_node(Ctx& c, Node& n, Value* in, int64_t d, const std::string& from) {
  Value* out = n.outputs[0];
  if (!out || !out->rank_known || !in->rank_known) cannot(n, from, "its shapes are unknown at build time (use static shapes, or --shape)");
  int64_t in_rank = int64_t(in->shape.size()), out_rank = int64_t(out->shape.size());
  const int64_t p = c.parts_of(in);
  for (Value* other : n.inputs)
    if (other && c.dim.count(other) && c.parts_of(other) != p)
      cannot(n, from, "its operands hold different blocks of heads (KV heads replicated over ranks meet sharded ones)");
  if (c.joint.count(in)) {
    // GQA's repeated KV heads, [.., KV, rep, ..]: only the reshape merging (KV, rep) into heads gives a plain shard.
    if (n.op == "Reshape") {
      int64_t k = reshape_dim(in->shape, out->shape, d);
      if (k < 0 || d + 1 >= in_rank || out->shape[size_t(k)] != in->shape[size_t(d)] * in->shape[size_t(d + 1)])
        cannot(n, from, "it does not merge the repeated KV heads (dims " + std::to_string(d) + ", " + std::to_string(d + 1) + ") into one heads dim");
      divide_constant(c, n, 1, k, from, c.degree);
      return {k, c.degree};
    }
    if (kElementwise.count(n.op) && n.inputs.size() == 1) return {d, p, true};
    cannot(n, from, "it reads GQA's repeated KV heads before they are merged into the heads dim");
  }
  if (kElementwise.count(n.op)) {
    int64_t od = d + (out_rank - in_rank);
    for (size_t slot = 0; slot < n.inputs.size(); ++slot) {
      Value* other = n.inputs[slot];
      if (!other || other == in || c.dim.count(other)) continue;
      int64_t r = int64_t(other->shape.size()), at = od - (out_rank - r);
      if (!other->rank_known || at < 0 || other->shape[size_t(at)] == 1) continue;
      if (other->constant && other->shape[size_t(at)] == in->shape[size_t(d)]) slice_constant(c, n, slot, at, from, p);
      else if (c.seq && !other->constant && !c.features.count(other) && other->shape[size_t(at)] == in->shape[size_t(d)])
        localize(c, n, slot, at, from);  // a replicated activation (the residual before the first shard): this rank's block
      else cannot(n, from, "operand '" + other->name + "' is not sharded but spans the sharded dim");
    }
    for (Value* other : n.inputs)
      if (other && c.dim.count(other) && c.dim[other] + (out_rank - int64_t(other->shape.size())) != od)
        cannot(n, from, "its operands are sharded along different dims");
    return {od, p};
  }
  if (n.op == "Transpose") {
    auto perm = n.attrs.get_ints("perm", {});
    for (size_t i = 0; i < perm.size(); ++i)
      if (perm[i] == d) return {int64_t(i), p};
    return {in_rank - 1 - d, p};  // default perm reverses
  }
  if (n.op == "Reshape") {
    // Replicated KV heads follow the heads dim even when it is 1 (MQA).
    int64_t k = p < c.degree ? head_split_dim(in->shape, out->shape, d) : -1;
    if (k < 0) k = reshape_dim(in->shape, out->shape, d);
    if (k < 0) cannot(n, from, "the reshape splits or merges the sharded dim unevenly");
    divide_constant(c, n, 1, k, from, p);
    return {k, p};
  }
  if (n.op == "Expand") {
    int64_t od = d + (out_rank - in_rank);
    int64_t at = od - (out_rank - int64_t(n.inputs[1]->constant ? n.inputs[1]->constant->numel() : out_rank));
    if (p == c.degree) {
      divide_constant(c, n, 1, at, from, p);
      return {od, p};
    }
    // GQA's head repeat with fewer KV heads than ranks: [.., KV, 1, ..] → [.., KV, rep, ..]. This rank holds
    // KV block rank/f (f = degree/parts ranks share it) and keeps repeat block rank%f of it, so once (KV, rep)
    // are merged the rank holds query-head block `rank` of `degree` — the heads its q_proj shard computes.
    int64_t f = c.degree / p;
    if (d + 1 >= in_rank || in->shape[size_t(d + 1)] != 1 || out->shape[size_t(od + 1)] % f)
      cannot(n, from, "KV heads are replicated over " + std::to_string(f) + " ranks (" + std::to_string(p) +
                          " KV heads, TP degree " + std::to_string(c.degree) + "), but this is not a head repeat [.., KV, 1, ..] → [.., KV, rep, ..] whose repeat count divides by " +
                          std::to_string(f));
    divide_constant(c, n, 1, at, from, p);
    divide_constant(c, n, 1, at + 1, from, f);
    return {od, c.degree, true};
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
    return {od, p};
  }
  if (c.seq && (n.op == "MatMul" || n.op == "Gemm")) {
    // A layer the plan leaves whole, on rows of its input: [.., T/N, C] @ W[C, F] is this rank's rows of the output.
    Value* a = n.input(0);
    Value* b = n.input(1);
    int64_t ra = int64_t(a->shape.size());
    if (a != in || c.dim.count(b) || c.features.count(b)) cannot(n, from, "its weight operand is sharded");
    if (!b->rank_known || b->shape.size() > 2) cannot(n, from, "its second operand is not a 2-D weight");
    if (d >= ra - 1) cannot(n, from, "it contracts the sharded dim");
    if (n.op == "Gemm") {
      Value* bias = n.input(2);
      if (n.attrs.get_int("transA", 0)) cannot(n, from, "transA reads the sharded dim as the contraction");
      if (bias && (c.dim.count(bias) || (bias->rank_known && bias->shape.size() == 2 && bias->shape[0] != 1)))
        cannot(n, from, "its bias spans the sharded rows");
    }
    return {d + (out_rank - ra), p};
  }
  if (c.seq && n.op.starts_with("Reduce")) {
    if (n.input(1) && !n.input(1)->constant) cannot(n, from, "its axes are not constant");
    std::vector<int64_t> axes = n.input(1) ? n.input(1)->constant->to_i64_vector() : n.attrs.get_ints("axes", {});
    if (axes.empty() && !n.attrs.get_int("noop_with_empty_axes", 0)) cannot(n, from, "it reduces over every dim, the sharded one included");
    int64_t od = d;
    for (int64_t a : axes) {
      a = a < 0 ? a + in_rank : a;
      if (a == d) cannot(n, from, "it reduces along the sharded dim");
      if (a < d && !n.attrs.get_int("keepdims", 1)) --od;
    }
    return {od, p};
  }
  if (c.seq && (n.op == "LayerNormalization" || n.op == "RMSNormalization")) {
    int64_t axis = n.attrs.get_int("axis", -1);
    if ((axis < 0 ? axis + in_rank : axis) <= d) cannot(n, from, "it normalises over the sharded dim");
    if (n.input(0) != in) cannot(n, from, "its scale or bias is sharded");
    return {d, p};
  }
  if (n.op == "MatMul") {
    // Attention: both operands sharded along the same batch (head) dim.
    Value* a = n.input(0);
    Value* b = n.input(1);
    if (!c.dim.count(a) || !c.dim.count(b)) cannot(n, from, "only one operand is sharded");
    int64_t da = c.dim[a] + (out_rank - int64_t(a->shape.size())), db = c.dim[b] + (out_rank - int64_t(b->shape.size()));
    if (da != db || da >= out_rank - 2) cannot(n, from, "the shard is not a batch (head) dim of both operands");
    return {da, p};
  }
  if (n.op == "Softmax" || n.op == "LogSoftmax") {
    int64_t axis = n.attrs.get_int("axis", -1);
    if ((axis < 0 ? axis + in_rank : axis) == d) cannot(n, from, "it normalises along the sharded dim");
    return {d, p};
  }
  if (n.op == "Slice") {
    auto axes = n.input(3) && n.input(3)->constant ? n.input(3)->constant->to_i64_vector() : std::vector<int64_t>{};
    if (axes.empty()) for (int64_t i = 0; i < in_rank; ++i) axes.push_back(i);  // no axes: all dims
    for (int64_t a : axes)
      if ((a < 0 ? a + in_rank : a) == d && in->shape[size_t(d)] != out->shape[size_t(d)]) cannot(n, from, "it slices the sharded dim");
    return {d, p};
  }
  if (n.op == "Concat") {
    int64_t axis = n.attrs.get_int("axis", 0);
    if ((axis < 0 ? axis + in_rank : axis) == d) cannot(n, from, "it concatenates along the sharded dim");
    for (Value* other : n.inputs)
      if (other && !c.dim.count(other)) cannot(n, from, "operand '" + other->name + "' is not sharded");
    return {d, p};
  }
  cannot(n, from, "no sharding rule for this op");
}

// The nodes reading `v`.
std::vector<Node*> readers(const Graph& g, const Value* v) {
  std::vector<Node*> out;
  for (auto& n : g.nodes())
    if (std::find(n->inputs.begin(), n->inputs.end(), v) != n->inputs.end()) out.push_back(n.get());
  return out;
}

}  // namespace

int64_t colwise_parts(const Graph& g, const Value* v, int degree, const std::string& from) {
  // Follow the features through elementwise ops to the reshapes that split them into heads.
  std::vector<const Value*> todo = {v};
  std::set<const Value*> seen;
  int64_t heads = 0;
  const Node* where = nullptr;
  while (!todo.empty()) {
    const Value* x = todo.back();
    todo.pop_back();
    if (!seen.insert(x).second) continue;
    for (Node* n : readers(g, x)) {
      const Value* out = n->outputs.empty() ? nullptr : n->outputs[0];
      if (!out) continue;
      if (kElementwise.count(n->op)) {
        if (out->rank_known && x->rank_known && out->shape.size() >= x->shape.size()) todo.push_back(out);
        continue;
      }
      if (n->op != "Reshape" || !x->rank_known || !out->rank_known || x->shape.empty()) continue;
      // The features (the last dim) split into [.., heads, head_dim]: the group of output dims after the
      // prefix that matches the input's leading dims; a unit heads dim counts (one KV head: MQA).
      int64_t k = head_split_dim(x->shape, out->shape, int64_t(x->shape.size()) - 1);
      if (k < 0 || out->shape[size_t(k)] <= 0) continue;
      if (heads && heads != out->shape[size_t(k)]) continue;  // the propagation proves (or refuses) the rest
      heads = out->shape[size_t(k)];
      where = n;
    }
  }
  if (!heads || heads % degree == 0) return degree;
  if (degree % heads == 0) return heads;
  fail(ErrorKind::InvalidArgument, "node '", where->name, "' (", where->op, ") splits the output of colwise '", from, "' into ", heads,
       " heads, which cannot be shared out over ", degree, " ranks: the TP degree must divide the head count or (KV heads, "
       "then replicated over ranks) be a multiple of it");
}

std::unordered_map<const Value*, int64_t> propagate_shards(Graph& g, int rank, int degree,
                                                           const std::unordered_map<const Value*, std::string>& seeds,
                                                           const std::set<const Node*>& stops, bool dry_run,
                                                           const std::unordered_map<const Value*, int64_t>& parts) {
  Ctx c{g, rank, degree, dry_run, {}, {}, {}, {}, {}};
  for (auto& [v, name] : seeds) {
    c.dim[v] = int64_t(v->shape.size()) - 1;
    c.from[v] = "colwise '" + name + "'";
  }
  for (auto& [v, p] : parts)
    if (p != degree) c.parts[v] = p;
  for (auto& n : g.mutable_nodes()) {
    Value* in = nullptr;
    for (Value* x : n->inputs)
      if (x && c.dim.count(x)) { in = x; break; }
    if (!in) continue;
    if ((stops.count(n.get()) || n->op == "AllGather") && (c.parts_of(in) != degree || c.joint.count(in)))
      cannot(*n, c.from[in], "it reads heads replicated over ranks (" + std::to_string(c.parts_of(in)) + " head blocks on " +
                                 std::to_string(degree) + " ranks: only KV heads may be fewer than ranks, and only up to the head repeat)");
    if (stops.count(n.get()) || n->op == "AllGather") continue;
    if (n->outputs.size() != 1 && n->op != "Split") cannot(*n, c.from[in], "it has several outputs");
    Placement at = propagate_node(c, *n, in, c.dim[in], c.from[in]);
    for (Value* o : n->outputs) {
      if (!o) continue;
      c.dim[o] = at.dim, c.from[o] = c.from[in];
      if (at.parts != degree) c.parts[o] = at.parts;
      if (at.joint) c.joint.insert(o);
    }
  }
  for (const Value* o : g.outputs)
    if (c.dim.count(o))
      fail(ErrorKind::InvalidArgument, "graph output '", o->name, "' would hold only this rank's shard (sharded by ", c.from[o],
           "); end the region with a rowwise layer or give the colwise layer output_layouts=Replicate()");
  return c.dim;
}

std::unordered_map<const Value*, int64_t> propagate_sequence_shards(Graph& g, int rank, int degree, const SequenceSeeds& seeds,
                                                                    const std::map<const Node*, std::string>& modules,
                                                                    const std::map<const Node*, std::string>& planned,
                                                                    const std::unordered_map<const Value*, int64_t>& features) {
  Ctx c{g, rank, degree, false, {}, {}, {}, {}, {}};
  c.seq = true;
  c.features = features;
  for (auto& [v, s] : seeds) c.dim[v] = s.first, c.from[v] = s.second;
  std::set<const Node*> ran;
  // Index loop: localize() appends Slice nodes (visited at the end, reading replicated values: skipped).
  for (size_t i = 0; i < g.nodes().size(); ++i) {
    Node& n = *g.mutable_nodes()[i];
    if (auto m = modules.find(&n); m != modules.end()) {
      // A sequence_parallel module runs on Shard(1): an input from outside it that is replicated is sliced locally.
      std::string from = "sequence_parallel '" + m->second + "'";
      for (size_t slot = 0; slot < n.inputs.size(); ++slot) {
        Value* x = n.inputs[slot];
        if (!x || x->constant || (x->producer && modules.count(x->producer))) continue;
        if (c.features.count(x)) cannot(n, from, "its input '" + x->name + "' is sharded along its features (a colwise output), not the sequence");
        if (auto it = c.dim.find(x); it != c.dim.end()) {
          if (it->second != 1)
            cannot(n, from, "its input '" + x->name + "' is sharded along dim " + std::to_string(it->second) + ", not the sequence (Shard(1))");
          continue;
        }
        localize(c, n, slot, 1, from);
      }
    }
    Value* in = nullptr;
    for (Value* x : n.inputs)
      if (x && c.dim.count(x)) { in = x; break; }
    if (!in) continue;
    ran.insert(&n);
    int64_t d = c.dim[in];
    if (n.op == "AllGather") {  // colwise input_layouts=Shard(d): the region ends
      int64_t axis = n.attrs.get_int("axis", 0), r = int64_t(in->shape.size());
      if ((axis < 0 ? axis + r : axis) != d)
        cannot(n, c.from[in], "it gathers dim " + std::to_string(axis) + " of an activation sharded along dim " + std::to_string(d));
      continue;
    }
    if (auto p = planned.find(&n); p != planned.end())
      cannot(n, c.from[in], "the plan's " + p->second + " reads an activation sharded along dim " + std::to_string(d) +
                                (p->second.starts_with("colwise") ? "; give it input_layouts=Shard(" + std::to_string(d) + ")" : ""));
    if (n.op == "AllReduce" || n.op == "ReduceScatter" || n.op == "AllToAll") cannot(n, c.from[in], "a collective the plan did not make reads it");
    if (n.outputs.size() != 1 && n.op != "LayerNormalization") cannot(n, c.from[in], "it has several outputs");
    Placement at = propagate_node(c, n, in, d, c.from[in]);
    for (Value* o : n.outputs)
      if (o) c.dim[o] = at.dim, c.from[o] = c.from[in];
  }
  for (auto& [n, path] : modules)
    if (!ran.count(n))
      for (Value* x : n->inputs)
        if (x && !x->constant)
          fail(ErrorKind::InvalidArgument, "node '", n->name, "' (", n->op, ") of sequence_parallel module '", path,
               "' does not run on the sequence shard (its input '", x->name, "' is not sharded along the sequence)");
  return c.dim;
}

}  // namespace tessera::parallel
