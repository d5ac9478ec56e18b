// CUDA kernel of FusedElementwise (ops/fused_elementwise.h): its instructions,
// ONNX ops with their attributes, become one elementwise program (ew_program.h)
// run by the program kernel in one pass over memory.
#include "backend/cuda/kernel_registry.h"
#include "backend/cuda/kernels/ew_program.h"
#include "ops/fused_elementwise.h"

namespace tessera::cuda {
namespace {

// The program is made once per plan (on its first, uncaptured run).
struct FusedState {
  bool built = false;
  EwProgram program;
  std::vector<FusedBlock> blocks;  // the inputs read as column blocks
};

void k_fused_elementwise(KernelContext& ctx) {
  FusedState& st = ctx.state<FusedState>();
  std::vector<const Tensor*> inputs, host;
  for (size_t i = 0; i < ctx.num_inputs(); ++i) {
    inputs.push_back(&ctx.input(i));
    host.push_back(ctx.host_value(i));  // constants: scalar ones become immediates
  }
  if (!st.built) {
    FusedProgram fp = get_fused_program(ctx.node());
    std::vector<DType> dtypes;
    for (const Tensor* t : inputs) dtypes.push_back(t->dtype());
    EwBuilder b(dtypes, "node '" + ctx.node().name + "' (FusedElementwise)");
    std::vector<int> slot(size_t(fp.n_inputs));  // fused slot → program slot (variadic ops expand)
    for (int s = 0; s < fp.n_inputs; ++s) slot[size_t(s)] = s;
    for (const FusedInstr& in : fp.instrs) {
      std::vector<int> args;
      for (int s : in.args) args.push_back(s < 0 ? kEwNone : slot.at(size_t(s)));
      slot.push_back(b.add(in.op, in.attrs, args, in.dtype));
    }
    st.program = b.program();
    st.blocks = fp.blocks;
    st.built = true;
  }
  run_ew_program(ctx, st.program, inputs, ctx.output(0), host, st.blocks);
}
TESSERA_CUDA_KERNEL("FusedElementwise", k_fused_elementwise);

}  // namespace
}  // namespace tessera::cuda
