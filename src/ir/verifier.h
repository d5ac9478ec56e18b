#pragma once
#include "ir/graph.h"

namespace tessera {

// Structural checks run after every pass in tests and with --dump: each node
// reads only values defined earlier (inputs, constants, earlier outputs), every
// op is registered, value names are unique, graph outputs are defined.
// Throws Internal naming the node and the pass.
void verify(const Graph& g, const std::string& after_pass);

}  // namespace tessera
