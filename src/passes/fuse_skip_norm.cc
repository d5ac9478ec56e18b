// See fuse_skip_norm.h.
#include "passes/fuse_skip_norm.h"

#include <algorithm>

#include "ops/skip_norm_rules.h"
#include "passes/pass_manager.h"
#include "passes/uses.h"

namespace tessera {
namespace {

bool static_of(const Value* v) { return v && v->rank_known && !v->shape.empty() && is_static(v->shape); }

// The norm `n` over the last dim of its input, its Add producer fused in: true if rewritten.
bool fuse(Graph& g, Node& n, const Uses& u) {
  const bool ln = n.op == "LayerNormalization";
  if (!n.domain.empty() || n.inputs.size() < 2 || n.outputs.empty() || !n.outputs[0]) return false;
  for (size_t o = 1; o < n.outputs.size(); ++o)
    if (n.outputs[o] && (u.count(n.outputs[o]) || u.outputs.count(n.outputs[o]))) return false;  // Mean / InvStdDev read
  Value* s = n.inputs[0];
  if (!static_of(s) || s->producer == nullptr || s->producer->op != "Add" || !s->producer->domain.empty()) return false;
  const int64_t rank = int64_t(s->shape.size()), h = s->shape.back();
  if (normalize_axis(n.attrs.get_int("axis", -1), rank, n.name) != rank - 1) return false;
  if (n.attrs.get_int("stash_type", 1) != 1) return false;
  Node& add = *s->producer;
  Value *a = add.input(0), *b = add.input(1);
  if (!static_of(a) || !static_of(b)) return false;
  if (a->shape != s->shape) std::swap(a, b);  // the full-shape addend first
  if (a->shape != s->shape || !rules::skip_repeats(b->shape, s->shape)) return false;
  const DType dt = s->dtype;
  std::vector<Value*> params(n.inputs.begin() + 1, n.inputs.end());
  for (const Value* p : params)
    if (p && (p->dtype != dt || !static_of(p) || !rules::hidden_vector(p->shape, h))) return false;
  if (a->dtype != dt || b->dtype != dt || n.outputs[0]->dtype != dt) return false;
  Attributes attrs;
  attrs.set("epsilon", n.attrs.get_float("epsilon", 1e-5f));
  std::vector<Value*> ins = {a, b, params[0]};
  if (ln) ins.push_back(params.size() > 1 ? params[1] : nullptr);
  // The sum stays an output only when something besides this norm reads it.
  Value* sum = u.count(s) > 1 || u.outputs.count(s) ? s : nullptr;
  std::vector<Value*> outs = {n.outputs[0]};
  if (sum) outs = {n.outputs[0], nullptr, nullptr, sum};  // input_skip_bias_sum is output 3
  Node* f = g.add_node(ln ? "SkipLayerNormalization" : "SkipSimplifiedLayerNormalization", n.name + ".skip", ins, outs,
                       std::move(attrs));
  f->domain = "com.microsoft";
  f->scope = n.scope;
  n.outputs.clear();  // eliminate_dead_code removes it, and the Add unless `sum` kept it
  if (sum) add.outputs.clear();
  return true;
}

}  // namespace

void fuse_skip_norm(Graph& g) {
  bool any = rewrite_each(g, "LayerNormalization", [&](Node& n, const Uses& u) { return fuse(g, n, u); });
  any = rewrite_each(g, "RMSNormalization", [&](Node& n, const Uses& u) { return fuse(g, n, u); }) || any;
  if (!any) return;
  g.toposort();
  eliminate_dead_code(g);
}

}  // namespace tessera
