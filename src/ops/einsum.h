// Einsum's equation, parsed once for inference and for every kernel.
// Each distinct subscript becomes a label id; an ellipsis becomes one label
// per broadcast dim, shared by all operands right-aligned (NumPy's rule).
#pragma once
#include <string>
#include <vector>

#include "core/shape.h"

namespace tessera::rules {

struct EinsumSpec {
  std::vector<int64_t> extent;                 // per label; kUnknownDim when not known
  std::vector<std::vector<int>> operand_labels;  // per input, the label of each dim
  std::vector<int> output_labels;              // the label of each output dim
  std::vector<int> reduced_labels;             // labels summed over (not in the output)
};

// Parse `equation` for inputs of the given shapes. Implicit output (no "->"):
// the ellipsis dims, then the subscripts used exactly once, alphabetically.
// Subscript extents must agree; ellipsis dims broadcast (extent 1 stretches).
EinsumSpec parse_einsum(const std::string& equation, const std::vector<Shape>& inputs, const std::string& what);

}  // namespace tessera::rules
