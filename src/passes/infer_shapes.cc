// Build-time shape inference: every value gets the dtype and the most precise
// shape the op tables can give from constants and declared input shapes.
#include "ir/op_registry.h"
#include "passes/pass_manager.h"

namespace tessera {

void apply_inferred(Node& n, const std::vector<TensorType>& types) {
  for (size_t i = 0; i < n.outputs.size(); ++i) {
    Value* v = n.outputs[i];
    if (!v || v->constant) continue;
    v->dtype = types[i].dtype;
    v->rank_known = types[i].rank_known;
    v->shape = types[i].shape;
    v->dim_names.resize(v->shape.size());
  }
}

void infer_shapes(Graph& g) {
  for (auto& n : g.mutable_nodes()) apply_inferred(*n, infer_node(*n));
}

}  // namespace tessera
