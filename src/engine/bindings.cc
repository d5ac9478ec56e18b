// Run-time input checks: every error names the input and says what was
// expected and what was received (DESIGN.md §6).
#include "engine/engine.h"
#include "ir/dump.h"

namespace tessera {

std::string type_string_of(const Value& v) { return type_string(v); }

void check_inputs(const Graph& g, const std::map<std::string, Tensor>& inputs) {
  std::string names;
  for (Value* in : g.inputs) names += (names.empty() ? "" : ", ") + in->name + ": " + type_string(*in);
  for (auto& [name, t] : inputs) {
    bool known = false;
    for (Value* in : g.inputs) known = known || in->name == name;
    if (!known) fail(ErrorKind::InvalidArgument, "unknown input '", name, "'; the engine's inputs are ", names);
  }
  for (Value* in : g.inputs) {
    auto it = inputs.find(in->name);
    if (it == inputs.end()) fail(ErrorKind::InvalidArgument, "missing input '", in->name, "' (", type_string(*in), ")");
    const Tensor& t = it->second;
    if (t.dtype() != in->dtype)
      fail(ErrorKind::InvalidArgument, "input '", in->name, "': expected dtype ", dtype_name(in->dtype), ", received ", dtype_name(t.dtype()));
    bool ok = !in->rank_known || t.shape().size() == in->shape.size();
    for (size_t i = 0; ok && in->rank_known && i < in->shape.size(); ++i) ok = in->shape[i] < 0 || in->shape[i] == t.shape()[i];
    if (!ok)
      fail(ErrorKind::InvalidArgument, "input '", in->name, "': expected shape ", type_string(*in), ", received ", to_string(t.shape()));
  }
}

}  // namespace tessera
