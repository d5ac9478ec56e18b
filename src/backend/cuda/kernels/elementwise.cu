// CUDA kernels of the elementwise family (ops/elementwise.cc): each node is a
// program (ew_program.h) of the instructions for its op, run by the one
// program kernel (ew_kernel.cu). Identity and Dropout are aliases (alias.cc).
#include "backend/cuda/kernel_registry.h"
#include "backend/cuda/kernels/ew_program.h"

namespace tessera::cuda {
namespace {

void k_elementwise(KernelContext& ctx) {
  const Node& node = ctx.node();
  // CastLike reads only input 1's dtype (already in the output's), never its values.
  size_t n_read = node.op == "CastLike" ? 1 : ctx.num_inputs();
  std::vector<const Tensor*> inputs, host;
  std::vector<DType> dtypes;
  std::vector<int> args;
  for (size_t i = 0; i < n_read; ++i) {
    if (!ctx.has_input(i)) {
      args.push_back(kEwNone);
      continue;
    }
    args.push_back(int(inputs.size()));
    inputs.push_back(&ctx.input(i));
    host.push_back(ctx.host_value(i));
    dtypes.push_back(ctx.input(i).dtype());
  }
  EwBuilder b(dtypes, "node '" + node.name + "' (" + node.op + ")");
  b.add(node.op, node.attrs, args, ctx.output(0).dtype());
  run_ew_program(ctx, b.program(), inputs, ctx.output(0), host);
}

const char* kOps[] = {"Add", "Sub", "Mul", "Div", "Pow", "Mod", "Max", "Min", "Sum", "Mean",
                      "Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual", "And", "Or", "Xor",
                      "Neg", "Abs", "Exp", "Log", "Sqrt", "Reciprocal", "Tanh", "Erf", "Sigmoid", "Relu",
                      "Sin", "Cos", "Floor", "Ceil", "Round", "Sign", "LeakyRelu", "HardSigmoid",
                      "HardSwish", "Gelu", "Elu", "Softplus", "Selu", "Celu", "Mish", "Softsign",
                      "Not", "IsNaN", "Clip", "Where", "Cast", "CastLike"};

struct Registrar {
  Registrar() {
    for (const char* op : kOps) KernelRegistry::add(op, KernelInfo{k_elementwise});
  }
} registrar;

}  // namespace
}  // namespace tessera::cuda
