#pragma once
#include <string>

#include "ir/graph.h"

namespace tessera {

// Readable text form: one line per node, `%out: f32[2,3] = Op(%a, %b) {attr=..}  # node`.
std::string dump_text(const Graph& g);
// Graphviz DOT: nodes are ops, edges carry the value's dtype and shape.
std::string dump_dot(const Graph& g);
std::string type_string(const Value& v);

}  // namespace tessera
