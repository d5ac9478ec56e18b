// Checkpoint: a model directory's safetensors files behind one name → tensor
// lookup (single file or index + shards), and the random-checkpoint writer.
#include "frontend/hf/checkpoint.h"

#include <sys/stat.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "core/error.h"

namespace tessera::hf {

using json = nlohmann::json;
namespace fs = std::filesystem;

namespace {

constexpr const char* kSingle = "model.safetensors";
constexpr const char* kIndex = "model.safetensors.index.json";

bool exists(const std::string& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0;
}

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  if (!in) fail(ErrorKind::Io, path, ": cannot open");
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// weight_map of an index file: tensor → shard file name.
std::map<std::string, std::string> read_weight_map(const std::string& index_path) {
  json j = json::parse(read_text(index_path), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object() || !j.contains("weight_map") || !j["weight_map"].is_object())
    fail(ErrorKind::Parse, index_path, ": not a safetensors index (needs a 'weight_map' object)");
  std::map<std::string, std::string> map;
  for (auto& [name, file] : j["weight_map"].items()) {
    if (!file.is_string()) fail(ErrorKind::Parse, index_path, ": weight_map entry '", name, "' is not a file name");
    map[name] = file.get<std::string>();
  }
  return map;
}

[[noreturn]] void fail_no_weights(const std::string& dir) {
  if (exists(dir + "/pytorch_model.bin") || exists(dir + "/pytorch_model.bin.index.json"))
    fail(ErrorKind::Unsupported, dir,
         ": holds pytorch_model.bin (pickle), which tessera does not read; re-save it with "
         "model.save_pretrained(dir, safe_serialization=True) to get model.safetensors");
  fail(ErrorKind::Io, dir, ": no ", kSingle, " or ", kIndex, " found");
}

}  // namespace

Checkpoint Checkpoint::open(const std::string& path) {
  Checkpoint c;
  std::string dir = path, single, index;
  if (ends_with(path, ".index.json")) index = path, dir = fs::path(path).parent_path().string();
  else if (ends_with(path, ".safetensors")) single = path, dir = fs::path(path).parent_path().string();
  else if (exists(path + "/" + kIndex)) index = path + "/" + kIndex;
  else if (exists(path + "/" + kSingle)) single = path + "/" + kSingle;
  else if (!exists(path)) fail(ErrorKind::Io, path, ": no such checkpoint directory");
  else fail_no_weights(path);
  if (dir.empty()) dir = ".";
  c.dir_ = dir;
  if (!single.empty()) {
    c.files_.push_back(std::make_shared<SafetensorsFile>(SafetensorsFile::open(single)));
    for (const std::string& n : c.files_[0]->names()) c.where_[n] = 0;
    return c;
  }
  std::map<std::string, size_t> file_ids;
  for (auto& [name, file] : read_weight_map(index)) {
    auto [it, fresh] = file_ids.emplace(file, c.files_.size());
    const std::string shard = dir + "/" + file;
    if (fresh) {
      if (!exists(shard))
        fail(ErrorKind::Io, shard, ": shard file missing (", index, " puts tensor '", name, "' in it)");
      c.files_.push_back(std::make_shared<SafetensorsFile>(SafetensorsFile::open(shard)));
    }
    if (!c.files_[it->second]->has(name))
      fail(ErrorKind::Parse, shard, ": has no tensor '", name, "', which ", index, " says it holds");
    c.where_[name] = it->second;
  }
  return c;
}

std::vector<std::string> Checkpoint::names() const {
  std::vector<std::string> out;
  for (auto& [n, i] : where_) out.push_back(n);
  return out;
}

const std::string* Checkpoint::resolve(const std::string& name) const {
  auto it = where_.find(name);
  if (it != where_.end()) return &it->first;
  const std::string prefix = "transformer.";
  if (name.rfind(prefix, 0) == 0) {
    it = where_.find(name.substr(prefix.size()));
    if (it != where_.end()) return &it->first;
  }
  return nullptr;
}

bool Checkpoint::has(const std::string& name) const { return resolve(name) != nullptr; }

const SafetensorsFile& Checkpoint::file(const std::string& name) const {
  const std::string* key = resolve(name);
  if (!key) fail(ErrorKind::InvalidArgument, dir_, ": checkpoint has no tensor '", name, "'");
  return *files_[where_.at(*key)];
}

const std::string& Checkpoint::file_of(const std::string& name) const { return file(name).path(); }

const TensorInfo& Checkpoint::info(const std::string& name) const {
  return file(name).info(*resolve(name));
}

Tensor Checkpoint::tensor(const std::string& name) const { return file(name).tensor(*resolve(name)); }

Tensor Checkpoint::slice(const std::string& name, int64_t dim, int64_t start, int64_t length) const {
  return file(name).slice(*resolve(name), dim, start, length);
}

// ---- random checkpoints ----------------------------------------------------

namespace {

uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

uint64_t name_hash(const std::string& s) {
  uint64_t h = 0xCBF29CE484222325ull;  // FNV-1a
  for (unsigned char ch : s) h = (h ^ ch) * 0x100000001B3ull;
  return h;
}

bool is_norm_weight(const std::string& n) {
  return n.find("ln_") != std::string::npos || n.find("layernorm") != std::string::npos ||
         n == "model.norm.weight";
}

// transformers' _init_weights: biases 0, norm weights 1, the rest N(0, 0.02);
// GPT-2 scales its residual projections (c_proj) by 1/sqrt(2 * n_layer).
Tensor init_tensor(const ModelConfig& cfg, const ExpectedTensor& e, DType dtype, uint64_t seed) {
  Tensor t = Tensor::empty(DType::f32, e.shape);
  float* p = t.data<float>();
  const int64_t n = t.numel();
  const bool bias = ends_with(e.name, ".bias");
  if (bias || is_norm_weight(e.name)) {
    std::fill(p, p + n, bias ? 0.0f : 1.0f);
    return t.cast(dtype);
  }
  double std = 0.02;
  if (cfg.model_type == "gpt2" && ends_with(e.name, "c_proj.weight")) std /= std::sqrt(2.0 * double(cfg.layers));
  uint64_t state = seed ^ name_hash(e.name);
  for (int64_t i = 0; i < n; i += 2) {  // Box-Muller: two normals per pair of uniforms
    double u1 = (double(splitmix64(state) >> 11) + 1.0) * 0x1.0p-53, u2 = double(splitmix64(state) >> 11) * 0x1.0p-53;
    double r = std * std::sqrt(-2.0 * std::log(u1)), a = 2.0 * M_PI * u2;
    p[i] = float(r * std::cos(a));
    if (i + 1 < n) p[i + 1] = float(r * std::sin(a));
  }
  return t.cast(dtype);
}

void write_text_atomically(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << text;
    if (!out.flush()) fail(ErrorKind::Io, path, ": write failed");
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) fail(ErrorKind::Io, path, ": cannot rename into place");
}

// Greedy in module order, as save_pretrained does: a new shard once the next
// tensor would overflow the current one (a tensor larger than the limit gets its own).
std::vector<std::vector<size_t>> plan_shards(const std::vector<ExpectedTensor>& ts, DType dtype, int64_t max_bytes) {
  std::vector<std::vector<size_t>> shards(1);
  int64_t used = 0;
  for (size_t i = 0; i < ts.size(); ++i) {
    int64_t bytes = numel(ts[i].shape) * int64_t(dtype_size(dtype));
    if (max_bytes > 0 && !shards.back().empty() && used + bytes > max_bytes) shards.emplace_back(), used = 0;
    shards.back().push_back(i);
    used += bytes;
  }
  return shards;
}

void write_shard(const std::string& path, const ModelConfig& cfg, const std::vector<ExpectedTensor>& ts,
                 const std::vector<size_t>& ids, DType dtype, uint64_t seed) {
  std::vector<TensorSpec> specs;
  for (size_t i : ids) specs.push_back({ts[i].name, dtype, ts[i].shape});
  // transformers refuses safetensors files without format metadata.
  write_safetensors(path, specs, [&](size_t k) { return init_tensor(cfg, ts[ids[k]], dtype, seed); },
                    {{"format", "pt"}});
}

}  // namespace

void write_random_checkpoint(const ModelConfig& cfg_in, DType dtype, uint64_t seed, const std::string& dir,
                             int64_t max_shard_bytes) {
  if (!is_float(dtype) || dtype == DType::f64)
    fail(ErrorKind::InvalidArgument, "make-checkpoint: dtype ", dtype_name(dtype), " (expected f32, f16 or bf16)");
  ModelConfig cfg = cfg_in;
  cfg.dtype = dtype;
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) fail(ErrorKind::Io, dir, ": cannot create directory (", ec.message(), ")");
  const std::vector<ExpectedTensor> ts = expected_tensors(cfg);
  const auto shards = plan_shards(ts, dtype, max_shard_bytes);
  // Remove the other layout, so a reader never finds a stale one first.
  fs::remove(dir + "/" + (shards.size() > 1 ? kSingle : kIndex), ec);
  if (shards.size() == 1) {
    write_shard(dir + "/" + kSingle, cfg, ts, shards[0], dtype, seed);
  } else {
    json map = json::object();
    int64_t total = 0;
    for (size_t s = 0; s < shards.size(); ++s) {
      char name[64];
      std::snprintf(name, sizeof name, "model-%05zu-of-%05zu.safetensors", s + 1, shards.size());
      write_shard(dir + "/" + name, cfg, ts, shards[s], dtype, seed);
      for (size_t i : shards[s]) map[ts[i].name] = name, total += numel(ts[i].shape) * int64_t(dtype_size(dtype));
    }
    json index = {{"metadata", {{"total_size", total}}}, {"weight_map", map}};
    write_text_atomically(dir + "/" + kIndex, index.dump(2) + "\n");
  }
  write_text_atomically(dir + "/config.json", model_config_json(cfg));
}

}  // namespace tessera::hf
