// SkipLayerNormalization and SkipSimplifiedLayerNormalization (ONNX Runtime's
// com.microsoft contrib ops, the same names and inputs): a residual Add and
// the norm after it, in one op.
//   S = input + skip (+ bias), rounded to input's dtype as the unfused Add
//       writes it (skip is input's shape or its trailing dims: rows repeat);
//   Y = LayerNorm(S) · gamma (+ beta), or S / sqrt(mean(S²) + epsilon) · gamma
//       (Simplified: RMSNorm), over the last dim H, statistics in f32.
// Inputs: input, skip, gamma [H], beta [H] (LayerNorm only, optional), bias [H]
// (optional). Outputs: output, mean and inv_std_var (training outputs: refused),
// input_skip_bias_sum (optional S, which the next residual Add reads).
// Every tensor has input's dtype. epsilon defaults to ONNX Runtime's 1e-12.
// passes/fuse_skip_norm.cc makes them from Add → LayerNormalization / RMSNormalization.
#include "ir/op_registry.h"
#include "ops/skip_norm_rules.h"

namespace tessera {
namespace {

std::vector<TensorType> skip_norm(const InferContext& c, bool layer_norm) {
  const TensorType& x = c.input(0);
  if (!is_float(x.dtype)) c.error("input is ", dtype_name(x.dtype), ", expected a float type");
  static const char* names[] = {"input", "skip", "gamma", "beta", "bias"};
  const size_t bias_at = layer_norm ? 4 : 3;
  for (size_t i = 1; i < c.node().inputs.size(); ++i)
    if (c.has_input(i) && c.input(i).dtype != x.dtype)
      c.error(names[i == bias_at ? 4 : i], " is ", dtype_name(c.input(i).dtype), ", expected input's dtype ", dtype_name(x.dtype));
  for (size_t o : {size_t(1), size_t(2)})
    if (o < c.node().outputs.size() && c.node().outputs[o])
      c.error("outputs mean and inv_std_var (training outputs) are not computed; leave them empty");
  if (!x.rank_known) return {x, {}, {}, x};
  if (x.shape.empty()) c.error("input must have a hidden (last) dim");
  const int64_t h = x.shape.back();
  const TensorType& skip = c.input(1);
  if (skip.rank_known && !rules::skip_repeats(skip.shape, x.shape))
    c.error("skip ", to_string(skip.shape), " must be input's shape ", to_string(x.shape), " or its trailing dims");
  for (size_t i = 2; i < c.node().inputs.size(); ++i)
    if (c.has_input(i) && c.input(i).rank_known && !rules::hidden_vector(c.input(i).shape, h))
      c.error(names[i == bias_at ? 4 : i], " ", to_string(c.input(i).shape), " must be [", h, "] (the hidden size)");
  return {x, {}, {}, x};
}

std::vector<TensorType> skip_layer_norm(const InferContext& c) { return skip_norm(c, true); }
std::vector<TensorType> skip_rms_norm(const InferContext& c) { return skip_norm(c, false); }

TESSERA_REGISTER_OP({"SkipLayerNormalization", 3, 5, 1, 4, skip_layer_norm});
TESSERA_REGISTER_OP({"SkipSimplifiedLayerNormalization", 3, 4, 1, 4, skip_rms_norm});

}  // namespace
}  // namespace tessera
