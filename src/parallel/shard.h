// Apply a tensor-parallel plan to a graph for one rank: slice the weights of
// the linear layers the plan names (Gemm, or MatMul with an optional bias Add,
// weight given directly or through a Transpose), insert the collectives the
// layouts imply, then check that every op reading a sharded activation is
// provably correct on a shard. Runs on the imported graph, before folding.
//
//   colwise                 W split along its output features; activation out: Shard(-1)
//     input_layouts=Shard(d)   all-gathers the input along d first
//     output_layouts=Replicate() all-gathers the output along the last dim
//   rowwise                 W split along its input features; partial sums then
//     output Replicate()       all-reduce (default), then the bias
//     output_layouts=Shard(d)  reduce-scatter along d, then the bias
//   sequence_parallel       a norm/dropout module runs on Shard(1) (its replicated inputs
//                           sliced locally); see propagate_sequence_shards
//   Embeddings (Gather of a weight): rowwise is vocab-parallel (all-reduce, or
//   reduce-scatter with output_layouts=Shard(d)); colwise splits the embedding dim.
#pragma once
#include <string>

#include "ir/graph.h"
#include "parallel/tp_plan.h"

namespace tessera::parallel {

struct ShardOptions {
  int rank = 0;
  int degree = 1;
  std::string group;  // collective group attribute: "" = world, "tp" on a 2-D mesh
};

// One linear layer as exporters emit it: a Gemm, or a MatMul with an optional
// bias Add, whose weight is a 2-D initializer (directly or through a Transpose).
struct Linear {
  Node* node = nullptr;
  std::string path;          // module path, e.g. "layers.0.mlp.fc1" (names[0])
  std::vector<std::string> names;  // every name a plan may use for it, best first
  Value* weight = nullptr;   // the initializer
  int out_dim = 0;           // dim of `weight` holding output features
  Value* bias = nullptr;     // initializer, or null
  Node* bias_add = nullptr;  // MatMul's following Add, if the bias lives there
  Value* output() const;     // after the bias
};
std::vector<Linear> find_linears(const Graph& g);

// Chunk `rank` of `degree` of `t` along `dim` (a copy); throws naming `what`
// when the dim does not divide by the degree.
Tensor chunk(const Tensor& t, int64_t dim, int rank, int degree, const std::string& what);

// Throws with the node's name when a layout cannot be proven correct, when a
// dimension does not divide by the degree, or when a plan entry matches nothing.
void apply_tp_plan(Graph& g, const Plan& plan, const ShardOptions& opt);

}  // namespace tessera::parallel
