// FusedMatMul: act(A @ op(B) + bias) [+ residual], made by the
// fuse_gemm_epilogue pass from a MatMul (optional Add of a 1-D constant bias)
// or a Gemm (1-D / [1, N] C, alpha = beta = 1, transA = 0), then an optional
// activation, so a GPU backend can run it as one GEMM with an epilogue; and by
// fuse_gemm_residual from a following Add of a tensor of the output's shape
// (a transformer's residual stream: cuBLASLt's C with beta = 1). Inputs: A,
// B, optional bias of length N, optional residual (the output's shape and
// dtype; only without an activation). Attributes:
//   activation: "" | "relu" | "gelu" (exact, erf) | "gelu_tanh"
//   trans_b:    0 (default): B follows MatMul's rules (rank >= 2, [..., K, N]);
//               1: B is one [N, K] matrix (a Gemm's transB = 1 weight, kept
//               as stored rather than transposed at build time).
#include "ir/op_registry.h"

namespace tessera {
namespace {

std::vector<TensorType> fused_matmul(const InferContext& c) {
  std::string act = c.attrs().get_string("activation", "");
  if (act != "" && act != "relu" && act != "gelu" && act != "gelu_tanh")
    c.error("activation '", act, "' is not one of \"\", relu, gelu, gelu_tanh");
  if (!is_float(c.input(0).dtype)) c.error("needs a floating-point dtype, got ", dtype_name(c.input(0).dtype));
  bool trans_b = c.attrs().get_int("trans_b", 0) != 0;
  const TensorType& b = c.input(1);
  if (b.rank_known && b.shape.size() < 2) c.error("B must have rank >= 2, got ", to_string(b.shape));
  if (trans_b && b.rank_known && b.shape.size() != 2) c.error("trans_b needs a 2-D B, got ", to_string(b.shape));
  // MatMul's own inference (on B's [K, N] view when trans_b), so the two can
  // never disagree on shapes.
  std::vector<TensorType> types;
  for (size_t i = 0; i < c.num_inputs() && i < 2; ++i) types.push_back(c.input(i));
  if (trans_b && b.rank_known) std::swap(types[1].shape[0], types[1].shape[1]);
  std::vector<TensorType> out = OpRegistry::find("MatMul")->infer(InferContext(c.node(), types, {}));
  if (c.has_input(2)) {
    const TensorType& bias = c.input(2);
    if (bias.dtype != c.input(0).dtype)
      c.error("bias dtype ", dtype_name(bias.dtype), " differs from the operands' ", dtype_name(c.input(0).dtype));
    if (bias.rank_known) {
      if (bias.shape.size() != 1) c.error("bias must be 1-D, got ", to_string(bias.shape));
      int64_t n = b.rank_known ? types[1].shape.back() : kUnknownDim;
      if (n >= 0 && bias.shape[0] >= 0 && bias.shape[0] != n)
        c.error("bias has ", bias.shape[0], " elements, the output has N = ", n);
    }
  }
  if (c.has_input(3)) {
    const TensorType& r = c.input(3);
    if (!act.empty()) c.error("a residual input needs activation \"\", got '", act, "'");
    if (r.dtype != out[0].dtype) c.error("residual dtype ", dtype_name(r.dtype), " differs from the output's ", dtype_name(out[0].dtype));
    if (r.rank_known && out[0].rank_known && r.shape != out[0].shape)
      c.error("residual ", to_string(r.shape), " is not the output's shape ", to_string(out[0].shape));
  }
  return out;
}

TESSERA_REGISTER_OP({"FusedMatMul", 2, 4, 1, 1, fused_matmul});

}  // namespace
}  // namespace tessera
