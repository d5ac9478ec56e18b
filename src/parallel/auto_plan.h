#pragma once
#include "ir/graph.h"
#include "parallel/tp_plan.h"

namespace tessera::parallel {

// `--plan auto`: find the MLP (up [+ gate] → act → down) and attention
// (q/k/v → attention → o) patterns among the linear layers of a folded,
// shape-inferred graph, and keep each group whose sharded region the shard
// propagation can prove correct at `degree`. Layer indices in module paths
// become `*` where every layer agrees. Throws when nothing can be sharded.
Plan auto_plan(Graph& g, int degree);

}  // namespace tessera::parallel
