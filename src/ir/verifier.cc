#include "ir/verifier.h"

#include <unordered_set>

#include "ir/op_registry.h"

namespace tessera {

void verify(const Graph& g, const std::string& after) {
  std::unordered_set<const Value*> defined(g.inputs.begin(), g.inputs.end());
  std::unordered_set<std::string> names;
  for (auto& v : g.values()) {
    if (!names.insert(v->name).second) fail(ErrorKind::Internal, "after ", after, ": value name '", v->name, "' is used twice");
    if (v->constant) defined.insert(v.get());
  }
  for (auto& n : g.nodes()) {
    if (!OpRegistry::find(n->op)) fail(ErrorKind::Internal, "after ", after, ": node '", n->name, "' has unregistered op '", n->op, "'");
    for (Value* in : n->inputs)
      if (in && !defined.count(in))
        fail(ErrorKind::Internal, "after ", after, ": node '", n->name, "' reads '", in->name, "' before it is defined");
    for (Value* out : n->outputs) {
      if (!out) continue;
      if (out->producer != n.get()) fail(ErrorKind::Internal, "after ", after, ": value '", out->name, "' has a stale producer");
      defined.insert(out);
    }
  }
  for (Value* o : g.outputs)
    if (!defined.count(o)) fail(ErrorKind::Internal, "after ", after, ": graph output '", o->name, "' is never defined");
}

}  // namespace tessera
