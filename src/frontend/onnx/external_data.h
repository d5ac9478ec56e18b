// The external data files an ONNX model's tensors point at (`location`
// entries of initializers and tensor attributes, subgraphs included). The
// engine cache hashes them with the model: a changed weights file must give
// another engine.
#pragma once
#include <string>
#include <vector>

namespace tessera::onnx {

// Paths (the model's directory joined with each location), sorted, without
// duplicates. Throws Parse naming the model when it is not valid ONNX.
std::vector<std::string> external_data_files(const std::string& model_path);

}  // namespace tessera::onnx
