// Normalisation ops over the channel dim of [N, C, ...] inputs:
// BatchNormalization in its inference form (per-channel statistics given as
// inputs) and InstanceNormalization (statistics of each (n, c) plane).
// Kernels: backend/*/kernels/batchnorm.*.
//
// BatchNormalization's training form (training_mode=1, or the running-stat
// outputs) updates statistics; an inference engine has no use for it, so it
// is refused with an Unsupported error naming the node.
#include "ops/shape_rules.h"

namespace tessera {
namespace {
using namespace rules;

// Inputs first..last are per-channel vectors: [C] and float.
void check_channel_params(const InferContext& c, size_t first, size_t last, const char* const* names) {
  const TensorType& x = c.input(0);
  int64_t ch = x.rank_known && x.shape.size() >= 2 ? x.shape[1] : kUnknownDim;
  for (size_t i = first; i <= last; ++i) {
    const TensorType& t = c.input(i);
    if (!is_float(t.dtype)) c.error("input ", names[i - first], " is ", dtype_name(t.dtype), ", expected a float type");
    if (!t.rank_known) continue;
    if (t.shape.size() != 1 || (ch >= 0 && t.shape[0] >= 0 && t.shape[0] != ch))
      c.error("input ", names[i - first], " ", to_string(t.shape), " must be [", ch, "], one value per channel of X ",
              to_string(x.shape));
  }
}

std::vector<TensorType> batch_norm(const InferContext& c) {
  if (c.attrs().get_int("training_mode", 0) != 0)
    fail(ErrorKind::Unsupported, node_label(c.node()), ": training_mode=1 is not supported (inference only)");
  if (c.node().outputs.size() > 1)
    fail(ErrorKind::Unsupported, node_label(c.node()), ": the running mean/var outputs exist only in training mode, "
         "which is not supported (inference only)");
  const TensorType& x = c.input(0);
  if (!is_float(x.dtype)) c.error("input X is ", dtype_name(x.dtype), ", expected a float type");
  if (x.rank_known && x.shape.size() < 2) c.error("input X ", to_string(x.shape), " must be [N, C, ...]");
  static const char* const kNames[] = {"scale", "B", "input_mean", "input_var"};
  check_channel_params(c, 1, 4, kNames);
  return {x};
}

std::vector<TensorType> instance_norm(const InferContext& c) {
  const TensorType& x = c.input(0);
  if (!is_float(x.dtype)) c.error("input X is ", dtype_name(x.dtype), ", expected a float type");
  if (x.rank_known && x.shape.size() < 3) c.error("input X ", to_string(x.shape), " must be [N, C, D1, ...]");
  static const char* const kNames[] = {"scale", "B"};
  check_channel_params(c, 1, 2, kNames);
  return {x};
}

TESSERA_REGISTER_OP({"BatchNormalization", 5, 5, 1, 3, batch_norm});
TESSERA_REGISTER_OP({"InstanceNormalization", 3, 3, 1, 1, instance_norm});

}  // namespace
}  // namespace tessera
