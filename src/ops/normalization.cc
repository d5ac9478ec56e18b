// Softmax / LogSoftmax (opset-13 meaning: along one axis) and
// LayerNormalization (normalise over dims [axis, rank); optional Mean and
// InvStdDev outputs shaped like X with those dims set to 1).
#include "ir/op_registry.h"

namespace tessera {
namespace {

std::vector<TensorType> softmax(const InferContext& c) {
  const TensorType& x = c.input(0);
  if (x.rank_known) normalize_axis(c.attrs().get_int("axis", -1), int64_t(x.shape.size()), c.node().name);
  return {x};
}

std::vector<TensorType> layer_norm(const InferContext& c) {
  TensorType x = c.input(0);
  if (!x.rank_known) return {x, {DType::f32, {}, false}, {DType::f32, {}, false}};
  int64_t rank = int64_t(x.shape.size());
  int64_t axis = normalize_axis(c.attrs().get_int("axis", -1), rank, c.node().name);
  TensorType stat{DType::f32, x.shape, true};
  for (int64_t i = axis; i < rank; ++i) stat.shape[size_t(i)] = 1;
  int64_t stash = c.attrs().get_int("stash_type", 1);
  stat.dtype = stash == 1 ? DType::f32 : x.dtype;
  return {x, stat, stat};
}

struct Registrar {
  Registrar() {
    OpRegistry::add({"Softmax", 1, 1, 1, 1, softmax});
    OpRegistry::add({"LogSoftmax", 1, 1, 1, 1, softmax});
    OpRegistry::add({"LayerNormalization", 2, 3, 1, 3, layer_norm});
  }
} registrar;

}  // namespace
}  // namespace tessera
