// Helpers shared by the pass tests: random inputs, a graph evaluated node by
// node on the CPU reference kernels (the fused and the unfused graph are
// compared through it), and op counts.
#pragma once
#include <map>
#include <random>
#include <string>
#include <vector>

#include "backend/cpu/kernel_registry.h"
#include "ir/graph.h"
#include "passes/pass_manager.h"

namespace tessera::test {

inline Tensor random_f32(const Shape& s, std::mt19937& rng) {
  std::normal_distribution<float> d(0.0f, 1.0f);
  std::vector<float> v(size_t(numel(s)));
  for (float& x : v) x = d(rng);
  return Tensor::from<float>(DType::f32, s, v);
}

// Every node of `g` in order on the CPU kernels; returns the graph outputs.
inline std::vector<Tensor> run_graph(const Graph& g, const std::map<std::string, Tensor>& feeds) {
  std::map<const Value*, Tensor> vals;
  for (Value* in : g.inputs) vals[in] = feeds.at(in->name);
  for (auto& v : g.values())
    if (v->is_constant()) vals[v.get()] = *v->constant;
  for (auto& n : g.nodes()) {
    std::vector<const Tensor*> ins;
    for (Value* v : n->inputs) ins.push_back(v ? &vals.at(v) : nullptr);
    std::vector<Tensor> outs = cpu::run_node(*n, ins);
    for (size_t i = 0; i < n->outputs.size(); ++i) vals[n->outputs[i]] = outs[i];
  }
  std::vector<Tensor> out;
  for (Value* v : g.outputs) out.push_back(vals.at(v));
  return out;
}

inline size_t count_op(const Graph& g, const std::string& op) {
  size_t n = 0;
  for (auto& node : g.nodes()) n += node->op == op;
  return n;
}

// The first node of `op`, or null.
inline const Node* find_op(const Graph& g, const std::string& op) {
  for (auto& node : g.nodes())
    if (node->op == op) return node.get();
  return nullptr;
}

// What shape inference of `g` throws, or "(no error) " and the first output's shape.
inline std::string inference_message(Graph& g) {
  try {
    infer_shapes(g);
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error) " + to_string(g.outputs.at(0)->shape);
}

}  // namespace tessera::test
