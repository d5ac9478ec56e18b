// Data-parallel runs (`tessera run --dp`): every rank holds the full batch,
// runs its part (parallel/dp_split.h: Accelerate's split_between_processes),
// in micro-batches when the engine's batch dim is fixed, and the outputs come
// back to the root in the original order with the padding rows dropped.
//
// The gather goes over the world communicator (gloo, host tensors): parts
// differ by a row when the batch does not divide, so every rank first shares
// its row counts, then sends its part padded to the largest, and the root
// trims each rank's rows back.
#pragma once
#include <functional>
#include <map>
#include <string>

#include "dist/communicator.h"
#include "engine/engine.h"

namespace tessera {

// (micro-batches done, micro-batches in all), called after each one.
using ProgressFn = std::function<void(int64_t done, int64_t total)>;

struct DataParallelOptions {
  bool apply_padding = false;  // every rank runs as many rows (repeats of the last item)
  int root = 0;                // the rank that receives the outputs
  ProgressFn progress;         // only called when there is more than one micro-batch
};

// The engine's fixed batch size (dim 0 of its inputs), or kUnknownDim when
// dim 0 is symbolic. Throws InvalidArgument naming a scalar input or inputs
// whose fixed dim 0 disagree.
int64_t engine_batch_size(const Graph& g);

// Runs every row of `inputs`: in micro-batches of the engine's fixed batch
// size (the last padded by repeating its last row, whose outputs are dropped),
// or in one go when dim 0 is symbolic. Outputs must be batched along dim 0.
std::map<std::string, Tensor> run_in_micro_batches(const Engine& e, const std::map<std::string, Tensor>& inputs,
                                                   const ProgressFn& progress = {});

// The root receives the first `real_rows` rows of every rank's outputs,
// concatenated in rank order; other ranks get {}. Every rank calls it.
std::map<std::string, Tensor> gather_rows(dist::Communicator& comm, const std::map<std::string, Tensor>& outs,
                                          int64_t real_rows, int root);

// Checks that every rank holds the same batch size, splits, runs, gathers.
// `comm` null: a world of one. The root gets the outputs of the whole batch.
std::map<std::string, Tensor> run_data_parallel(const Engine& e, const std::map<std::string, Tensor>& inputs,
                                                dist::Communicator* comm, const DataParallelOptions& opts);

}  // namespace tessera
