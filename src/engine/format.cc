// The .tsr engine file.
//
//   [0, 64)        header: magic "TESSERA\0", format version, offsets, sizes,
//                  CRC-32 of every byte after the header
//   [64, ...)      JSON: tessera version, target, settings, graph, weight table,
//                  and the engine cache's key when the file is a cache entry
//   [4096-aligned) weights, each 64-byte aligned, so a loader can mmap the
//                  file and hand kernels pointers into it
//
// A file from another tessera version, target or format is refused with a
// message saying so; a truncated or altered file fails the size or CRC check.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <nlohmann/json.hpp>

#include "core/npy.h"
#include "engine/engine.h"

namespace tessera {

using json = nlohmann::json;

namespace {

constexpr char kMagic[8] = {'T', 'E', 'S', 'S', 'E', 'R', 'A', '\0'};
constexpr uint32_t kFormatVersion = 1;
constexpr size_t kHeaderSize = 64, kWeightAlign = 64, kPage = 4096;

struct Header {
  char magic[8];
  uint32_t format_version;
  uint32_t crc;
  uint64_t json_offset, json_size, weights_offset, weights_size;
  uint8_t reserved[16];
};
static_assert(sizeof(Header) == kHeaderSize);

size_t align_up(size_t n, size_t a) { return (n + a - 1) / a * a; }

// Weights and tensor attributes go to one blob; JSON refers to them by index.
struct Blob {
  std::vector<const Tensor*> tensors;
  json table = json::array();
  size_t size = 0;
  int add(const Tensor& t) {
    size = align_up(size, kWeightAlign);
    table.push_back({{"dtype", dtype_name(t.dtype())}, {"shape", t.shape()}, {"offset", size}, {"nbytes", t.nbytes()}});
    size += t.nbytes();
    tensors.push_back(&t);
    return int(tensors.size()) - 1;
  }
};

json attr_to_json(const Attribute& a, Blob& blob) {
  struct V {
    Blob& blob;
    json operator()(int64_t v) const { return {{"int", v}}; }
    json operator()(float v) const { return {{"float", v}}; }
    json operator()(const std::string& v) const { return {{"string", v}}; }
    json operator()(const std::vector<int64_t>& v) const { return {{"ints", v}}; }
    json operator()(const std::vector<float>& v) const { return {{"floats", v}}; }
    json operator()(const std::vector<std::string>& v) const { return {{"strings", v}}; }
    json operator()(const Tensor& t) const { return {{"tensor", blob.add(t)}}; }
  };
  return std::visit(V{blob}, a);
}

json graph_to_json(const Graph& g, Blob& blob) {
  json values = json::array(), nodes = json::array(), ins = json::array(), outs = json::array();
  for (auto& v : g.values()) {
    json jv = {{"name", v->name}, {"dtype", dtype_name(v->dtype)}, {"shape", v->shape}, {"rank_known", v->rank_known},
               {"dim_names", v->dim_names}};
    if (v->constant) jv["weight"] = blob.add(*v->constant);
    values.push_back(jv);
  }
  for (auto& n : g.nodes()) {
    json jn = {{"name", n->name}, {"op", n->op}, {"domain", n->domain}, {"inputs", json::array()}, {"outputs", json::array()},
               {"attrs", json::object()}};
    for (Value* in : n->inputs) jn["inputs"].push_back(in ? json(in->name) : json());
    for (Value* o : n->outputs) jn["outputs"].push_back(o ? json(o->name) : json());
    for (auto& [k, a] : n->attrs.all()) jn["attrs"][k] = attr_to_json(a, blob);
    nodes.push_back(jn);
  }
  for (Value* v : g.inputs) ins.push_back(v->name);
  for (Value* v : g.outputs) outs.push_back(v->name);
  return {{"name", g.name}, {"opset", g.opset}, {"values", values}, {"nodes", nodes}, {"inputs", ins}, {"outputs", outs}};
}

json settings_to_json(const Settings& s) {
  return {{"target", s.target}, {"use_explicit_typing", s.use_explicit_typing}, {"min_block_size", s.min_block_size},
          {"input_shapes", s.input_shapes}, {"use_distributed_mode", s.use_distributed_mode},
          {"fuse_distributed_ops", s.fuse_distributed_ops}, {"tp_degree", s.tp_degree}, {"tp_rank", s.tp_rank},
          {"plan", s.plan_json}, {"tp_group", s.tp_group}, {"cuda_arch", s.cuda_arch},
          {"enable_autocast", s.enable_autocast}, {"autocast_dtype", dtype_name(s.autocast_dtype)}};
}

Settings settings_from_json(const json& j) {
  Settings s;
  s.target = j.at("target");
  s.use_explicit_typing = j.at("use_explicit_typing");
  s.min_block_size = j.at("min_block_size");
  s.input_shapes = j.at("input_shapes").get<std::map<std::string, Shape>>();
  s.use_distributed_mode = j.at("use_distributed_mode");
  s.fuse_distributed_ops = j.at("fuse_distributed_ops");
  s.tp_degree = j.at("tp_degree");
  s.tp_rank = j.at("tp_rank");
  s.plan_json = j.at("plan");
  s.tp_group = j.at("tp_group");
  s.cuda_arch = j.value("cuda_arch", "");
  s.enable_autocast = j.value("enable_autocast", false);
  s.autocast_dtype = dtype_from_name(j.value("autocast_dtype", "float16"));
  return s;
}

}  // namespace

void Engine::save(const std::string& path) const {
  Blob blob;
  json doc = {{"tessera_version", version_}, {"settings", settings_to_json(settings_)}};
  doc["graph"] = graph_to_json(*graph_, blob);
  doc["weights"] = blob.table;
  if (!cache_key_.empty()) doc["cache_key"] = cache_key_;
  std::string text = doc.dump();
  Header h{};
  std::memcpy(h.magic, kMagic, 8);
  h.format_version = kFormatVersion;
  h.json_offset = kHeaderSize;
  h.json_size = text.size();
  h.weights_offset = align_up(kHeaderSize + text.size(), kPage);
  h.weights_size = blob.size;
  std::string file(h.weights_offset + blob.size, '\0');
  std::memcpy(file.data() + kHeaderSize, text.data(), text.size());
  for (size_t i = 0; i < blob.tensors.size(); ++i) {
    const Tensor& t = *blob.tensors[i];
    if (t.nbytes()) std::memcpy(file.data() + h.weights_offset + size_t(blob.table[i]["offset"]), t.raw(), t.nbytes());
  }
  h.crc = uint32_t(crc32_z(0, reinterpret_cast<const Bytef*>(file.data() + kHeaderSize), file.size() - kHeaderSize));
  std::memcpy(file.data(), &h, sizeof h);
  write_file_atomic(path, file);
}

namespace {

struct Mapping {
  void* addr = nullptr;
  size_t size = 0;
  ~Mapping() { if (addr) munmap(addr, size); }
};

std::shared_ptr<Mapping> map_file(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) fail(ErrorKind::Io, path, ": cannot open (", std::strerror(errno), ")");
  struct stat st{};
  ::fstat(fd, &st);
  auto m = std::make_shared<Mapping>();
  m->size = size_t(st.st_size);
  if (m->size < kHeaderSize) {
    ::close(fd);
    fail(ErrorKind::Parse, path, ": not a tessera engine (", m->size, " bytes, too short for the header)");
  }
  // Private, writable mapping: pages are shared with the page cache until written.
  void* p = ::mmap(nullptr, m->size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (p == MAP_FAILED) fail(ErrorKind::Io, path, ": cannot mmap (", std::strerror(errno), ")");
  m->addr = p;
  return m;
}

Attribute attr_from_json(const json& j, const std::vector<Tensor>& weights) {
  if (j.contains("int")) return j["int"].get<int64_t>();
  if (j.contains("float")) return j["float"].get<float>();
  if (j.contains("string")) return j["string"].get<std::string>();
  if (j.contains("ints")) return j["ints"].get<std::vector<int64_t>>();
  if (j.contains("floats")) return j["floats"].get<std::vector<float>>();
  if (j.contains("strings")) return j["strings"].get<std::vector<std::string>>();
  return weights.at(j.at("tensor").get<size_t>());
}

Graph graph_from_json(const json& j, const std::vector<Tensor>& weights) {
  Graph g;
  g.name = j.at("name");
  g.opset = j.at("opset");
  for (const json& jv : j.at("values")) {
    Value* v = g.add_value(jv.at("name"), dtype_from_name(jv.at("dtype")), jv.at("shape").get<Shape>());
    v->rank_known = jv.at("rank_known");
    v->dim_names = jv.at("dim_names").get<std::vector<std::string>>();
    if (jv.contains("weight")) v->constant = weights.at(jv["weight"].get<size_t>());
  }
  auto find = [&](const json& name) -> Value* {
    if (name.is_null()) return nullptr;
    Value* v = g.find_value(name.get<std::string>());
    if (!v) fail(ErrorKind::Parse, "engine graph refers to unknown value '", name.get<std::string>(), "'");
    return v;
  };
  for (const json& jn : j.at("nodes")) {
    std::vector<Value*> ins, outs;
    for (const json& x : jn.at("inputs")) ins.push_back(find(x));
    for (const json& x : jn.at("outputs")) outs.push_back(find(x));
    Attributes attrs;
    for (auto& [k, a] : jn.at("attrs").items()) attrs.set(k, attr_from_json(a, weights));
    Node* n = g.add_node(jn.at("op"), jn.at("name"), ins, outs, std::move(attrs));
    n->domain = jn.at("domain");
  }
  for (const json& x : j.at("inputs")) g.inputs.push_back(find(x));
  for (const json& x : j.at("outputs")) g.outputs.push_back(find(x));
  return g;
}

}  // namespace

Engine Engine::load(const std::string& path) {
  std::shared_ptr<Mapping> m = map_file(path);
  const char* base = static_cast<const char*>(m->addr);
  Header h;
  std::memcpy(&h, base, sizeof h);
  if (std::memcmp(h.magic, kMagic, 8) != 0) fail(ErrorKind::Parse, path, ": not a tessera engine file (bad magic)");
  if (h.format_version != kFormatVersion)
    fail(ErrorKind::Parse, path, ": engine format version ", h.format_version, ", this tessera reads version ", kFormatVersion, "; rebuild the engine");
  if (h.json_offset != kHeaderSize || h.json_size > m->size || h.weights_offset > m->size || h.weights_size > m->size - h.weights_offset ||
      h.json_offset + h.json_size > h.weights_offset || h.weights_offset + h.weights_size != m->size)
    fail(ErrorKind::Parse, path, ": truncated or corrupt engine (sizes in the header do not match the file's ", m->size, " bytes)");
  uint32_t crc = uint32_t(crc32_z(0, reinterpret_cast<const Bytef*>(base + kHeaderSize), m->size - kHeaderSize));
  if (crc != h.crc) fail(ErrorKind::Parse, path, ": corrupt engine (checksum mismatch); rebuild it");
  json doc;
  try {
    doc = json::parse(base + h.json_offset, base + h.json_offset + h.json_size);
    std::string version = doc.at("tessera_version");
    if (version != tessera_version())
      fail(ErrorKind::InvalidArgument, path, ": engine was built by tessera ", version, ", this is tessera ", tessera_version(), "; rebuild it");
    Settings settings = settings_from_json(doc.at("settings"));
    std::vector<Tensor> weights;
    for (const json& w : doc.at("weights")) {
      size_t off = w.at("offset"), nbytes = w.at("nbytes");
      if (off + nbytes > h.weights_size) fail(ErrorKind::Parse, path, ": weight table points outside the file");
      char* p = static_cast<char*>(m->addr) + h.weights_offset + off;
      weights.push_back(Tensor::view(dtype_from_name(w.at("dtype")), w.at("shape").get<Shape>(), p, m));
    }
    auto g = std::make_unique<Graph>(graph_from_json(doc.at("graph"), weights));
    Engine e(std::move(g), std::move(settings), version);
    e.cache_key_ = doc.value("cache_key", "");
    return e;
  } catch (const json::exception& e) {
    fail(ErrorKind::Parse, path, ": corrupt engine description (", e.what(), ")");
  }
}

std::string settings_json(const Settings& s) { return settings_to_json(s).dump(); }

uint32_t engine_format_version() { return kFormatVersion; }

}  // namespace tessera
