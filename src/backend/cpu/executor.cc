#include "backend/cpu/executor.h"

#include <chrono>

#include "backend/cpu/kernel_registry.h"

namespace tessera::cpu {

Executor::Executor(const Graph& g) : g_(g) {
  for (auto& n : g.nodes())
    for (Value* in : n->inputs)
      if (in) ++uses_[in];
  for (Value* o : g.outputs) ++uses_[o];
}

std::map<std::string, Tensor> Executor::run(const std::map<std::string, Tensor>& inputs, const NodeTimer& timer,
                                            const Communicators* comms) const {
  RunContext rc;
  rc.comms = comms;
  std::unordered_map<const Value*, Tensor> live;
  std::unordered_map<const Value*, int> left = uses_;
  for (Value* in : g_.inputs) live[in] = inputs.at(in->name);
  auto get = [&](const Value* v) -> const Tensor* {
    if (v->constant) return &*v->constant;
    auto it = live.find(v);
    if (it == live.end()) fail(ErrorKind::Internal, "value '", v->name, "' is read before it is computed");
    return &it->second;
  };
  for (auto& n : g_.nodes()) {
    std::vector<const Tensor*> ins;
    for (Value* in : n->inputs) ins.push_back(in ? get(in) : nullptr);
    auto t0 = std::chrono::steady_clock::now();
    std::vector<Tensor> outs = run_node(*n, ins, &rc);
    if (timer) timer(*n, std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    for (size_t i = 0; i < n->outputs.size(); ++i)
      if (n->outputs[i]) live[n->outputs[i]] = std::move(outs[i]);
    for (Value* in : n->inputs)  // free what no later node reads
      if (in && !in->constant && --left[in] == 0) live.erase(in);
  }
  std::map<std::string, Tensor> out;
  for (Value* o : g_.outputs) out[o->name] = *get(o);
  return out;
}

}  // namespace tessera::cpu
