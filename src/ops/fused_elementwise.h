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
//   blocks  ints     optional, [input, start, width, ...]: that input is read as
//                    its columns start..start+width-1 of the last axis (a column
//                    block of a merged GEMM's output, instead of a Split's copy);
//                    every other input is read whole
// The node has one output, the last instruction's result, whose shape is the
// broadcast of every input (of its block, where it has one). Backends evaluate instruction k with the
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

// Columns start..start+width-1 of an input's last axis; width < 0: the whole input.
struct FusedBlock {
  int64_t start = 0, width = -1;
  bool whole() const { return width < 0; }
};

struct FusedProgram {
  int n_inputs = 0;
  std::vector<FusedInstr> instrs;
  std::vector<FusedBlock> blocks;  // one per input
};

// Writes `p` into `attrs` (replacing a previous program; the blocks too).
void set_fused_program(Attributes& attrs, const FusedProgram& p);
// The shape `in` is read as under `b`: its last dim replaced by the width.
// Errors name `where` when the block is empty, starts below 0 or does not fit in `in`.
Shape block_shape(const Shape& in, const FusedBlock& b, const std::string& where);
// Reads the program of a FusedElementwise node; errors name the node.
FusedProgram get_fused_program(const Node& node);
// The ops fuse_elementwise may put into a program.
bool is_fusible_elementwise(const std::string& op);

}  // namespace tessera
