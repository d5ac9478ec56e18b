// CPU reference for FusedElementwise (ops/fused_elementwise.h): each
// instruction runs the reference kernel of its own ONNX op on whole tensors,
// so a fused region computes exactly what its unfused nodes computed.
#include "backend/cpu/kernel_registry.h"
#include "ops/fused_elementwise.h"

namespace tessera::cpu {
namespace {

void k_fused_elementwise(KernelContext& c) {
  FusedProgram p = get_fused_program(c.node());
  std::vector<Tensor> results;  // results[k]: instruction k's value
  auto slot = [&](int s) -> const Tensor* {
    if (s < 0) return nullptr;
    return s < p.n_inputs ? &c.input(size_t(s)) : &results[size_t(s - p.n_inputs)];
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
