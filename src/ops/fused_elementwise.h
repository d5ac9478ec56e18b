// FusedElementwise: a region of elementwise nodes merged by the
// fuse_elementwise pass into one node that computes them per element.
//
// Its program is kept in attributes, as the original ops:
//   ops     strings  the ONNX op of each instruction, in order
//   arity   ints     operand count of each instruction
//   args    ints     the operands, flattened: slot s < n_inputs is node input s,
//                    s = n_inputs + k is instruction k's result, -1 an omitted
//                    optional operand (Clip's min/max)
//   dtypes  ints     the IR dtype of each instruction's result (DType codes)
//   i<k>.<name>      instruction k's own attributes (i0.alpha, i2.approximate)
//   expr    string   a readable form for dumps: "t0 = Mul(x0, x1); t1 = Tanh(t0)"
// The node has one output, the last instruction's result, whose shape is the
// broadcast of every input. Backends evaluate instruction k with the
// semantics of its ONNX op (CPU: by running that op's reference kernel).
#pragma once
#include <string>
#include <vector>

#include "ir/graph.h"

namespace tessera {

struct FusedInstr {
  std::string op;
  std::vector<int> args;  // slots, -1 = omitted
  DType dtype = DType::f32;
  Attributes attrs;
};

struct FusedProgram {
  int n_inputs = 0;
  std::vector<FusedInstr> instrs;
};

// Writes `p` into `attrs` (replacing a previous program).
void set_fused_program(Attributes& attrs, const FusedProgram& p);
// Reads the program of a FusedElementwise node; errors name the node.
FusedProgram get_fused_program(const Node& node);
// The ops fuse_elementwise may put into a program.
bool is_fusible_elementwise(const std::string& op);

}  // namespace tessera
