// RMSNormalization (ONNX opset 23): Y = X / sqrt(mean(X^2 over dims [axis,
// rank)) + epsilon) * scale, computed in f32 whatever X's dtype. Inputs X
// (float) and scale (float, broadcast over the normalised dims); attributes
// axis (default -1), epsilon (default 1e-5), stash_type (1 = f32, the only
// one ONNX defines). Y takes scale's dtype, as ONNX's type constraint V says.
// The fuse_rmsnorm pass creates it from what PyTorch exporters emit.
#include "ir/op_registry.h"

namespace tessera {
namespace {

std::vector<TensorType> rms_norm(const InferContext& c) {
  const TensorType &x = c.input(0), &scale = c.input(1);
  if (!is_float(x.dtype)) c.error("input X is ", dtype_name(x.dtype), ", expected a float type");
  if (!is_float(scale.dtype)) c.error("input scale is ", dtype_name(scale.dtype), ", expected a float type");
  if (c.attrs().get_int("stash_type", 1) != 1) c.error("stash_type must be 1 (float32), got ", c.attrs().get_int("stash_type", 1));
  if (!x.rank_known) return {{scale.dtype, {}, false}};
  int64_t rank = int64_t(x.shape.size());
  int64_t axis = normalize_axis(c.attrs().get_int("axis", -1), rank, c.node().name);
  // scale is the trailing dims of X (leading 1s allowed): kernels index it
  // with j % numel(scale) over the normalised block.
  if (scale.rank_known) {
    size_t lead = 0;
    while (lead < scale.shape.size() && scale.shape[lead] == 1) ++lead;
    size_t tail = scale.shape.size() - lead;
    bool ok = int64_t(tail) <= rank - axis && int64_t(scale.shape.size()) <= rank;
    for (size_t i = 0; ok && i < tail; ++i) {
      int64_t s = scale.shape[lead + i], d = x.shape[x.shape.size() - tail + i];
      ok = s < 0 || d < 0 || s == d;
    }
    if (!ok) c.error("scale ", to_string(scale.shape), " must equal trailing normalised dims of X ", to_string(x.shape));
  }
  return {{scale.dtype, x.shape, true}};
}

TESSERA_REGISTER_OP({"RMSNormalization", 2, 2, 1, 1, rms_norm});

}  // namespace
}  // namespace tessera
