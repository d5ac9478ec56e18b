// Window geometry of the conv and pool ops (ops/conv.cc, ops/pool.cc): output
// extents and the pads actually applied, from kernel, strides, dilations,
// pads, auto_pad and ceil_mode. Inference and the CPU kernels both call these,
// so ONNX's padding rules live in one place (STYLE.md: no second copy of shape
// logic in a backend).
//
// Every list is over the spatial dims only (the dims after N and C). An
// unknown input extent (kUnknownDim) gives an unknown output extent.
// `what` names the node in errors ("node 'x' (Conv)"); see node_label().
#pragma once
#include <string>
#include <vector>

#include "ops/shape_rules.h"

namespace tessera::rules {

struct Window {
  Shape in, out;  // spatial extents of the input and of the output
  std::vector<int64_t> kernel, stride, dilation, pad_begin, pad_end;
  // Extent covered by one dilated kernel along dim i.
  int64_t span(size_t i) const { return (kernel[i] - 1) * dilation[i] + 1; }
};

// The dims after N and C of an [N, C, D1, ..., Dk] shape.
Shape spatial_dims(const Shape& s);

// Conv and the pools: the window slides over `in` (plus padding). With
// ceil_mode (pools only) the last partial window counts if it starts inside
// the input or the leading padding, as ONNX (and ONNX Runtime) specify.
Window sliding_window(const Shape& in, const std::vector<int64_t>& kernel, const Attributes& a, bool ceil_mode,
                      const std::string& what);

// ConvTranspose: the window slides over the output instead; `in` is the
// input's spatial extents. The output comes from output_shape when given,
// else from strides, output_padding, pads or auto_pad.
Window transpose_window(const Shape& in, const std::vector<int64_t>& kernel, const Attributes& a,
                        const std::string& what);

}  // namespace tessera::rules
