// Reduce* ops. Axes come from the `axes` attribute (opsets before 18, except
// ReduceSum from 13) or from input 1 (a constant). keepdims (default 1);
// no axes means all axes unless noop_with_empty_axes=1.
#include "ir/op_registry.h"

namespace tessera {

// The axes a reduction node reduces over, normalised and sorted; empty = none (noop).
// `has` is false when the axes input exists but is not known yet (build time).
std::vector<int64_t> reduction_axes(const Node& n, const Tensor* axes_input, int64_t rank, bool& known);

namespace {

std::vector<TensorType> reduce(const InferContext& c) {
  TensorType x = c.input(0);
  if (!x.rank_known) return {x};
  bool known = true;
  std::vector<int64_t> axes = reduction_axes(c.node(), c.value(1), int64_t(x.shape.size()), known);
  bool keep = c.attrs().get_int("keepdims", 1) != 0;
  if (!known) return {{x.dtype, keep ? Shape(x.shape.size(), kUnknownDim) : Shape{}, keep}};
  Shape out;
  for (int64_t i = 0; i < int64_t(x.shape.size()); ++i) {
    bool reduced = std::find(axes.begin(), axes.end(), i) != axes.end();
    if (!reduced) out.push_back(x.shape[size_t(i)]);
    else if (keep) out.push_back(1);
  }
  return {{x.dtype, out, true}};
}

struct Registrar {
  Registrar() {
    for (const char* op : {"ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2",
                           "ReduceSumSquare", "ReduceLogSum", "ReduceLogSumExp"})
      OpRegistry::add({op, 1, 2, 1, 1, reduce});
  }
} registrar;

}  // namespace

std::vector<int64_t> reduction_axes(const Node& n, const Tensor* axes_input, int64_t rank, bool& known) {
  std::vector<int64_t> axes;
  known = true;
  if (n.attrs.has("axes")) {
    axes = n.attrs.get_ints("axes");
  } else if (n.input(1)) {
    if (!axes_input) {
      known = false;
      return {};
    }
    axes = axes_input->to_i64_vector();
  }
  if (axes.empty()) {
    if (n.attrs.get_int("noop_with_empty_axes", 0)) return {};
    for (int64_t i = 0; i < rank; ++i) axes.push_back(i);
  }
  for (int64_t& a : axes) a = normalize_axis(a, rank, n.name);
  std::sort(axes.begin(), axes.end());
  axes.erase(std::unique(axes.begin(), axes.end()), axes.end());
  return axes;
}

}  // namespace tessera
