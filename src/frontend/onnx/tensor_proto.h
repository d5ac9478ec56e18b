// ONNX TensorProto and element types ↔ tessera Tensor and DType.
#pragma once
#include <string>

#include "core/tensor.h"
#include "onnx/onnx.pb.h"

namespace tessera::onnx {

// Throws Unsupported naming `what` for element types tessera does not have.
DType dtype_from_onnx(int32_t elem_type, const std::string& what);
int32_t dtype_to_onnx(DType t);
// `base_dir` resolves external data locations; `what` names the tensor in errors.
Tensor tensor_from_proto(const ::onnx::TensorProto& p, const std::string& base_dir);

}  // namespace tessera::onnx
