#pragma once
#include <set>
#include <string>
#include <unordered_map>

#include "ir/graph.h"

namespace tessera::parallel {

// Follow sharded activations from `seeds` (each sharded along its last dim,
// named by the colwise layer it came from) until the `stops` (rowwise layers)
// and AllGathers; rewrites head counts in constant Reshape/Expand targets and
// gives elementwise ops rank `rank`'s slice of a constant operand that spans
// the sharded dim (RoPE's cos/sin tables over a sharded head dim).
// Throws naming the first node it cannot prove correct on a shard.
// With `dry_run` nothing is rewritten: it only proves (or throws).
void propagate_shards(Graph& g, int rank, int degree, const std::unordered_map<const Value*, std::string>& seeds,
                      const std::set<const Node*>& stops, bool dry_run = false);

}  // namespace tessera::parallel
