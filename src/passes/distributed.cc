// Collective scheduling passes.
//
// split_collectives: every fused collective X becomes XStart + CollectiveWait,
// with the Wait moved down to just before the first node that reads the
// result, so compute that does not depend on it runs while it is in flight.
//
// fuse_distributed_ops: an XStart immediately followed by its Wait (nothing to
// overlap) becomes X again — one op, no bookkeeping (the reference system's
// pass of the same name fuses all_gather/reduce_scatter + wait_tensor pairs).
#include <unordered_map>
#include <unordered_set>

#include "ir/op_registry.h"
#include "passes/pass_manager.h"

namespace tessera {

namespace {
const std::unordered_set<std::string> kCollectives = {"AllReduce", "AllGather", "ReduceScatter", "AllToAll",
                                                      "RootGather", "RootScatter", "Broadcast"};

// Index of the first node after `from` reading `v`, or nodes.size().
size_t first_use(const std::vector<std::unique_ptr<Node>>& nodes, size_t from, const Value* v) {
  for (size_t i = from + 1; i < nodes.size(); ++i)
    for (const Value* in : nodes[i]->inputs)
      if (in == v) return i;
  return nodes.size();
}
}  // namespace

bool has_collectives(const Graph& g) {
  for (auto& n : g.nodes())
    if (const OpSchema* s = OpRegistry::find(n->op); s && s->collective) return true;
  return false;
}

void split_collectives(Graph& g) {
  std::vector<Node*> fused;
  for (auto& n : g.nodes())
    if (kCollectives.count(n->op)) fused.push_back(n.get());
  for (Node* n : fused) {
    Value* out = n->outputs[0];
    Value* pending = g.add_value(g.unique_name(out->name + ".pending"), out->dtype, out->shape);
    pending->rank_known = out->rank_known;
    n->op += "Start";
    n->outputs[0] = pending;
    pending->producer = n;
    g.add_node("CollectiveWait", n->name + ".wait", {pending}, {out});
  }
  // Place each Wait just before the first reader of its result.
  auto& nodes = g.mutable_nodes();
  std::vector<std::unique_ptr<Node>> waits;
  std::erase_if(nodes, [&](std::unique_ptr<Node>& n) {
    if (n->op != "CollectiveWait") return false;
    waits.push_back(std::move(n));
    return true;
  });
  for (auto& w : waits) {
    size_t start = 0;
    while (nodes[start].get() != w->inputs[0]->producer) ++start;
    size_t at = first_use(nodes, start, w->outputs[0]);
    nodes.insert(nodes.begin() + std::ptrdiff_t(at), std::move(w));
  }
}

void fuse_distributed_ops(Graph& g) {
  auto& nodes = g.mutable_nodes();
  std::unordered_set<const Node*> dead;
  for (size_t i = 0; i + 1 < nodes.size(); ++i) {
    Node& start = *nodes[i];
    Node& wait = *nodes[i + 1];
    if (!start.op.ends_with("Start") || !kCollectives.count(start.op.substr(0, start.op.size() - 5))) continue;
    if (wait.op != "CollectiveWait" || wait.inputs[0] != start.outputs[0]) continue;
    start.op.resize(start.op.size() - 5);
    start.outputs[0] = wait.outputs[0];
    wait.outputs[0]->producer = &start;
    wait.outputs.clear();
    dead.insert(&wait);
    ++i;
  }
  g.remove_nodes_if([&](const Node& n) { return dead.count(&n) != 0; });
}

}  // namespace tessera
