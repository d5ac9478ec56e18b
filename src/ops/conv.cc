// Conv and ConvTranspose: N-d convolution over [N, C, D1, ..., Dk] inputs with
// group (depthwise included), strides, dilations, pads and auto_pad.
// Kernels: backend/*/kernels/conv.*. Window geometry: ops/conv_rules.h.
//
// Channel rules checked here so a bad model fails at build time, naming the
// node: Conv's weight is [M, C/group, k1, ...]; ConvTranspose's is
// [C, M/group, k1, ...]; the bias, when given, is [M].
#include "ops/conv_rules.h"

namespace tessera {
namespace {
using namespace rules;

// Shared checks of X, W (and B): float dtypes that agree, ranks that match.
void check_operands(const InferContext& c) {
  const TensorType &x = c.input(0), &w = c.input(1);
  if (!is_float(x.dtype)) c.error("input X is ", dtype_name(x.dtype), ", expected a float type");
  if (w.dtype != x.dtype) c.error("weight W is ", dtype_name(w.dtype), ", input X is ", dtype_name(x.dtype));
  if (x.rank_known && x.shape.size() < 3) c.error("input X ", to_string(x.shape), " must be [N, C, D1, ...]");
  if (x.rank_known && w.rank_known && w.shape.size() != x.shape.size())
    c.error("weight W ", to_string(w.shape), " has rank ", w.shape.size(), ", input X ", to_string(x.shape), " has rank ", x.shape.size());
  if (c.has_input(2) && c.input(2).dtype != x.dtype) c.error("bias B is ", dtype_name(c.input(2).dtype), ", input X is ", dtype_name(x.dtype));
}

// kernel_shape from the attribute, else from W's dims; empty when neither is known.
std::vector<int64_t> kernel_of(const InferContext& c) {
  std::vector<int64_t> k = c.attrs().get_ints("kernel_shape");
  const TensorType& w = c.input(1);
  if (!w.rank_known) return k;
  Shape from_w = spatial_dims(w.shape);
  if (k.empty()) k = from_w;
  for (size_t i = 0; i < k.size() && i < from_w.size(); ++i)
    if (from_w[i] >= 0 && from_w[i] != k[i]) c.error("kernel_shape disagrees with weight W ", to_string(w.shape));
  for (int64_t d : k)
    if (d < 0) return {};
  return k;
}

void check_bias(const InferContext& c, int64_t m) {
  if (!c.has_input(2)) return;
  const TensorType& b = c.input(2);
  if (b.rank_known && (b.shape.size() != 1 || (m >= 0 && b.shape[0] >= 0 && b.shape[0] != m)))
    c.error("bias B ", to_string(b.shape), " must be [", m, "] (one value per output channel)");
}

int64_t group_of(const InferContext& c) {
  int64_t g = c.attrs().get_int("group", 1);
  if (g < 1) c.error("group ", g, " must be at least 1");
  return g;
}

// Output [N, M, spatial...]: the spatial part is unknown where the input's is.
TensorType conv_output(const InferContext& c, int64_t m, const Shape& spatial) {
  Shape out = {c.input(0).shape[0], m};
  out.insert(out.end(), spatial.begin(), spatial.end());
  return {c.input(0).dtype, out, true};
}

std::vector<TensorType> conv(const InferContext& c) {
  check_operands(c);
  const TensorType &x = c.input(0), &w = c.input(1);
  if (!x.rank_known) return {w.rank_known ? unknown_dims(x.dtype, int64_t(w.shape.size())) : unknown_rank(x.dtype)};
  int64_t g = group_of(c), ch = x.shape[1];
  int64_t m = w.rank_known ? w.shape[0] : kUnknownDim;
  if (ch >= 0 && ch % g != 0) c.error("input channels ", ch, " are not divisible by group ", g);
  if (w.rank_known && ch >= 0 && w.shape[1] >= 0 && w.shape[1] * g != ch)
    c.error("input X ", to_string(x.shape), " has ", ch, " channels, but weight W ", to_string(w.shape), " expects ",
            w.shape[1], " x group ", g, " = ", w.shape[1] * g);
  if (m >= 0 && m % g != 0) c.error("output channels ", m, " (weight W dim 0) are not divisible by group ", g);
  check_bias(c, m);
  std::vector<int64_t> kernel = kernel_of(c);
  Shape in = spatial_dims(x.shape);
  if (kernel.empty()) return {conv_output(c, m, Shape(in.size(), kUnknownDim))};
  return {conv_output(c, m, sliding_window(in, kernel, c.attrs(), false, node_label(c.node())).out)};
}

std::vector<TensorType> conv_transpose(const InferContext& c) {
  check_operands(c);
  const TensorType &x = c.input(0), &w = c.input(1);
  if (!x.rank_known) return {w.rank_known ? unknown_dims(x.dtype, int64_t(w.shape.size())) : unknown_rank(x.dtype)};
  int64_t g = group_of(c), ch = x.shape[1];
  if (ch >= 0 && ch % g != 0) c.error("input channels ", ch, " are not divisible by group ", g);
  if (w.rank_known && ch >= 0 && w.shape[0] >= 0 && w.shape[0] != ch)
    c.error("input X ", to_string(x.shape), " has ", ch, " channels, but weight W ", to_string(w.shape), " expects ", w.shape[0]);
  int64_t m = w.rank_known && w.shape[1] >= 0 ? w.shape[1] * g : kUnknownDim;
  check_bias(c, m);
  std::vector<int64_t> kernel = kernel_of(c);
  Shape in = spatial_dims(x.shape);
  if (kernel.empty()) return {conv_output(c, m, Shape(in.size(), kUnknownDim))};
  return {conv_output(c, m, transpose_window(in, kernel, c.attrs(), node_label(c.node())).out)};
}

TESSERA_REGISTER_OP({"Conv", 2, 3, 1, 1, conv});
TESSERA_REGISTER_OP({"ConvTranspose", 2, 3, 1, 1, conv_transpose});

}  // namespace
}  // namespace tessera
