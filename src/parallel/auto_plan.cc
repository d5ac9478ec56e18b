#include "parallel/auto_plan.h"

#include <map>
#include <regex>
#include <set>
#include <unordered_set>

#include "core/error.h"
#include "parallel/propagate.h"
#include "parallel/shard.h"

namespace tessera::parallel {

namespace {

// The linear layers whose outputs reach `start` through non-linear ops only.
std::set<const Linear*> feeding(const Value* start, const std::map<const Value*, const Linear*>& by_output,
                                const std::unordered_set<const Node*>& linear_nodes) {
  std::set<const Linear*> found;
  std::vector<const Value*> todo = {start};
  std::unordered_set<const Value*> seen;
  while (!todo.empty()) {
    const Value* v = todo.back();
    todo.pop_back();
    if (!v || !seen.insert(v).second || v->constant) continue;
    if (auto it = by_output.find(v); it != by_output.end()) {
      found.insert(it->second);
      continue;
    }
    const Node* p = v->producer;
    if (!p || linear_nodes.count(p)) continue;
    for (const Value* in : p->inputs) todo.push_back(in);
  }
  return found;
}

std::string generalise(const std::string& path) { return std::regex_replace(path, std::regex(R"(\.\d+\.)"), ".*."); }

}  // namespace

Plan auto_plan(Graph& g, int degree) {
  std::vector<Linear> linears = find_linears(g);
  std::map<const Value*, const Linear*> by_output;
  std::unordered_set<const Node*> linear_nodes;
  for (const Linear& l : linears) {
    by_output[l.output()] = &l;
    linear_nodes.insert(l.node);
    if (l.bias_add) linear_nodes.insert(l.bias_add);
  }
  std::map<std::string, Style> chosen;  // exact module path → style
  for (const Linear& down : linears) {
    std::set<const Linear*> ups = feeding(down.node->inputs[0], by_output, linear_nodes);
    if (ups.empty()) continue;
    const Value* x = (*ups.begin())->node->inputs[0];
    bool same_input = true;
    for (const Linear* u : ups) same_input = same_input && u->node->inputs[0] == x && !chosen.count(u->path);
    if (!same_input || chosen.count(down.path)) continue;
    std::unordered_map<const Value*, std::string> seeds;
    std::unordered_map<const Value*, int64_t> parts;
    try {  // keep the group only if every op between can be proven on a shard
      for (const Linear* u : ups) {
        seeds[u->output()] = u->path;
        parts[u->output()] = colwise_parts(g, u->output(), degree, u->path);  // GQA: KV heads may be fewer than ranks
      }
      propagate_shards(g, /*rank=*/0, degree, seeds, {down.node}, /*dry_run=*/true, parts);
      for (const Linear* u : ups)
        if (u->weight->constant->dim(u->out_dim) % parts[u->output()]) throw Error(ErrorKind::InvalidArgument, "indivisible");
      if (down.weight->constant->dim(1 - down.out_dim) % degree) throw Error(ErrorKind::InvalidArgument, "indivisible");
    } catch (const Error&) {
      continue;
    }
    for (const Linear* u : ups) chosen[u->path] = Style::colwise;
    chosen[down.path] = Style::rowwise;
  }
  if (chosen.empty())
    fail(ErrorKind::InvalidArgument, "--plan auto found no MLP or attention pattern it can shard ", degree,
         " ways (linear layers found: ", linears.size(), "); write a plan by hand");
  // Collapse layer indices to * where all layers sharing the pattern agree.
  std::map<std::string, std::set<Style>> general;
  for (auto& [path, style] : chosen) general[generalise(path)].insert(style);
  Plan plan;
  std::set<std::string> done;
  for (auto& [path, style] : chosen) {
    std::string gp = generalise(path);
    bool collapse = general[gp].size() == 1;
    for (const Linear& l : linears)  // every layer the general pattern matches must have been chosen
      if (pattern_matches(gp, l.path) && !chosen.count(l.path)) collapse = false;
    std::string pattern = collapse ? gp : path;
    if (done.insert(pattern).second) plan.entries.push_back({pattern, style, {}, {}, true});
  }
  return plan;
}

}  // namespace tessera::parallel
