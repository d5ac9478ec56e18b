// Engine: a compiled graph for one target, with its weights. Built from an
// ONNX file or an in-memory Graph, saved to and loaded from a .tsr file
// (engine/format.h), and run on named host tensors.
#pragma once
#include <map>
#include <memory>
#include <set>
#include <string>

#include "backend/cpu/executor.h"
#include "core/error.h"
#include "engine/settings.h"
#include "ir/graph.h"

namespace tessera {

namespace cuda { class Executor; }

class Engine {
 public:
  // Run the pass pipeline on `g` and prepare it for `settings.target`.
  static Engine build(Graph g, const Settings& settings);
  static Engine build_onnx(const std::string& model_path, const Settings& settings);
  // Load a .tsr file; weights stay in the mapped file.
  static Engine load(const std::string& path);
  // Write atomically: a failure leaves no file behind.
  void save(const std::string& path) const;

  // Inputs are checked by name, dtype and shape against the graph first.
  std::map<std::string, Tensor> run(const std::map<std::string, Tensor>& inputs,
                                    const cpu::NodeTimer& timer = {}) const;
  // Only the named outputs, on the host: a cuda engine copies just those (a
  // decode step's token ids rather than its logits).
  std::map<std::string, Tensor> run_outputs(const std::map<std::string, Tensor>& inputs, const std::set<std::string>& names) const;

  // Communicators for collective nodes: the world, and named mesh axes
  // ("tp", "dp") that nodes select with their `group` attribute.
  // A tensor-parallel engine refuses a communicator whose rank or size is not
  // the shard it was built for.
  void set_communicator(std::shared_ptr<dist::Communicator> world);
  void set_group(const std::string& name, std::shared_ptr<dist::Communicator> c);

  // Run options (CUDA graphs, the GPU); take effect before the first CUDA run.
  void set_runtime(const RuntimeOptions& r) { runtime_ = r; }
  // Outputs on the device, valid until the next run (target cuda only); the
  // caller synchronises the engine's stream (cuda_stream()) before reading them.
  std::map<std::string, Tensor> run_device(const std::map<std::string, Tensor>& inputs) const;
  void* cuda_stream() const;
  // `tessera bench`: one run's time in ms — CUDA events around a run on
  // device-resident inputs (prepare them with bench_inputs) for cuda engines,
  // wall time for cpu ones.
  double timed_run(const std::map<std::string, Tensor>& inputs) const;
  std::map<std::string, Tensor> bench_inputs(const std::map<std::string, Tensor>& host_inputs) const;
  // Copies of host tensors where the engine runs (the GPU for cuda engines;
  // the tensors themselves for cpu ones), e.g. a KV cache that persists
  // between runs: a graph input updated in place (TensorScatter inplace=1)
  // and passed on the device is updated at that address, with no copy.
  std::map<std::string, Tensor> to_device(const std::map<std::string, Tensor>& host) const;
  // The CUDA executor (made on first use; refuses a GPU of another architecture).
  cuda::Executor& cuda_executor() const;

  const Graph& graph() const { return *graph_; }
  const Settings& settings() const { return settings_; }
  const std::string& version() const { return version_; }
  // The engine cache's record of the key this entry was built for (JSON text,
  // engine/cache.h; empty outside the cache). Saved in the file, under its checksum.
  const std::string& cache_key() const { return cache_key_; }
  void set_cache_key(std::string key) { cache_key_ = std::move(key); }

 private:
  Engine(std::unique_ptr<Graph> g, Settings s, std::string version);
  std::unique_ptr<Graph> graph_;  // heap: the executor keeps a reference across moves
  Settings settings_;
  std::string version_;
  std::string cache_key_;
  std::unique_ptr<cpu::Executor> exec_;
  cpu::Communicators comms_;
  RuntimeOptions runtime_;
  mutable std::shared_ptr<cuda::Executor> cuda_;
};

// Throws InvalidArgument naming the input and the expected/received dtype or shape.
void check_inputs(const Graph& g, const std::map<std::string, Tensor>& inputs);

const char* tessera_version();
// The .tsr format version this tessera writes and reads.
uint32_t engine_format_version();
// The settings as an engine file records them (JSON text); the engine cache keys on it.
std::string settings_json(const Settings& s);
std::string type_string_of(const Value& v);

}  // namespace tessera
