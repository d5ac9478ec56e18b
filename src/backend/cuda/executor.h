// Runs a Graph on one GPU. For every new set of input shapes the executor
// makes a Plan: it evaluates on the host what shapes alone determine (Shape
// chains, masks built from constants), infers every output type, gives each
// activation an offset in one arena by lifetime (values that are never live
// at once share bytes), and records the kernel steps. The plan's first run is
// eager (kernels build their per-shape state then); it is then captured once
// into a CUDA graph that later runs replay (cuda_graph=false runs step by
// step). Ops with no CUDA kernel run their CPU reference kernel on pinned
// host copies, inside the same stream order (host nodes in the graph).
//
// This header is CUDA-free so the engine and the CLI need no CUDA includes.
#pragma once
#include <map>
#include <memory>
#include <set>
#include <string>

#include "backend/cpu/executor.h"
#include "ir/graph.h"

namespace tessera::cuda {

struct ExecutorOptions {
  int device = 0;
  bool cuda_graph = true;
  bool verbose = false;
};

// What `tessera inspect` and the OOM message report about a plan.
struct PlanStats {
  size_t weight_bytes = 0;       // weights on the device
  size_t arena_bytes = 0;        // activations (the planned peak)
  size_t naive_bytes = 0;        // activations without reuse, for comparison
  size_t steps = 0, fallback_steps = 0;
  bool graph_captured = false;
};

class Executor {
 public:
  Executor(const Graph& g, const ExecutorOptions& opt);
  ~Executor();
  // Host tensors in and out. With a timer the run is eager, timed per node with CUDA events.
  // `only`: copy just these outputs to the host (null: all of them).
  std::map<std::string, Tensor> run(const std::map<std::string, Tensor>& inputs, const cpu::NodeTimer& timer = {},
                                    const cpu::Communicators* comms = nullptr, const std::set<std::string>* only = nullptr);
  // Inputs on the host or the device; outputs stay on the device (valid until
  // the next run) and the stream is not synchronised.
  std::map<std::string, Tensor> run_device(const std::map<std::string, Tensor>& inputs, const cpu::Communicators* comms = nullptr);
  void synchronize();
  // One run on device-resident inputs, timed with CUDA events on the stream (ms).
  double timed_run(const std::map<std::string, Tensor>& inputs, const cpu::Communicators* comms = nullptr);
  // Device copies of host tensors (freed when the last copy of each goes).
  std::map<std::string, Tensor> upload(const std::map<std::string, Tensor>& inputs);
  // The stream kernels run on (a cudaStream_t); the caller's own, if set.
  void* stream() const;
  void set_stream(void* stream);
  // Stats of the plan for these input shapes (made if needed).
  PlanStats plan_stats(const std::map<std::string, Shape>& input_shapes);
  int device() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Number of CUDA devices visible (0 without a driver or a GPU).
int device_count();
// "sm_90" for device `d`; empty if there is none.
std::string device_arch(int d = 0);
std::string device_name(int d = 0);

}  // namespace tessera::cuda
