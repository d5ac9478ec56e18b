// Who reads each value of a graph, for the pattern-fusion passes: a chain
// link can be absorbed only when its one reader is the next link.
#pragma once
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "ir/graph.h"

namespace tessera {

struct Uses {
  std::unordered_map<const Value*, std::vector<Node*>> readers;
  std::unordered_set<const Value*> outputs;

  explicit Uses(const Graph& g) : outputs(g.outputs.begin(), g.outputs.end()) {
    for (auto& n : g.nodes())
      for (Value* v : n->inputs)
        if (v) readers[v].push_back(n.get());
  }
  // The one node reading `v`, when `v` has exactly one reader and is no graph output.
  Node* sole_reader(const Value* v) const {
    auto it = readers.find(v);
    if (outputs.count(v) || it == readers.end() || it->second.size() != 1) return nullptr;
    return it->second[0];
  }
  size_t count(const Value* v) const {
    auto it = readers.find(v);
    return it == readers.end() ? 0 : it->second.size();
  }
  // The `op` node producing `v`, when `v` has exactly one reader and is no graph output.
  Node* sole_producer(const Value* v, const char* op) const {
    if (!v || !sole_reader(v) || !v->producer || v->producer->op != op) return nullptr;
    return v->producer;
  }
};

// Whether `sp` is a Split of a static tensor along its last axis into static parts of the
// same rank: the parts are then column blocks of the input, which a reader can address
// in place (fuse_split_blocks, rope_blocks).
inline bool splits_last_axis(const Node& sp) {
  const Value* x = sp.inputs.empty() ? nullptr : sp.inputs[0];
  if (!x || !x->rank_known || x->shape.empty() || !is_static(x->shape) || sp.outputs.empty()) return false;
  const int64_t rank = int64_t(x->shape.size());
  if (normalize_axis(sp.attrs.get_int("axis", 0), rank, "Split axis") != rank - 1) return false;
  for (const Value* part : sp.outputs)
    if (!part || !part->rank_known || int64_t(part->shape.size()) != rank || !is_static(part->shape)) return false;
  return true;
}

// Calls rewrite(node, uses) on every `op` node (of the default domain) the graph has now,
// collected first so rewrites may add nodes; the readers are counted again only after a
// rewrite returned true. True if any did.
template <typename F>
bool rewrite_each(Graph& g, const std::string& op, F&& rewrite) {
  std::vector<Node*> nodes;
  for (auto& n : g.nodes())
    if (n->op == op && n->domain.empty()) nodes.push_back(n.get());
  std::optional<Uses> u;
  bool any = false;
  for (Node* n : nodes) {
    if (!u) u.emplace(g);
    if (rewrite(*n, *u)) any = true, u.reset();
  }
  return any;
}

}  // namespace tessera
