// Dead-code elimination: bypass Identity and inference-mode Dropout, then keep
// only nodes that some graph output depends on.
#include <unordered_set>

#include "passes/pass_manager.h"

namespace tessera {

namespace {
bool is_passthrough(const Node& n) {
  if (n.op == "Identity") return true;
  // Dropout at inference is the identity when its mask output is unused.
  return n.op == "Dropout" && (n.outputs.size() < 2 || n.outputs[1] == nullptr);
}
}  // namespace

void eliminate_dead_code(Graph& g) {
  std::unordered_set<const Value*> graph_out(g.outputs.begin(), g.outputs.end());
  for (auto& n : g.mutable_nodes()) {
    // A graph output keeps its name, so an Identity producing one stays.
    if (is_passthrough(*n) && n->input(0) && !graph_out.count(n->outputs[0])) g.replace_all_uses(n->outputs[0], n->inputs[0]);
  }
  std::unordered_set<const Value*> live(g.outputs.begin(), g.outputs.end());
  std::unordered_set<const Node*> keep;
  auto& nodes = g.mutable_nodes();
  for (auto it = nodes.rbegin(); it != nodes.rend(); ++it) {
    const Node& n = **it;
    bool used = false;
    for (const Value* o : n.outputs) used = used || (o && live.count(o));
    if (!used) continue;
    keep.insert(&n);
    for (const Value* in : n.inputs) if (in) live.insert(in);
  }
  g.remove_nodes_if([&](const Node& n) { return !keep.count(&n); });
}

}  // namespace tessera
