// The seed's ToyModel (Torch-TensorRT's tensor_parallel_simple_example):
// Linear 10→3200, ReLU, 3200→1600, ReLU, 1600→500, ReLU, 500→100, built
// directly as IR with seeded weights (PyTorch's Linear init), plus a plain
// reference forward pass in double precision to check engines against.
#pragma once
#include "ir/graph.h"

namespace tessera::toy {

struct Layer {
  std::string name;
  Tensor weight;  // [out, in], as nn.Linear stores it
  Tensor bias;    // [out]
};

std::vector<Layer> make_weights(uint64_t seed);
// Input `x` of shape [batch, 10]; batch is symbolic ("batch") in the graph.
Graph make_graph(const std::vector<Layer>& layers);
Tensor reference_forward(const std::vector<Layer>& layers, const Tensor& x);

}  // namespace tessera::toy
