// FusedMatMul: act(A @ B + bias), made by the fuse_gemm_epilogue pass from a
// MatMul, an optional Add of a 1-D constant bias and an optional activation,
// so a GPU backend can run it as one GEMM with an epilogue. Inputs: A, B
// (MatMul's shape rules, B of rank >= 2), optional bias of length N.
// Attribute `activation`: "" | "relu" | "gelu" (exact, erf) | "gelu_tanh".
#include "ir/op_registry.h"

namespace tessera {
namespace {

std::vector<TensorType> fused_matmul(const InferContext& c) {
  std::string act = c.attrs().get_string("activation", "");
  if (act != "" && act != "relu" && act != "gelu" && act != "gelu_tanh")
    c.error("activation '", act, "' is not one of \"\", relu, gelu, gelu_tanh");
  if (!is_float(c.input(0).dtype)) c.error("needs a floating-point dtype, got ", dtype_name(c.input(0).dtype));
  // MatMul's own inference, so the two can never disagree on shapes.
  std::vector<TensorType> out = OpRegistry::find("MatMul")->infer(c);
  const TensorType& b = c.input(1);
  if (b.rank_known && b.shape.size() < 2) c.error("B must have rank >= 2, got ", to_string(b.shape));
  if (c.has_input(2)) {
    const TensorType& bias = c.input(2);
    if (bias.dtype != c.input(0).dtype)
      c.error("bias dtype ", dtype_name(bias.dtype), " differs from the operands' ", dtype_name(c.input(0).dtype));
    if (bias.rank_known) {
      if (bias.shape.size() != 1) c.error("bias must be 1-D, got ", to_string(bias.shape));
      int64_t n = b.rank_known ? b.shape.back() : kUnknownDim;
      if (n >= 0 && bias.shape[0] >= 0 && bias.shape[0] != n)
        c.error("bias has ", bias.shape[0], " elements, the output has N = ", n);
    }
  }
  return out;
}

TESSERA_REGISTER_OP({"FusedMatMul", 2, 3, 1, 1, fused_matmul});

}  // namespace
}  // namespace tessera
