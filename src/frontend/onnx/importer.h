// ONNX → IR. Reads a ModelProto (with external data next to it), turns
// initializers and Constant nodes into constant Values, maps attributes to IR
// attributes, and refuses unsupported ops in one error that lists them all.
#pragma once
#include <string>

#include "ir/graph.h"

namespace tessera::onnx {

constexpr int64_t kMinOpset = 13, kMaxOpset = 21;

Graph import_model(const std::string& path);
Graph import_model_bytes(const std::string& bytes, const std::string& path, const std::string& base_dir);

}  // namespace tessera::onnx
