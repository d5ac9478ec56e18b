// CPU reference for FusedElementwise (ops/fused_elementwise.h): each
// instruction runs the reference kernel of its own ONNX op on whole tensors,
// so a fused region computes exactly what its unfused nodes computed.
#include "backend/cpu/kernel_registry.h"
#include "ops/fused_elementwise.h"

#include <cstring>

namespace tessera::cpu {
namespace {

// Columns b.start..b.start+b.width-1 of x's last axis, as a tensor of their own.
Tensor column_block(const Tensor& x, const FusedBlock& b, const std::string& where) {
  Tensor y = Tensor::empty(x.dtype(), block_shape(x.shape(), b, where));
  const size_t es = dtype_size(x.dtype());
  const int64_t w = x.shape().back(), rows = y.numel() / b.width;
  for (int64_t r = 0; r < rows; ++r)
    std::memcpy(static_cast<char*>(y.raw()) + size_t(r * b.width) * es,
                static_cast<const char*>(x.raw()) + size_t(r * w + b.start) * es, size_t(b.width) * es);
  return y;
}

void k_fused_elementwise(KernelContext& c) {
  FusedProgram p = get_fused_program(c.node());
  std::vector<Tensor> blocks(size_t(p.n_inputs));  // the inputs read as column blocks
  for (int k = 0; k < p.n_inputs; ++k)
    if (!p.blocks[size_t(k)].whole())
      blocks[size_t(k)] = column_block(c.input(size_t(k)), p.blocks[size_t(k)],
                                       str("node '", c.node().name, "' (FusedElementwise) input ", k));
  std::vector<Tensor> results;  // results[k]: instruction k's value
  auto slot = [&](int s) -> const Tensor* {
    if (s < 0) return nullptr;
    if (s < p.n_inputs) return p.blocks[size_t(s)].whole() ? &c.input(size_t(s)) : &blocks[size_t(s)];
    return &results[size_t(s - p.n_inputs)];
  };
  Value operand, result;  // placeholders: the instruction node only needs their presence
  for (size_t k = 0; k < p.instrs.size(); ++k) {
    const FusedInstr& in = p.instrs[k];
    Node node;
    node.name = c.node().name + "/" + std::to_string(k) + ":" + in.op;
    node.op = in.op;
    node.attrs = in.attrs;
    node.outputs = {&result};
    std::vector<const Tensor*> args;
    for (int s : in.args) {
      node.inputs.push_back(s < 0 ? nullptr : &operand);
      args.push_back(slot(s));
    }
    results.push_back(std::move(run_node(node, args).at(0)));
    if (results.back().dtype() != in.dtype)
      c.error("instruction ", k, " (", in.op, ") computed ", dtype_name(results.back().dtype()), ", the program says ",
              dtype_name(in.dtype));
  }
  const Tensor& last = results.back();
  if (last.shape() != c.output_type(0).shape)
    c.error("the last instruction's shape ", to_string(last.shape()), " is not the output's ", to_string(c.output_type(0).shape));
  c.set_output(0, last);
}
TESSERA_CPU_KERNEL("FusedElementwise", k_fused_elementwise);

}  // namespace
}  // namespace tessera::cpu
