#include "ir/dump.h"

#include <sstream>

#include "core/error.h"

namespace tessera {

std::string type_string(const Value& v) {
  if (!v.rank_known) return str(dtype_name(v.dtype), "[*]");
  std::string s = str(dtype_name(v.dtype), "[");
  for (size_t i = 0; i < v.shape.size(); ++i) {
    if (i) s += ",";
    if (v.shape[i] >= 0) s += std::to_string(v.shape[i]);
    else s += (i < v.dim_names.size() && !v.dim_names[i].empty()) ? v.dim_names[i] : "?";
  }
  return s + "]";
}

std::string dump_text(const Graph& g) {
  std::ostringstream os;
  os << "graph " << (g.name.empty() ? "main" : g.name) << " (opset " << g.opset << ")\n";
  for (Value* in : g.inputs) os << "  input %" << in->name << ": " << type_string(*in) << "\n";
  for (auto& v : g.values())
    if (v->constant) os << "  const %" << v->name << ": " << type_string(*v) << "\n";
  for (auto& n : g.nodes()) {
    os << "  ";
    for (size_t i = 0; i < n->outputs.size(); ++i) {
      if (i) os << ", ";
      os << (n->outputs[i] ? "%" + n->outputs[i]->name + ": " + type_string(*n->outputs[i]) : "_");
    }
    os << " = " << (n->domain.empty() ? "" : n->domain + ".") << n->op << "(";
    for (size_t i = 0; i < n->inputs.size(); ++i) os << (i ? ", " : "") << (n->inputs[i] ? "%" + n->inputs[i]->name : "_");
    os << ")";
    if (!n->attrs.all().empty()) {
      os << " {";
      bool first = true;
      for (auto& [k, a] : n->attrs.all()) {
        // Element-type attributes hold DType codes: show the name.
        bool is_type = (k == "to" || k == "dtype") && std::holds_alternative<int64_t>(a);
        os << (first ? "" : ", ") << k << "=" << (is_type ? dtype_name(DType(std::get<int64_t>(a))) : attribute_to_string(a));
        first = false;
      }
      os << "}";
    }
    os << "  # " << n->name << "\n";
  }
  for (Value* o : g.outputs) os << "  output %" << o->name << ": " << type_string(*o) << "\n";
  return os.str();
}

namespace {
std::string quote(const std::string& s) {
  std::string q = "\"";
  for (char c : s) q += (c == '"' || c == '\\') ? std::string("\\") + c : std::string(1, c);
  return q + "\"";
}
}  // namespace

std::string dump_dot(const Graph& g) {
  std::ostringstream os;
  os << "digraph tessera {\n  rankdir=TB;\n  node [shape=box, fontname=\"Helvetica\"];\n";
  for (Value* in : g.inputs) os << "  " << quote("in:" + in->name) << " [shape=ellipse, label=" << quote(in->name + "\\n" + type_string(*in)) << "];\n";
  for (auto& n : g.nodes()) {
    os << "  " << quote("n:" + n->name) << " [label=" << quote(n->op + "\\n" + n->name) << "];\n";
    for (Value* in : n->inputs) {
      if (!in || in->constant) continue;
      std::string from = in->producer ? "n:" + in->producer->name : "in:" + in->name;
      os << "  " << quote(from) << " -> " << quote("n:" + n->name) << " [label=" << quote(type_string(*in)) << "];\n";
    }
  }
  for (Value* o : g.outputs) {
    os << "  " << quote("out:" + o->name) << " [shape=ellipse, label=" << quote(o->name + "\\n" + type_string(*o)) << "];\n";
    std::string from = o->producer ? "n:" + o->producer->name : "in:" + o->name;
    os << "  " << quote(from) << " -> " << quote("out:" + o->name) << ";\n";
  }
  os << "}\n";
  return os.str();
}

}  // namespace tessera
