// Runs a Graph on the host, node by node, with the reference kernels. Each
// node's output types are inferred from the concrete inputs (so symbolic
// dims and data-dependent shapes just work); intermediates are released after
// their last use.
#pragma once
#include <functional>
#include <map>
#include <string>
#include <unordered_map>

#include "backend/cpu/run_context.h"
#include "ir/graph.h"

namespace tessera::cpu {

// Called after each node with its wall time, for `tessera bench`'s per-layer profile.
using NodeTimer = std::function<void(const Node&, double ms)>;

class Executor {
 public:
  explicit Executor(const Graph& g);
  // `comms` may be null for graphs without collective nodes.
  std::map<std::string, Tensor> run(const std::map<std::string, Tensor>& inputs, const NodeTimer& timer = {},
                                    const Communicators* comms = nullptr) const;

 private:
  const Graph& g_;
  std::unordered_map<const Value*, int> uses_;  // reads by nodes and graph outputs
};

}  // namespace tessera::cpu
