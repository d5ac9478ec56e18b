// fuse_elementwise (fuse_elementwise.h). Regions grow backwards from an exit
// node: a producer joins when its one output is read only by the region and
// is no graph output. Such a region has a single exit, every other node being
// upstream of it, so replacing it by one node cannot make a cycle; and since
// each op broadcasts its operands, evaluating every instruction at the
// broadcast output index gives the values the unfused nodes computed.
#include "passes/fuse_elementwise.h"

#include <algorithm>
#include <unordered_map>
#include <unordered_set>

#include "ops/fused_elementwise.h"

namespace tessera {
namespace {

// Kept within what the CUDA program kernel takes (kEwMaxInputs inputs,
// kEwMaxInstrs instructions, counting a variadic op as one per extra input).
constexpr size_t kMaxInputs = 12;
constexpr size_t kMaxInstrs = 32;

// The inputs whose values an instruction reads (CastLike's second input only gives a dtype).
size_t read_inputs(const Node& n) { return n.op == "CastLike" ? 1 : n.inputs.size(); }

size_t instr_cost(const Node& n) { return n.inputs.size() > 2 ? n.inputs.size() : 1; }

bool scalar_shaped(const Value* v) {
  return v->rank_known && std::all_of(v->shape.begin(), v->shape.end(), [](int64_t d) { return d == 1; });
}

bool fusible(const Node& n) {
  if (!n.domain.empty() || !is_fusible_elementwise(n.op) || n.outputs.size() != 1 || !n.outputs[0]) return false;
  if (!n.outputs[0]->rank_known || n.inputs.empty() || !n.inputs[0]) return false;
  for (size_t i = 0; i < read_inputs(n); ++i)
    if (n.inputs[i] && !n.inputs[i]->rank_known) return false;
  if (n.op == "Clip")  // the program broadcasts min/max: only scalars, as ONNX requires
    for (size_t i = 1; i < n.inputs.size(); ++i)
      if (n.inputs[i] && !scalar_shaped(n.inputs[i])) return false;
  return true;
}

struct Region {
  Node* exit = nullptr;
  std::vector<Node*> nodes;  // graph order once built
};

// The values a region reads from outside, in order of first use.
std::vector<Value*> region_inputs(const std::vector<Node*>& nodes, const std::unordered_set<Node*>& in_region) {
  std::vector<Value*> out;
  for (Node* n : nodes)
    for (size_t i = 0; i < read_inputs(*n); ++i) {
      Value* v = n->inputs[i];
      if (v && !(v->producer && in_region.count(v->producer)) && std::find(out.begin(), out.end(), v) == out.end())
        out.push_back(v);
    }
  return out;
}

FusedProgram make_program(const Region& r, const std::vector<Value*>& inputs) {
  FusedProgram p;
  p.n_inputs = int(inputs.size());
  std::unordered_map<const Value*, int> slot;
  for (size_t s = 0; s < inputs.size(); ++s) slot[inputs[s]] = int(s);
  for (Node* n : r.nodes) {
    FusedInstr in;
    in.op = n->op;
    in.attrs = n->attrs;
    in.dtype = n->outputs[0]->dtype;
    for (size_t i = 0; i < read_inputs(*n); ++i) in.args.push_back(n->inputs[i] ? slot.at(n->inputs[i]) : -1);
    if (n->op == "CastLike") {  // the dtype is known now: a Cast
      in.op = "Cast";
      in.attrs = {};
      in.attrs.set("to", int64_t(in.dtype));
    }
    slot[n->outputs[0]] = p.n_inputs + int(p.instrs.size());
    p.instrs.push_back(std::move(in));
  }
  return p;
}

}  // namespace

void fuse_elementwise(Graph& g) {
  std::unordered_map<const Value*, std::vector<Node*>> readers;
  std::unordered_map<const Node*, size_t> order;
  for (const auto& n : g.nodes()) {
    order[n.get()] = order.size();
    for (Value* v : n->inputs)
      if (v) readers[v].push_back(n.get());
  }
  std::unordered_set<const Value*> graph_outputs(g.outputs.begin(), g.outputs.end());
  std::unordered_set<Node*> assigned;
  std::vector<Region> regions;

  for (auto it = g.nodes().rbegin(); it != g.nodes().rend(); ++it) {
    Node* exit = it->get();
    if (assigned.count(exit) || !fusible(*exit)) continue;
    std::unordered_set<Node*> in_region = {exit};
    std::vector<Node*> nodes = {exit};
    size_t cost = instr_cost(*exit);
    for (bool grew = true; grew;) {
      grew = false;
      for (size_t k = 0; k < nodes.size(); ++k) {
        for (size_t i = 0; i < read_inputs(*nodes[k]); ++i) {
          Value* v = nodes[k]->inputs[i];
          Node* p = v ? v->producer : nullptr;
          if (!p || in_region.count(p) || assigned.count(p) || !fusible(*p) || graph_outputs.count(v)) continue;
          const std::vector<Node*>& rs = readers[v];
          if (!std::all_of(rs.begin(), rs.end(), [&](Node* r) { return in_region.count(r) != 0; })) continue;
          if (cost + instr_cost(*p) > kMaxInstrs) continue;
          in_region.insert(p);
          nodes.push_back(p);
          if (region_inputs(nodes, in_region).size() > kMaxInputs) {
            in_region.erase(p);
            nodes.pop_back();
            continue;
          }
          cost += instr_cost(*p);
          grew = true;
        }
      }
    }
    if (nodes.size() < 2) continue;
    std::sort(nodes.begin(), nodes.end(), [&](Node* a, Node* b) { return order[a] < order[b]; });
    assigned.insert(nodes.begin(), nodes.end());
    regions.push_back({exit, std::move(nodes)});
  }
  if (regions.empty()) return;

  for (const Region& r : regions) {
    std::unordered_set<Node*> in_region(r.nodes.begin(), r.nodes.end());
    std::vector<Value*> inputs = region_inputs(r.nodes, in_region);
    Attributes attrs;
    set_fused_program(attrs, make_program(r, inputs));
    Value* out = r.exit->outputs[0];
    g.add_node("FusedElementwise", g.unique_name(r.exit->name + "/fused"), inputs, {out}, std::move(attrs));
  }
  g.remove_nodes_if([&](const Node& n) { return assigned.count(const_cast<Node*>(&n)) != 0; });
  g.toposort();
}

}  // namespace tessera
