// MatMul (NumPy semantics: 1-D operands promoted, batch dims broadcast) and
// Gemm (2-D, optional transposes, alpha/beta, C broadcast to [M, N]).
#include "ir/op_registry.h"

namespace tessera {
namespace {

std::vector<TensorType> matmul(const InferContext& c) {
  const TensorType &a = c.input(0), &b = c.input(1);
  if (!a.rank_known || !b.rank_known) return {{a.dtype, {}, false}};
  if (a.shape.empty() || b.shape.empty()) c.error("MatMul operands must have rank >= 1");
  if (a.dtype != b.dtype) c.error("operand dtypes differ: ", dtype_name(a.dtype), " and ", dtype_name(b.dtype));
  Shape sa = a.shape.size() == 1 ? Shape{1, a.shape[0]} : a.shape;
  Shape sb = b.shape.size() == 1 ? Shape{b.shape[0], 1} : b.shape;
  int64_t k1 = sa.back(), k2 = sb[sb.size() - 2];
  if (k1 >= 0 && k2 >= 0 && k1 != k2)
    c.error("inner dimensions differ: ", to_string(a.shape), " x ", to_string(b.shape), " (", k1, " vs ", k2, ")");
  Shape batch = broadcast_shapes(Shape(sa.begin(), sa.end() - 2), Shape(sb.begin(), sb.end() - 2), c.node().name);
  Shape out = batch;
  if (a.shape.size() > 1) out.push_back(sa[sa.size() - 2]);
  if (b.shape.size() > 1) out.push_back(sb.back());
  return {{a.dtype, out, true}};
}

std::vector<TensorType> gemm(const InferContext& c) {
  const TensorType &a = c.input(0), &b = c.input(1);
  if (!a.rank_known || !b.rank_known) return {{a.dtype, {kUnknownDim, kUnknownDim}, true}};
  if (a.shape.size() != 2 || b.shape.size() != 2)
    c.error("Gemm needs 2-D A and B, got ", to_string(a.shape), " and ", to_string(b.shape));
  bool ta = c.attrs().get_int("transA", 0), tb = c.attrs().get_int("transB", 0);
  int64_t m = ta ? a.shape[1] : a.shape[0], ka = ta ? a.shape[0] : a.shape[1];
  int64_t kb = tb ? b.shape[1] : b.shape[0], n = tb ? b.shape[0] : b.shape[1];
  if (ka >= 0 && kb >= 0 && ka != kb) c.error("inner dimensions differ: A ", to_string(a.shape), ", B ", to_string(b.shape), " (", ka, " vs ", kb, ")");
  if (c.has_input(2) && c.input(2).rank_known)
    broadcast_shapes(c.input(2).shape, {m < 0 ? 1 : m, n < 0 ? 1 : n}, c.node().name + " (C does not broadcast to [M, N])");
  return {{a.dtype, {m, n}, true}};
}

struct Registrar {
  Registrar() {
    OpRegistry::add({"MatMul", 2, 2, 1, 1, matmul});
    OpRegistry::add({"Gemm", 2, 3, 1, 1, gemm});
  }
} registrar;

}  // namespace
}  // namespace tessera
