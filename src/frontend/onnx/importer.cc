#include "frontend/onnx/importer.h"

#include <filesystem>
#include <iostream>
#include <map>
#include <set>

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/wire_format_lite.h>

#include "core/error.h"
#include "core/npy.h"
#include "frontend/onnx/tensor_proto.h"
#include "ir/op_registry.h"

namespace tessera::onnx {

namespace {

using ::onnx::AttributeProto;
using ::onnx::GraphProto;
using ::onnx::ModelProto;
using ::onnx::NodeProto;
using ::onnx::ValueInfoProto;

// Domains whose ops tessera maps onto its IR; the value is the IR op prefix.
bool known_domain(const std::string& d) { return d.empty() || d == "ai.onnx" || d == "com.microsoft"; }
// com.microsoft contrib ops tessera registers besides the collectives (ONNX Runtime's own
// inputs and outputs: ops/skip_norm.cc).
bool known_contrib_op(const std::string& op) {
  return op == "SkipLayerNormalization" || op == "SkipSimplifiedLayerNormalization";
}

Attribute convert_attribute(const AttributeProto& a, const NodeProto& n, const std::string& base_dir) {
  switch (a.type()) {
    case AttributeProto::INT:
      // Element-type attributes are stored as tessera DType codes inside the IR.
      if (a.name() == "to" || a.name() == "dtype")
        return int64_t(dtype_from_onnx(int32_t(a.i()), "node '" + n.name() + "' attribute '" + a.name() + "'"));
      return int64_t(a.i());
    case AttributeProto::FLOAT: return a.f();
    case AttributeProto::STRING: return a.s();
    case AttributeProto::INTS: return std::vector<int64_t>(a.ints().begin(), a.ints().end());
    case AttributeProto::FLOATS: return std::vector<float>(a.floats().begin(), a.floats().end());
    case AttributeProto::STRINGS: return std::vector<std::string>(a.strings().begin(), a.strings().end());
    case AttributeProto::TENSOR: return tensor_from_proto(a.t(), base_dir);
    default: break;
  }
  fail(ErrorKind::Unsupported, "node '", n.name(), "' (", n.op_type(), "): attribute '", a.name(), "' of kind ",
       AttributeProto::AttributeType_Name(a.type()), " is not supported (subgraphs and sparse tensors are not)");
}

// The module path a node came from. torch.onnx's dynamo exporter names nodes
// and weights after the traced ops ("node_linear_3", "val_50") and keeps the
// module stack only in metadata_props: "namespace" is
//   ": Root/lm: Cls/lm.model.layers.0.self_attn.q_proj: Linear/linear: aten.linear.default"
// (one "path: class" per module, then the node itself); newer versions also
// write "pkg.torch.onnx.name_scopes", the same paths as a Python list.
// Returns the innermost module's path, "" when neither is there.
//
// The schema tessera compiles (Debian's onnx.proto) predates
// NodeProto.metadata_props (field 9), so protobuf keeps it among the node's
// unknown fields (raw wire bytes in the lite runtime); read it from there.
std::vector<std::pair<std::string, std::string>> node_metadata(const NodeProto& n) {
  using WFL = google::protobuf::internal::WireFormatLite;
  std::vector<std::pair<std::string, std::string>> out;
  const std::string& raw = n.unknown_fields();
  if (raw.empty()) return out;
  google::protobuf::io::CodedInputStream in(reinterpret_cast<const uint8_t*>(raw.data()), int(raw.size()));
  while (uint32_t tag = in.ReadTag()) {
    if (WFL::GetTagFieldNumber(tag) == 9 && WFL::GetTagWireType(tag) == WFL::WIRETYPE_LENGTH_DELIMITED) {
      std::string bytes;
      uint32_t len = 0;
      if (!in.ReadVarint32(&len) || !in.ReadString(&bytes, int(len))) break;
      ::onnx::StringStringEntryProto kv;
      if (kv.ParseFromString(bytes)) out.emplace_back(kv.key(), kv.value());
    } else if (!WFL::SkipField(&in, tag)) {
      break;
    }
  }
  return out;
}

std::string module_scope(const NodeProto& n) {
  std::vector<std::pair<std::string, std::string>> meta = node_metadata(n);
  auto strip = [](std::string p) {  // a module called more than once: "mlp.act@1"
    size_t at = p.rfind('@');
    if (at != std::string::npos && at + 1 < p.size() && p.find_first_not_of("0123456789", at + 1) == std::string::npos) p.resize(at);
    return p;
  };
  for (const auto& [key, s] : meta) {
    if (key != "namespace") continue;
    std::vector<std::string> paths;
    for (size_t b = 0; b <= s.size();) {
      size_t e = s.find('/', b);
      if (e == std::string::npos) e = s.size();
      std::string seg = s.substr(b, e - b);
      paths.push_back(seg.substr(0, seg.find(": ")));
      b = e + 1;
    }
    if (paths.size() >= 2) return strip(paths[paths.size() - 2]);  // the last segment is the node itself
  }
  for (const auto& [key, s] : meta) {
    if (key != "pkg.torch.onnx.name_scopes") continue;
    std::vector<std::string> items;  // "['', 'lm', 'lm.model', ..., 'linear']"
    for (size_t i = 0; i < s.size(); ++i) {
      if (s[i] != '\'' && s[i] != '"') continue;
      char q = s[i];
      std::string item;
      for (++i; i < s.size() && s[i] != q; ++i) item += s[i] == '\\' && i + 1 < s.size() ? s[++i] : s[i];
      items.push_back(item);
    }
    if (items.size() >= 2) return strip(items[items.size() - 2]);
  }
  return "";
}

Value* add_typed_value(Graph& g, const ValueInfoProto& vi) {
  const auto& tt = vi.type().tensor_type();
  if (!vi.type().has_tensor_type())
    fail(ErrorKind::Unsupported, "graph value '", vi.name(), "': only tensor types are supported (no sequences, maps or optionals)");
  DType dtype = dtype_from_onnx(tt.elem_type(), "graph value '" + vi.name() + "'");
  Shape shape;
  std::vector<std::string> names;
  for (const auto& d : tt.shape().dim()) {
    shape.push_back(d.has_dim_value() ? d.dim_value() : kUnknownDim);
    names.push_back(d.has_dim_param() ? d.dim_param() : "");
  }
  Value* v = g.add_value(vi.name(), dtype, shape);
  v->rank_known = tt.has_shape();
  v->dim_names = names;
  return v;
}

class Importer {
 public:
  Importer(const ModelProto& m, std::string path, std::string base_dir)
      : model_(m), path_(std::move(path)), base_dir_(std::move(base_dir)) {}

  Graph run() {
    check_opsets();
    const GraphProto& gp = model_.graph();
    g_.name = gp.name();
    for (const auto& init : gp.initializer()) {
      if (g_.find_value(init.name())) fail(ErrorKind::Parse, path_, ": initializer '", init.name(), "' is defined twice");
      g_.add_constant(init.name(), tensor_from_proto(init, base_dir_));
    }
    for (const auto& in : gp.input())
      if (!g_.find_value(in.name())) g_.inputs.push_back(add_typed_value(g_, in));
    for (const auto& n : gp.node()) add_node(n);
    for (const auto& out : gp.output()) {
      Value* v = g_.find_value(out.name());
      if (!v) fail(ErrorKind::Parse, path_, ": graph output '", out.name(), "' is produced by no node");
      apply_declared_type(v, out);
      g_.outputs.push_back(v);
    }
    check_supported();
    return std::move(g_);
  }

 private:
  void check_opsets() {
    for (const auto& op : model_.opset_import()) {
      if (op.domain().empty() || op.domain() == "ai.onnx") g_.opset = op.version();
    }
    if (g_.opset < kMinOpset)
      fail(ErrorKind::Unsupported, path_, ": opset ", g_.opset, " is older than tessera supports (", kMinOpset, "..", kMaxOpset,
           "); re-export with opset_version=17 or newer");
    if (g_.opset > kMaxOpset)
      std::cerr << "tessera: warning: " << path_ << " uses opset " << g_.opset << ", newer than tested (" << kMaxOpset
                << "); ops are read with their opset-" << kMaxOpset << " meaning\n";
  }

  void apply_declared_type(Value* v, const ValueInfoProto& vi) {
    if (!vi.type().has_tensor_type() || !vi.type().tensor_type().has_shape()) return;
    v->dim_names.clear();
    Shape s;
    for (const auto& d : vi.type().tensor_type().shape().dim()) {
      s.push_back(d.has_dim_value() ? d.dim_value() : kUnknownDim);
      v->dim_names.push_back(d.has_dim_param() ? d.dim_param() : "");
    }
    if (!v->producer && !v->is_constant()) return;
    if (v->shape.empty() && !s.empty()) v->shape = s;
  }

  Value* input_value(const NodeProto& n, const std::string& name) {
    if (name.empty()) return nullptr;
    Value* v = g_.find_value(name);
    if (!v) fail(ErrorKind::Parse, path_, ": node '", n.name(), "' (", n.op_type(), ") reads '", name, "', which nothing defines before it");
    return v;
  }

  // com.microsoft AllReduce/AllGather/AllToAll take any number of tensors;
  // the IR has one collective per tensor, issued in input order.
  void add_collective(const NodeProto& n, const std::string& name) {
    if (n.input_size() != n.output_size())
      fail(ErrorKind::Parse, path_, ": node '", name, "' (", n.op_type(), ") has ", n.input_size(), " inputs but ", n.output_size(), " outputs");
    for (int i = 0; i < n.input_size(); ++i) {
      Attributes attrs;
      for (const auto& a : n.attribute())
        if (a.name() == "axis" || a.name() == "group_size") attrs.set(a.name(), int64_t(a.i()));
      if (n.op_type() == "AllReduce") attrs.set("reduce", std::string("sum"));
      if (n.op_type() != "AllReduce" && !attrs.has("group_size")) attrs.set("group_size", int64_t(1));
      if (g_.find_value(n.output(i))) fail(ErrorKind::Parse, path_, ": value '", n.output(i), "' is produced twice (node '", name, "')");
      Value* out = g_.add_value(n.output(i), DType::f32, {});
      out->rank_known = false;
      std::string node_name = n.input_size() == 1 ? name : name + "/" + std::to_string(i);
      g_.add_node(n.op_type(), node_name, {input_value(n, n.input(i))}, {out}, std::move(attrs));
    }
  }

  void add_node(const NodeProto& n) {
    std::string name = n.name().empty() ? g_.unique_name(n.op_type()) : n.name();
    if (n.domain() == "com.microsoft" && (n.op_type() == "AllReduce" || n.op_type() == "AllGather" || n.op_type() == "AllToAll"))
      return add_collective(n, name);
    if (!known_domain(n.domain()) || (n.domain() == "com.microsoft" && !known_contrib_op(n.op_type()))) {
      unsupported_[(n.domain().empty() ? "" : n.domain() + "::") + n.op_type()].push_back(name);
    } else if (!OpRegistry::find(n.op_type()) || (n.domain() != "com.microsoft" && known_contrib_op(n.op_type()))) {
      unsupported_[n.op_type()].push_back(name);
    }
    Attributes attrs;
    for (const auto& a : n.attribute()) attrs.set(a.name(), convert_attribute(a, n, base_dir_));
    std::vector<Value*> ins, outs;
    for (const auto& in : n.input()) ins.push_back(input_value(n, in));
    for (const auto& out : n.output()) {
      if (out.empty()) { outs.push_back(nullptr); continue; }
      if (g_.find_value(out)) fail(ErrorKind::Parse, path_, ": value '", out, "' is produced twice (node '", name, "')");
      outs.push_back(g_.add_value(out, DType::f32, {}));
      outs.back()->rank_known = false;
    }
    Node* node = g_.add_node(n.op_type(), name, std::move(ins), std::move(outs), std::move(attrs));
    node->domain = n.domain() == "ai.onnx" ? "" : n.domain();
    node->scope = module_scope(n);
  }

  void check_supported() {
    if (unsupported_.empty()) return;
    std::string msg;
    size_t count = 0;
    for (auto& [op, nodes] : unsupported_) {
      msg += (msg.empty() ? "" : "; ") + op + " (";
      for (size_t i = 0; i < nodes.size() && i < 5; ++i) msg += (i ? ", " : "") + nodes[i];
      if (nodes.size() > 5) msg += str(", and ", nodes.size() - 5, " more");
      msg += ")";
      count += nodes.size();
    }
    fail(ErrorKind::Unsupported, path_, ": ", unsupported_.size(), " unsupported op type(s) in ", count, " node(s): ", msg);
  }

  const ModelProto& model_;
  std::string path_, base_dir_;
  Graph g_;
  std::map<std::string, std::vector<std::string>> unsupported_;
};

}  // namespace

Graph import_model_bytes(const std::string& bytes, const std::string& path, const std::string& base_dir) {
  ModelProto m;
  if (bytes.empty() || !m.ParseFromString(bytes))
    fail(ErrorKind::Parse, path, ": not a valid ONNX model (protobuf parse failed: truncated or not an .onnx file)");
  if (!m.has_graph() || m.ir_version() <= 0 || m.opset_import_size() == 0)
    fail(ErrorKind::Parse, path, ": not a valid ONNX model (no graph, ir_version or opset_import)");
  return Importer(m, path, base_dir).run();
}

Graph import_model(const std::string& path) {
  std::string dir = std::filesystem::path(path).parent_path().string();
  return import_model_bytes(read_file(path), path, dir.empty() ? "." : dir);
}

}  // namespace tessera::onnx
