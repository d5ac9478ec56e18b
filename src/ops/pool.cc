// Pooling ops over [N, C, D1, ..., Dk] inputs: MaxPool (with its optional
// Indices output), AveragePool, LpPool and their Global* forms, which pool
// over all spatial dims. Kernels: backend/*/kernels/pool.*. Window geometry
// (pads, auto_pad, ceil_mode, dilations): ops/conv_rules.h.
#include "ops/conv_rules.h"

namespace tessera {
namespace {
using namespace rules;

void check_input(const InferContext& c) {
  const TensorType& x = c.input(0);
  bool int8 = x.dtype == DType::i8 || x.dtype == DType::u8;
  if (!is_float(x.dtype) && !(int8 && c.node().op == "MaxPool"))
    c.error("input X is ", dtype_name(x.dtype), ", expected a float type", c.node().op == "MaxPool" ? " or int8/uint8" : "");
  if (x.rank_known && x.shape.size() < 3) c.error("input X ", to_string(x.shape), " must be [N, C, D1, ...]");
}

// MaxPool, AveragePool, LpPool: Y, and for MaxPool the Indices (int64, same shape).
std::vector<TensorType> windowed(const InferContext& c) {
  check_input(c);
  const TensorType& x = c.input(0);
  std::vector<int64_t> kernel = c.attrs().get_ints("kernel_shape");
  if (kernel.empty()) c.error("attribute kernel_shape is required");
  int64_t order = c.attrs().get_int("storage_order", 0);
  if (order != 0 && order != 1) c.error("storage_order ", order, " must be 0 (row-major) or 1 (column-major)");
  if (c.attrs().get_int("p", 2) < 1) c.error("p ", c.attrs().get_int("p", 2), " must be at least 1");
  TensorType y = unknown_dims(x.dtype, int64_t(kernel.size()) + 2);
  if (x.rank_known) {
    Window w = sliding_window(spatial_dims(x.shape), kernel, c.attrs(), c.attrs().get_int("ceil_mode", 0) != 0,
                              node_label(c.node()));
    y.shape = {x.shape[0], x.shape[1]};
    y.shape.insert(y.shape.end(), w.out.begin(), w.out.end());
  }
  TensorType indices = y;
  indices.dtype = DType::i64;
  return {y, indices};
}

// Global pools: [N, C, 1, ..., 1].
std::vector<TensorType> global(const InferContext& c) {
  check_input(c);
  const TensorType& x = c.input(0);
  if (!x.rank_known) return {unknown_rank(x.dtype)};
  Shape out(x.shape.size(), 1);
  out[0] = x.shape[0];
  out[1] = x.shape[1];
  return {{x.dtype, out, true}};
}

TESSERA_REGISTER_OP({"MaxPool", 1, 1, 1, 2, windowed});
TESSERA_REGISTER_OP({"AveragePool", 1, 1, 1, 1, windowed});
TESSERA_REGISTER_OP({"LpPool", 1, 1, 1, 1, windowed});
TESSERA_REGISTER_OP({"GlobalMaxPool", 1, 1, 1, 1, global});
TESSERA_REGISTER_OP({"GlobalAveragePool", 1, 1, 1, 1, global});
TESSERA_REGISTER_OP({"GlobalLpPool", 1, 1, 1, 1, global});

}  // namespace
}  // namespace tessera
