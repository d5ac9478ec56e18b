// autocast (enable_autocast): eligible compute ops — matrix products,
// convolutions, attention — run in autocast_dtype. Their fp32 float inputs get
// a Cast to that dtype (weights fold into converted constants afterwards) and
// their output a Cast back to fp32, so every other op, norms, softmax and
// reductions included, keeps computing in fp32, as DESIGN.md asks. A value
// read by several of them is cast once, and one that such an op wrote in
// low precision is read as written (fp32 and back is exact).
#include <map>
#include <set>

#include "engine/settings.h"
#include "ir/op_registry.h"
#include "passes/pass_manager.h"

namespace tessera {

namespace {
const std::set<std::string>& eligible() {
  static const std::set<std::string> ops = {"MatMul", "Gemm", "FusedMatMul", "Conv", "ConvTranspose", "Einsum", "Attention"};
  return ops;
}

// A Cast node from `from` to the new value `to`; returns the Cast.
void add_cast(Graph& g, Value* from, Value* to, const std::string& name) {
  Attributes a;
  a.set("to", int64_t(to->dtype));
  g.add_node("Cast", g.unique_name(name), {from}, {to}, std::move(a));
}

Value* like(Graph& g, const Value* v, DType dt, const std::string& hint) {
  Value* c = g.add_value(g.unique_name(hint), dt, v->shape);
  c->rank_known = v->rank_known;
  c->dim_names = v->dim_names;
  return c;
}
}  // namespace

void autocast(Graph& g, DType dt) {
  std::vector<Node*> targets;
  for (auto& n : g.nodes())
    if (eligible().count(n->op)) targets.push_back(n.get());
  // One Cast per fp32 value, however many eligible inputs read it (sibling projections of one
  // activation; a packed Attention's Q, K and V, one tensor).
  std::map<const Value*, Value*> low_of;
  for (Node* n : targets) {
    bool any = false;
    for (Value* in : n->inputs) any = any || (in && in->dtype == DType::f32);
    if (!any) continue;
    for (Value*& in : n->inputs) {
      if (!in || in->dtype != DType::f32) continue;
      Value*& low = low_of[in];
      if (!low) {
        low = like(g, in, dt, in->name + "/autocast");
        add_cast(g, in, low, n->name + "/autocast_in");
      }
      in = low;
    }
    // The fp32 output keeps its readers; the node now writes a low-precision
    // value that a Cast widens into it.
    for (Value*& o : n->outputs) {
      if (!o || o->dtype != DType::f32) continue;
      Value* low = like(g, o, dt, o->name + "/autocast");
      Value* wide = o;
      o = low;
      add_cast(g, low, wide, n->name + "/autocast_out");
      low_of[wide] = low;  // a later eligible reader takes `low` itself: widening and narrowing back is exact
    }
  }
  g.toposort();
  eliminate_dead_code(g);  // widening Casts that only eligible readers read
}

}  // namespace tessera
