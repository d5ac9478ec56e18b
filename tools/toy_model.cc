#include "tools/toy_model.h"

#include <cmath>
#include <random>

namespace tessera::toy {

std::vector<Layer> make_weights(uint64_t seed) {
  const std::pair<const char*, std::pair<int64_t, int64_t>> dims[] = {
      {"in_proj", {10, 3200}}, {"out_proj", {3200, 1600}}, {"in_proj2", {1600, 500}}, {"out_proj2", {500, 100}}};
  std::mt19937_64 gen(seed);
  std::vector<Layer> layers;
  for (auto& [name, io] : dims) {
    auto [in, out] = io;
    float bound = 1.0f / std::sqrt(float(in));  // nn.Linear's default init range
    std::uniform_real_distribution<float> u(-bound, bound);
    Layer l{name, Tensor::empty(DType::f32, {out, in}), Tensor::empty(DType::f32, {out})};
    for (int64_t i = 0; i < l.weight.numel(); ++i) l.weight.data<float>()[i] = u(gen);
    for (int64_t i = 0; i < out; ++i) l.bias.data<float>()[i] = u(gen);
    layers.push_back(std::move(l));
  }
  return layers;
}

Graph make_graph(const std::vector<Layer>& layers) {
  Graph g;
  g.name = "toy_model";
  Value* x = g.add_value("x", DType::f32, {kUnknownDim, 10});
  x->dim_names = {"batch", ""};
  g.inputs.push_back(x);
  for (size_t i = 0; i < layers.size(); ++i) {
    const Layer& l = layers[i];
    Value* w = g.add_constant(l.name + ".weight", l.weight);
    Value* b = g.add_constant(l.name + ".bias", l.bias);
    Value* y = g.add_value(l.name + ".out", DType::f32, {kUnknownDim, l.weight.dim(0)});
    Attributes a;
    a.set("transB", int64_t(1));
    g.add_node("Gemm", l.name, {x, w, b}, {y}, a);
    x = y;
    if (i + 1 < layers.size()) {
      Value* r = g.add_value(l.name + ".relu", DType::f32, {kUnknownDim, l.weight.dim(0)});
      g.add_node("Relu", l.name + ".act", {x}, {r});
      x = r;
    }
  }
  g.outputs.push_back(x);
  return g;
}

Tensor reference_forward(const std::vector<Layer>& layers, const Tensor& x) {
  int64_t batch = x.dim(0);
  std::vector<double> h(x.data<float>(), x.data<float>() + x.numel());
  for (size_t k = 0; k < layers.size(); ++k) {
    const Layer& l = layers[k];
    int64_t in = l.weight.dim(1), out = l.weight.dim(0);
    std::vector<double> y(size_t(batch * out));
    for (int64_t b = 0; b < batch; ++b)
      for (int64_t o = 0; o < out; ++o) {
        double acc = l.bias.data<float>()[o];
        for (int64_t i = 0; i < in; ++i) acc += h[size_t(b * in + i)] * l.weight.data<float>()[o * in + i];
        y[size_t(b * out + o)] = (k + 1 < layers.size()) ? std::max(acc, 0.0) : acc;
      }
    h = std::move(y);
  }
  Tensor out = Tensor::empty(DType::f32, {batch, layers.back().weight.dim(0)});
  for (int64_t i = 0; i < out.numel(); ++i) out.data<float>()[i] = float(h[size_t(i)]);
  return out;
}

}  // namespace tessera::toy
