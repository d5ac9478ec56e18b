#include "frontend/onnx/external_data.h"

#include <filesystem>
#include <set>

#include "core/error.h"
#include "core/npy.h"
#include "onnx/onnx.pb.h"

namespace tessera::onnx {

namespace {
void add_tensor(const ::onnx::TensorProto& t, std::set<std::string>& out) {
  if (t.data_location() != ::onnx::TensorProto::EXTERNAL) return;
  for (const auto& kv : t.external_data())
    if (kv.key() == "location") out.insert(kv.value());
}

void add_graph(const ::onnx::GraphProto& g, std::set<std::string>& out) {
  for (const auto& init : g.initializer()) add_tensor(init, out);
  for (const auto& n : g.node())
    for (const auto& a : n.attribute()) {
      if (a.has_t()) add_tensor(a.t(), out);
      for (const auto& t : a.tensors()) add_tensor(t, out);
      if (a.has_g()) add_graph(a.g(), out);
      for (const auto& sub : a.graphs()) add_graph(sub, out);
    }
}
}  // namespace

std::vector<std::string> external_data_files(const std::string& model_path) {
  ::onnx::ModelProto m;
  std::string bytes = read_file(model_path);
  if (bytes.empty() || !m.ParseFromString(bytes))
    fail(ErrorKind::Parse, model_path, ": not a valid ONNX model (protobuf parse failed: truncated or not an .onnx file)");
  std::set<std::string> locations;
  add_graph(m.graph(), locations);
  std::filesystem::path dir = std::filesystem::path(model_path).parent_path();
  std::vector<std::string> files;
  for (const std::string& loc : locations) files.push_back((dir / loc).string());
  return files;
}

}  // namespace tessera::onnx
