#pragma once
#include <map>
#include <set>
#include <string>
#include <unordered_map>

#include "ir/graph.h"

namespace tessera::parallel {

// Follow sharded activations from `seeds` (each sharded along its last dim,
// named by the colwise layer it came from) until the `stops` (rowwise layers)
// and AllGathers; rewrites head counts in constant Reshape/Expand targets and
// gives elementwise ops rank `rank`'s slice of a constant operand that spans
// the sharded dim (RoPE's cos/sin tables over a sharded head dim); GQA with
// fewer KV heads than ranks keeps each rank's KV head up to the head repeat
// (Expand), whose targets are rewritten so each rank repeats it only for its
// own query heads.
// Throws naming the first node it cannot prove correct on a shard.
// With `dry_run` nothing is rewritten: it only proves (or throws).
// `parts` gives seeds cut into fewer blocks than the degree (see colwise_parts).
// Returns the values it found sharded, with their sharded dims.
std::unordered_map<const Value*, int64_t> propagate_shards(Graph& g, int rank, int degree,
                                                           const std::unordered_map<const Value*, std::string>& seeds,
                                                           const std::set<const Node*>& stops, bool dry_run = false,
                                                           const std::unordered_map<const Value*, int64_t>& parts = {});

// How many blocks the output `v` of colwise layer `from` is cut into at TP
// degree `degree`: the degree, or — when the reshape after it splits the
// features into fewer heads than ranks and the degree is a multiple of the
// head count (GQA's KV heads) — the head count, each KV head then replicated
// on degree/heads ranks (rank r holds head r / (degree/heads)) until the
// attention's head repeat gives every rank its own query heads' KV. Throws
// naming the reshape when neither divides the other.
int64_t colwise_parts(const Graph& g, const Value* v, int degree, const std::string& from);

// Sequence parallelism (DTensor's SequenceParallel and the Shard(d) layouts
// around it): follow activations sharded along a dim of whole features —
// seeds are rowwise outputs reduce-scattered to Shard(d), each with its dim
// and a description ("rowwise 'o_proj' output Shard(1)") — through
// elementwise ops (residual adds: a replicated operand is sliced to this
// rank's block, with no communication), reductions and norms over other
// dims, reshapes, and layers the plan leaves whole, up to the AllGathers of
// colwise layers with input_layouts=Shard(d). The nodes of sequence_parallel
// `modules` (node → module path) get their replicated inputs sliced to
// Shard(1) and must all run on the shard. Reaching a colwise/rowwise layer of
// the plan (`planned`: node → "colwise 'path'") or a value the feature
// propagation sharded (`features`) is an error naming the node, as is a
// sequence that does not divide by the degree. Graph outputs it reaches hold
// this rank's block, as rowwise outputs with Shard(d) do. Appends nodes:
// toposort after.
using SequenceSeeds = std::unordered_map<const Value*, std::pair<int64_t, std::string>>;
std::unordered_map<const Value*, int64_t> propagate_sequence_shards(Graph& g, int rank, int degree, const SequenceSeeds& seeds,
                                                                    const std::map<const Node*, std::string>& modules,
                                                                    const std::map<const Node*, std::string>& planned,
                                                                    const std::unordered_map<const Value*, int64_t>& features);

}  // namespace tessera::parallel
