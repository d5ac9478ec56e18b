// fuse_attention: softmax(Q·Kᵀ·scale + mask)·V, as the exporters decompose
// it, becomes one Attention node (ops/attention.cc). See fuse_attention.cc
// for the patterns matched.
#pragma once
#include "ir/graph.h"

namespace tessera {

void fuse_attention(Graph& g);

}  // namespace tessera
