// TensorScatter (ONNX opset 24): write `update` into `past_cache` along the
// sequence axis at a per-batch-row offset — the KV-cache write of a decode
// step.
//
//   inputs  past_cache [B, ..., S, ..., D], update (past_cache's shape with
//           axis length T <= S), optional write_indices [B] (int64, default 0)
//   attrs   axis (default -2), mode "linear" (the only one)
//   output  present_cache, past_cache's type
//
// Row b's update lands at positions [write_indices[b], write_indices[b] + T)
// of the axis; a write past the end is an error naming the row. tessera's
// extension `inplace=1` (set by the Hugging Face builder, never by the ONNX
// importer) makes the kernels write into past_cache's own buffer and alias the
// output to it: the caller owns the cache across calls (generate/), so a
// decode step moves T tokens of K/V, not the whole cache.
#include "ops/shape_rules.h"

namespace tessera {
namespace {

bool same_dim(int64_t a, int64_t b) { return a == kUnknownDim || b == kUnknownDim || a == b; }

std::vector<TensorType> tensor_scatter(const InferContext& c) {
  const TensorType &cache = c.input(0), &upd = c.input(1);
  if (c.attrs().get_string("mode", "linear") != "linear")
    c.error("mode '", c.attrs().get_string("mode", ""), "' is not supported (only \"linear\")");
  if (upd.dtype != cache.dtype) c.error("update dtype ", dtype_name(upd.dtype), " differs from the cache's ", dtype_name(cache.dtype));
  if (c.has_input(2) && c.input(2).dtype != DType::i64) c.error("write_indices must be int64, got ", dtype_name(c.input(2).dtype));
  if (!cache.rank_known || !upd.rank_known) return {cache};
  int64_t rank = int64_t(cache.shape.size());
  if (rank < 2 || int64_t(upd.shape.size()) != rank)
    c.error("cache ", to_string(cache.shape), " and update ", to_string(upd.shape), " must have the same rank (at least 2)");
  int64_t axis = normalize_axis(c.attrs().get_int("axis", -2), rank, c.node().name);
  if (axis == 0) c.error("axis must not be the batch axis 0");
  for (int64_t d = 0; d < rank; ++d) {
    int64_t cd = cache.shape[size_t(d)], ud = upd.shape[size_t(d)];
    if (d == axis ? (cd != kUnknownDim && ud != kUnknownDim && ud > cd) : !same_dim(cd, ud))
      c.error("update ", to_string(upd.shape), " does not fit cache ", to_string(cache.shape), " (axis ", axis, ")");
  }
  if (c.has_input(2) && c.input(2).rank_known) {
    const Shape& w = c.input(2).shape;
    if (w.size() != 1 || !same_dim(w[0], cache.shape[0]))
      c.error("write_indices ", to_string(w), " must be [batch] = [", cache.shape[0], "]");
  }
  return {cache};
}

struct Registrar {
  Registrar() { OpRegistry::add({"TensorScatter", 2, 3, 1, 1, tensor_scatter}); }
} registrar;

}  // namespace
}  // namespace tessera
