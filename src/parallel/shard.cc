#include "parallel/shard.h"

#include <algorithm>
#include <map>
#include <set>
#include <unordered_map>

#include "core/error.h"
#include "parallel/propagate.h"

namespace tessera::parallel {

namespace {

std::string path_from_node_name(const std::string& name) {
  // "/layers.0/mlp/fc1/Gemm" → "layers.0.mlp.fc1"
  std::string s = name.starts_with("/") ? name.substr(1) : name;
  size_t last = s.rfind('/');
  if (last == std::string::npos) return "";
  s.resize(last);
  for (char& c : s) if (c == '/') c = '.';
  return s;
}

// The names a plan may give a layer whose weight is `w`, best first: the
// module path the exporter recorded on the node (dynamo's metadata, kept by
// the importer as Node::scope), the weight's name less ".weight"
// (TorchScript's "fc1.weight"), the node name's scope ("/layers.0/mlp/fc1/Gemm"),
// and the weight's own name ("val_50" when nothing else is known).
std::vector<std::string> module_names(const Node& n, const Value* w) {
  std::vector<std::string> names;
  auto add = [&](const std::string& s) {
    if (!s.empty() && std::find(names.begin(), names.end(), s) == names.end()) names.push_back(s);
  };
  add(n.scope);
  if (w->name.ends_with(".weight")) add(w->name.substr(0, w->name.size() - 7));
  add(path_from_node_name(n.name));
  add(w->name);
  return names;
}

std::vector<Node*> consumers(const Graph& g, const Value* v) {
  std::vector<Node*> out;
  for (auto& n : g.nodes())
    for (Value* in : n->inputs)
      if (in == v) { out.push_back(n.get()); break; }
  return out;
}

}  // namespace

Value* Linear::output() const { return bias_add ? bias_add->outputs[0] : node->outputs[0]; }

Tensor chunk(const Tensor& t, int64_t dim, int rank, int degree, const std::string& what) {
  int64_t n = t.dim(dim);
  if (n % degree) fail(ErrorKind::InvalidArgument, what, ": dim ", dim, " of ", to_string(t.shape()), " does not divide by the TP degree ", degree);
  Shape s = t.shape();
  s[size_t(dim)] = n / degree;
  Tensor out = Tensor::empty(t.dtype(), s);
  int64_t outer = 1, inner = int64_t(dtype_size(t.dtype()));
  for (int64_t i = 0; i < dim; ++i) outer *= t.dim(i);
  for (int64_t i = dim + 1; i < t.rank(); ++i) inner *= t.dim(i);
  size_t row = size_t(s[size_t(dim)] * inner);
  for (int64_t o = 0; o < outer; ++o)
    std::memcpy(static_cast<char*>(out.raw()) + size_t(o) * row,
                static_cast<const char*>(t.raw()) + size_t(o * n * inner) + size_t(rank) * row, row);
  return out;
}

namespace {

std::optional<Linear> as_linear(const Graph& g, Node& n) {
  if ((n.op != "Gemm" && n.op != "MatMul") || !n.input(1)) return std::nullopt;
  Linear l;
  l.node = &n;
  Value* b = n.input(1);
  bool w_is_out_in = n.op == "Gemm" && n.attrs.get_int("transB", 0);
  if (!b->constant && b->producer && b->producer->op == "Transpose" && b->producer->input(0) &&
      b->producer->input(0)->constant) {
    auto perm = b->producer->attrs.get_ints("perm", {1, 0});
    if (perm != std::vector<int64_t>{1, 0}) return std::nullopt;
    b = b->producer->input(0);
    w_is_out_in = !w_is_out_in;
  }
  if (!b->constant || b->constant->rank() != 2) return std::nullopt;
  if (n.op == "Gemm" && n.attrs.get_int("transA", 0)) return std::nullopt;
  l.weight = b;
  l.out_dim = w_is_out_in ? 0 : 1;
  l.names = module_names(n, b);
  l.path = l.names.front();
  if (n.op == "Gemm" && n.input(2) && n.input(2)->constant) l.bias = n.input(2);
  if (n.op == "MatMul") {
    auto users = consumers(g, n.outputs[0]);
    if (users.size() == 1 && users[0]->op == "Add") {
      Node* add = users[0];
      Value* other = add->input(0) == n.outputs[0] ? add->input(1) : add->input(0);
      if (other && other->constant && other->constant->rank() == 1) l.bias = other, l.bias_add = add;
    }
  }
  return l;
}

// A constant shared by several nodes must not be sliced twice: slice a private copy.
void set_sliced(Graph& g, Node& user, Value*& slot, Tensor t) {
  Value* v = g.add_constant(g.unique_name(slot->name + ".shard"), std::move(t));
  for (Value*& in : user.inputs)
    if (in == slot) in = v;
  slot = v;
}

Node* insert_collective(Graph& g, const std::string& op, Value* in, Value* out, const ShardOptions& opt, int64_t axis,
                        const std::string& name) {
  Attributes a;
  a.set("group_size", int64_t(opt.degree));
  a.set("reduce", std::string("sum"));
  a.set("axis", axis);
  if (!opt.group.empty()) a.set("group", opt.group);
  return g.add_node(op, g.unique_name(name), {in}, {out}, a);
}

// Give the value read by `user` at `slot` a collective in front: user reads the
// new value. Layers reading the same value (q/k/v_proj) share one collective.
void collective_before(Graph& g, Node& user, size_t slot, const std::string& op, int64_t axis, const ShardOptions& opt) {
  Value* in = user.inputs[slot];
  for (auto& c : g.nodes())
    if (c->op == op && c->input(0) == in && c->attrs.get_int("axis", 0) == axis && c->attrs.get_int("group_size", 0) == opt.degree) {
      user.inputs[slot] = c->outputs[0];
      return;
    }
  Value* out = g.add_value(g.unique_name(in->name + "." + op), in->dtype, {});
  out->rank_known = false;
  insert_collective(g, op, in, out, opt, axis, user.name + "/" + op);
  user.inputs[slot] = out;
}

// Move `produced` behind a new op: its producer now writes a fresh value,
// which feeds the op, and the op writes `produced` (so its name and its users,
// graph outputs included, stay). Returns the fresh value.
Value* detach(Graph& g, Value* produced, const std::string& suffix) {
  Node* p = produced->producer;
  Value* fresh = g.add_value(g.unique_name(produced->name + suffix), produced->dtype, produced->shape);
  fresh->rank_known = produced->rank_known;
  for (Value*& o : p->outputs)
    if (o == produced) o = fresh;
  fresh->producer = p;
  return fresh;
}

void collective_after(Graph& g, Value* produced, const std::string& op, int64_t axis, const ShardOptions& opt, const std::string& name) {
  Value* in = detach(g, produced, ".local");
  insert_collective(g, op, in, produced, opt, axis, name);
}

void shard_graph_input(Graph& g, Value* v, int64_t dim, const ShardOptions& opt, const std::string& who) {
  if (std::find(g.inputs.begin(), g.inputs.end(), v) == g.inputs.end() || !v->rank_known) return;
  int64_t d = dim < 0 ? dim + int64_t(v->shape.size()) : dim;
  int64_t& ext = v->shape.at(size_t(d));
  if (ext < 0) return;
  if (ext % opt.degree) fail(ErrorKind::InvalidArgument, who, ": input '", v->name, "' dim ", d, " (", ext, ") does not divide by the TP degree ", opt.degree);
  ext /= opt.degree;
}

// Apply one matched entry; returns the value that carries Shard(-1) (colwise) or null,
// and in `parts` how many blocks it is cut into (see colwise_parts); a rowwise
// layer with output_layouts=Shard(d) gives its reduce-scattered output in `scattered`.
Value* apply(Graph& g, Linear& l, const PlanEntry& e, const ShardOptions& opt, int64_t& parts, Value*& scattered) {
  std::string who = "node '" + l.node->name + "' (" + l.path + ", " + style_name(e.style) + ")";
  Node& n = *l.node;
  int in_dim = 1 - l.out_dim;
  parts = opt.degree;
  if (e.style == Style::colwise) {
    // Output left sharded: fewer heads than ranks (GQA's KV heads) keep this rank's head whole.
    // (A weight that does not divide by the degree is refused by chunk() below, naming the layer.)
    if (!(e.output_layout && !e.output_layout->sharded) && l.weight->constant->dim(l.out_dim) % opt.degree == 0)
      parts = colwise_parts(g, l.output(), opt.degree, l.path);
    int block = int(opt.rank / (opt.degree / parts));
    Value*& wslot = n.inputs[1]->constant ? n.inputs[1] : n.inputs[1]->producer->inputs[0];
    Node& wuser = n.inputs[1]->constant ? n : *n.inputs[1]->producer;
    set_sliced(g, wuser, wslot, chunk(*l.weight->constant, l.out_dim, block, int(parts), who));
    if (l.bias) set_sliced(g, l.bias_add ? *l.bias_add : n, l.bias, chunk(*l.bias->constant, 0, block, int(parts), who));
    if (e.input_layout && e.input_layout->sharded) {
      shard_graph_input(g, n.inputs[0], e.input_layout->dim, opt, who);
      collective_before(g, n, 0, "AllGather", e.input_layout->dim, opt);
    }
    Value* out = l.bias_add ? l.bias_add->outputs[0] : n.outputs[0];
    if (e.output_layout && !e.output_layout->sharded) {
      collective_after(g, out, "AllGather", -1, opt, n.name + "/AllGather");
      return nullptr;
    }
    if (e.output_layout && e.output_layout->dim != -1)
      fail(ErrorKind::Unsupported, who, ": colwise output_layouts ", e.output_layout->str(), " (only Shard(-1) or Replicate())");
    return out;
  }
  if (e.style == Style::rowwise) {
    if (e.input_layout && !(e.input_layout->sharded && e.input_layout->dim == -1))
      fail(ErrorKind::Unsupported, who, ": rowwise input_layouts ", e.input_layout->str(), " (only Shard(-1), the default)");
    Value*& wslot = n.inputs[1]->constant ? n.inputs[1] : n.inputs[1]->producer->inputs[0];
    Node& wuser = n.inputs[1]->constant ? n : *n.inputs[1]->producer;
    set_sliced(g, wuser, wslot, chunk(*l.weight->constant, in_dim, opt.rank, opt.degree, who));
    // The bias is added once, after the reduction.
    Value* bias = l.bias;
    Value* partial = n.outputs[0];
    if (bias && !l.bias_add) n.inputs.resize(2);
    bool scatter = e.output_layout && e.output_layout->sharded;
    std::string op = scatter ? "ReduceScatter" : "AllReduce";
    if (bias && !l.bias_add) {  // Gemm's bias: an Add after the collective
      Value* unbiased = detach(g, partial, ".unbiased");
      g.add_node("Add", g.unique_name(n.name + "/bias"), {unbiased, bias}, {partial});
      partial = unbiased;
    }
    if (scatter && partial->rank_known) {
      int64_t r = int64_t(partial->shape.size()), d = e.output_layout->dim < 0 ? e.output_layout->dim + r : e.output_layout->dim;
      if (d < 0 || d >= r) fail(ErrorKind::InvalidArgument, who, ": output_layouts ", e.output_layout->str(), " names no dim of its ", r, "-D output");
      int64_t ext = partial->shape[size_t(d)];
      if (ext > 0 && ext % opt.degree)
        fail(ErrorKind::InvalidArgument, who, ": output_layouts ", e.output_layout->str(), ": dim ", d, " of its output (", ext,
             ") does not divide by the TP degree ", opt.degree);
    }
    collective_after(g, partial, op, scatter ? e.output_layout->dim : 0, opt, n.name + "/" + op);
    if (scatter) scattered = partial;
    return nullptr;
  }
  return nullptr;  // replicate: every rank holds the whole layer
}

}  // namespace

namespace {

Value* add_scalar(Graph& g, const std::string& name, DType t, double v) {
  Tensor x = Tensor::from<double>(DType::f64, {}, {v}).cast(t);
  return g.add_constant(g.unique_name(name), x);
}

Value* add_tmp(Graph& g, const std::string& name, DType t) {
  Value* v = g.add_value(g.unique_name(name), t, {});
  v->rank_known = false;
  return v;
}

// Vocab-parallel embedding (DTensor's RowwiseParallel on nn.Embedding): this
// rank holds rows [lo, lo + V/N); ids outside it look up row 0 and are zeroed,
// and an all-reduce sums the ranks' rows back into every rank.
// With `scatter_dim` >= 0 (output_layouts=Shard(d)) a reduce-scatter along it instead.
void shard_embedding_rows(Graph& g, Node& n, const ShardOptions& opt, const std::string& who, int64_t scatter_dim = -1) {
  Value* w = n.inputs[0];
  Value* ids = n.inputs[1];
  int64_t vocab = w->constant->dim(0), rows = vocab / opt.degree;
  set_sliced(g, n, n.inputs[0], chunk(*w->constant, 0, opt.rank, opt.degree, who));
  DType it = ids->dtype;
  std::string base = n.name + "/vocab_parallel";
  Value* local = add_tmp(g, base + ".local_ids", it);
  Value* below = add_tmp(g, base + ".below", DType::boolean);
  Value* above = add_tmp(g, base + ".above", DType::boolean);
  Value* outside = add_tmp(g, base + ".outside", DType::boolean);
  Value* safe = add_tmp(g, base + ".safe_ids", it);
  Value* mask = add_tmp(g, base + ".mask", DType::boolean);
  Value* zero_id = add_scalar(g, base + ".zero_id", it, 0);
  g.add_node("Sub", g.unique_name(base + "/Sub"), {ids, add_scalar(g, base + ".lo", it, double(rows * opt.rank))}, {local});
  g.add_node("Less", g.unique_name(base + "/Less"), {local, zero_id}, {below});
  g.add_node("GreaterOrEqual", g.unique_name(base + "/GreaterOrEqual"), {local, add_scalar(g, base + ".rows", it, double(rows))}, {above});
  g.add_node("Or", g.unique_name(base + "/Or"), {below, above}, {outside});
  g.add_node("Where", g.unique_name(base + "/WhereIds"), {outside, zero_id, local}, {safe});
  g.add_node("Unsqueeze", g.unique_name(base + "/Unsqueeze"), {outside, g.add_constant(g.unique_name(base + ".axes"), Tensor::vector_i64({-1}))}, {mask});
  n.inputs[1] = safe;
  Value* out = n.outputs[0];
  Value* rows_out = detach(g, out, ".local_rows");
  Value* zeroed = add_tmp(g, base + ".zeroed", out->dtype);
  g.add_node("Where", g.unique_name(base + "/WhereRows"), {mask, add_scalar(g, base + ".zero", out->dtype, 0), rows_out}, {zeroed});
  if (scatter_dim < 0) insert_collective(g, "AllReduce", zeroed, out, opt, 0, base + "/AllReduce");
  else insert_collective(g, "ReduceScatter", zeroed, out, opt, scatter_dim, base + "/ReduceScatter");
}

struct Embedding {
  Node* node;
  std::string path;
  std::vector<std::string> names;
};

std::vector<Embedding> find_embeddings(const Graph& g) {
  std::vector<Embedding> out;
  for (auto& n : g.nodes()) {
    Value* w = n->input(0);
    if (n->op != "Gather" || !w || !w->constant || w->constant->rank() != 2 || n->attrs.get_int("axis", 0) != 0) continue;
    std::vector<std::string> names = module_names(*n, w);
    out.push_back({n.get(), names.front(), names});
  }
  return out;
}

}  // namespace

std::vector<Linear> find_linears(const Graph& g) {
  std::vector<Linear> out;
  for (auto& n : g.nodes())
    if (auto l = as_linear(g, *n)) out.push_back(*l);
  return out;
}

void apply_tp_plan(Graph& g, const Plan& plan, const ShardOptions& opt) {
  if (opt.degree < 1 || opt.rank < 0 || opt.rank >= opt.degree)
    fail(ErrorKind::InvalidArgument, "TP rank ", opt.rank, " of degree ", opt.degree, " is out of range");
  std::vector<Linear> sites = find_linears(g);
  std::set<const PlanEntry*> used;
  std::unordered_map<const Value*, std::string> seeds;
  std::set<const Node*> rowwise;
  SequenceSeeds seq_seeds;
  for (Embedding& emb : find_embeddings(g)) {
    const PlanEntry* e = plan.match(emb.names);
    if (!e) continue;
    used.insert(e);
    std::string who = "node '" + emb.node->name + "' (" + emb.path + ", embedding " + style_name(e->style) + ")";
    if (e->style == Style::sequence_parallel)
      fail(ErrorKind::InvalidArgument, who, ": sequence_parallel applies to norm and dropout modules, not an embedding (use rowwise with output_layouts=Shard(1))");
    if (e->style == Style::rowwise) {
      Value* out = emb.node->outputs[0];
      if (e->output_layout && e->output_layout->sharded) {  // Shard(1): reduce-scatter the rows over the sequence
        int64_t r = int64_t(out->shape.size()), d = e->output_layout->dim < 0 ? e->output_layout->dim + r : e->output_layout->dim;
        if (!out->rank_known || d < 0 || d >= r - 1)
          fail(ErrorKind::Unsupported, who, ": output_layouts ", e->output_layout->str(), " (Replicate(), or Shard(d) of a dim before the embedding's)");
        if (out->shape[size_t(d)] > 0 && out->shape[size_t(d)] % opt.degree)
          fail(ErrorKind::InvalidArgument, who, ": output_layouts ", e->output_layout->str(), ": dim ", d, " of its output (", out->shape[size_t(d)],
               ") does not divide by the TP degree ", opt.degree);
        shard_embedding_rows(g, *emb.node, opt, who, d);
        seq_seeds[out] = {d, "rowwise '" + emb.path + "' output " + e->output_layout->str()};
      } else {
        shard_embedding_rows(g, *emb.node, opt, who);
      }
    } else if (e->style == Style::colwise) {  // embedding dim split: output Shard(-1)
      set_sliced(g, *emb.node, emb.node->inputs[0], chunk(*emb.node->inputs[0]->constant, 1, opt.rank, opt.degree, who));
      seeds[emb.node->outputs[0]] = emb.path;
    }
  }
  std::unordered_map<const Value*, int64_t> parts;
  std::map<const Node*, std::string> planned;  // colwise/rowwise layers: a sequence shard may not reach them
  std::vector<std::pair<Node*, std::string>> gathered;  // colwise layers with input_layouts=Shard(d)
  for (Linear& l : sites) {
    const PlanEntry* e = plan.match(l.names);
    if (!e) continue;
    used.insert(e);
    if (e->style == Style::sequence_parallel)
      fail(ErrorKind::InvalidArgument, "plan entry '", e->pattern, "': sequence_parallel applies to norm and dropout modules (Shard(1) in and out), "
           "but '", l.path, "' is a linear layer (node '", l.node->name, "'): use colwise or rowwise with input_layouts/output_layouts=Shard(1)");
    if (e->style == Style::rowwise) rowwise.insert(l.node);
    if (e->style != Style::replicate) planned[l.node] = std::string(style_name(e->style)) + " '" + l.path + "'";
    if (e->style == Style::colwise && e->input_layout && e->input_layout->sharded) gathered.push_back({l.node, l.path});
    int64_t p = opt.degree;
    Value* scattered = nullptr;
    if (Value* v = apply(g, l, *e, opt, p, scattered)) seeds[v] = l.path, parts[v] = p;
    if (scattered) {
      int64_t r = int64_t(scattered->shape.size());
      seq_seeds[scattered] = {e->output_layout->dim < 0 ? e->output_layout->dim + r : e->output_layout->dim,
                              "rowwise '" + l.path + "' output " + e->output_layout->str()};
    }
  }
  // sequence_parallel modules: the nodes (other than linear layers) whose module path matches.
  std::map<const Node*, std::string> modules;
  std::set<const Node*> linear_nodes;
  for (Linear& l : sites) linear_nodes.insert(l.node);
  for (auto& n : g.nodes()) {
    if (linear_nodes.count(n.get()) || n->op == "AllGather" || n->op == "AllReduce" || n->op == "ReduceScatter") continue;
    std::vector<std::string> names;
    if (!n->scope.empty()) names.push_back(n->scope);
    if (std::string p = path_from_node_name(n->name); !p.empty()) names.push_back(p);
    const PlanEntry* e = plan.match(names);
    if (!e || e->style != Style::sequence_parallel) continue;
    used.insert(e);
    modules[n.get()] = names.front();
  }
  for (const PlanEntry& e : plan.entries)
    if (!used.count(&e)) {
      std::string names;
      for (size_t i = 0; i < sites.size() && i < 8; ++i) names += (i ? ", " : "") + sites[i].path;
      fail(ErrorKind::InvalidArgument, "plan entry '", e.pattern, "' matches no ",
           e.style == Style::sequence_parallel ? "module" : "linear layer", " of the model (its linear layers: ",
           names.empty() ? "none" : names, sites.size() > 8 ? ", ..." : "", ")");
    }
  g.toposort();
  auto features = propagate_shards(g, opt.rank, opt.degree, seeds, rowwise, /*dry_run=*/false, parts);
  if (seq_seeds.empty() && modules.empty() && gathered.empty()) return;
  auto seq = propagate_sequence_shards(g, opt.rank, opt.degree, seq_seeds, modules, planned, features);
  g.toposort();
  // colwise with input_layouts=Shard(d) gathers a sharded input: a graph input (each rank feeds its block) or
  // an activation the plan sharded along d; gathering a replicated one would repeat it.
  for (auto& [node, path] : gathered) {
    Node* ag = node->inputs[0]->producer;
    if (!ag || ag->op != "AllGather") continue;
    Value* x = ag->inputs[0];
    bool input = std::find(g.inputs.begin(), g.inputs.end(), x) != g.inputs.end();
    if (!input && !seq.count(x))
      fail(ErrorKind::InvalidArgument, "node '", node->name, "' (", path, ", colwise): input_layouts=Shard(", ag->attrs.get_int("axis", 0),
           ") but its input '", x->name, "' is replicated, not sharded: put a rowwise layer with output_layouts=Shard(d) or a "
           "sequence_parallel module before it, or drop input_layouts");
  }
}

}  // namespace tessera::parallel
