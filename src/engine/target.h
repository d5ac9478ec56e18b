// The engine's targets: what building for "cpu" or "cuda" adds to the pass
// pipeline, and the CUDA executor behind Engine::run for "cuda" engines. With
// a CPU-only build of tessera the cuda functions fail with a clear message.
#pragma once
#include <map>
#include <memory>
#include <set>
#include <string>

#include "backend/cpu/executor.h"
#include "engine/settings.h"
#include "ir/graph.h"

namespace tessera {

namespace cuda { class Executor; }

// What an engine for `s.target` built here is built for: "cpu", or the GPU's
// compute capability ("sm_90"); fails for cuda when no GPU is visible.
std::string target_arch(const Settings& s);
// Before the passes: validate the target and record what it was built for (the GPU arch).
void prepare_target(Settings& s);
// After the passes: target work that needs the device (GEMM algorithm choice).
void finish_target(Graph& g, const Settings& s);

std::shared_ptr<cuda::Executor> make_cuda_executor(const Graph& g, const Settings& s, const RuntimeOptions& r);
std::map<std::string, Tensor> run_cuda(cuda::Executor& e, const std::map<std::string, Tensor>& inputs,
                                       const cpu::NodeTimer& timer, const cpu::Communicators* comms,
                                       const std::set<std::string>* only = nullptr);
std::map<std::string, Tensor> run_cuda_device(cuda::Executor& e, const std::map<std::string, Tensor>& inputs,
                                              const cpu::Communicators* comms);
void* cuda_stream_of(cuda::Executor& e);
double timed_cuda_run(cuda::Executor& e, const std::map<std::string, Tensor>& inputs, const cpu::Communicators* comms);
std::map<std::string, Tensor> upload_to_cuda(cuda::Executor& e, const std::map<std::string, Tensor>& inputs);
// `tessera inspect`: the memory plan for these input shapes, as text lines.
std::string describe_cuda_plan(cuda::Executor& e, const std::map<std::string, Shape>& shapes);
// The GPU this process uses: LOCAL_RANK (or the launcher's equivalent) modulo the visible devices.
int local_device();

}  // namespace tessera
