// Shape rules of the shape and indexing ops (ops/shape.cc, ops/indexing.cc,
// ops/generate.cc) that their kernels need as well: Slice windows, Split
// sizes, Pad amounts, Constant's value. They live here once so that no
// backend keeps a second copy of ONNX's clamping rules (STYLE.md).
//
// `what` names the node in errors ("node 'x' (Slice)"); see node_label().
#pragma once
#include <optional>
#include <string>
#include <vector>

#include "ir/op_registry.h"

namespace tessera::rules {

std::string node_label(const Node& node);

// Inference conveniences.
inline TensorType unknown_rank(DType t) { return TensorType{t, {}, false}; }
inline TensorType unknown_dims(DType t, int64_t rank) { return TensorType{t, Shape(size_t(rank), kUnknownDim), true}; }
// Input i's value as int64s when known (build-time constant or run time).
std::optional<std::vector<int64_t>> known_ints(const InferContext& ctx, size_t i);
// Length of a 1-D input whose value is unknown (-1 when that is unknown too).
int64_t known_length(const InferContext& ctx, size_t i);

// The part of each input dimension that Slice reads: element start[d] + k*step[d]
// for k < out[d]. Dimensions not sliced keep start 0, step 1.
struct SliceWindow {
  std::vector<int64_t> start, step;
  Shape out;
};
// ONNX clamping: negative starts/ends count from the end, then starts clamp to
// [0, d] (or [0, d-1] for negative steps) and ends to [0, d] (or [-1, d-1]).
// Unknown input dims give unknown output dims. Empty axes/steps mean defaults.
SliceWindow slice_window(const Shape& in, const std::vector<int64_t>& starts, const std::vector<int64_t>& ends,
                         std::vector<int64_t> axes, std::vector<int64_t> steps, const std::string& what);

// Sizes of Split's outputs along a dimension of extent `dim` (maybe unknown):
// from the `split` input when given, else num_outputs (opset 18: ceil-sized
// chunks, the last smaller), else an equal split over the n_out outputs.
std::vector<int64_t> split_sizes(int64_t dim, size_t n_out, const std::optional<std::vector<int64_t>>& split,
                                 int64_t num_outputs, const std::string& what);

// Pad's amounts before/after each of `rank` dims, from the pads input
// ([begins..., ends...] over `axes`, or over all dims when axes is empty).
struct PadAmounts {
  std::vector<int64_t> begin, end;
};
PadAmounts pad_amounts(int64_t rank, const std::vector<int64_t>& pads, const std::vector<int64_t>& axes,
                       const std::string& what);

// The tensor a Constant node holds (value, value_float(s), value_int(s)).
Tensor constant_value(const Attributes& attrs, const std::string& what);

// Normalise a list of axes for `rank`, rejecting duplicates.
std::vector<int64_t> normalize_axes(const std::vector<int64_t>& axes, int64_t rank, const std::string& what);

}  // namespace tessera::rules
