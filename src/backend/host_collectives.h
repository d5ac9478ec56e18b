// The collective ops (ops/collectives.cc) on host tensors over any
// dist::Communicator: the CPU backend's kernels, and the CUDA backend's
// host-staged fallback when a group's communicator is not NCCL (gloo), share
// this one implementation, so both give the same answer. Collectives along an
// axis other than 0 are rearranged into rank-major chunks around the call.
#pragma once
#include <string>

#include "dist/communicator.h"
#include "ir/graph.h"

namespace tessera {

// Run `node`'s collective (`op` is its base name, without "Start") from `in`
// into `out`, both host tensors with the node's inferred shapes. Errors name
// the node (a world size the engine was not compiled for, an unknown op).
void run_host_collective(const std::string& op, const Node& node, dist::Communicator& comm, const Tensor& in, Tensor& out);

}  // namespace tessera
