#include "engine/target.h"

#include "core/error.h"
#include "dist/env.h"

#ifdef TESSERA_WITH_CUDA
#include "backend/cuda/device_context.h"
#include "backend/cuda/executor.h"
#include "backend/cuda/gemm_tuning.h"
#endif

namespace tessera {

int local_device() {
#ifdef TESSERA_WITH_CUDA
  int n = cuda::device_count();
  if (n == 0) return 0;
  int local = 0;
  try {
    local = dist::detect_rank_info().local_rank;
  } catch (const Error&) {
    local = 0;  // not launched as a rank: the first GPU
  }
  return local % n;
#else
  return 0;
#endif
}

#ifdef TESSERA_WITH_CUDA

std::string target_arch(const Settings& s) {
  if (s.target == "cpu") return "cpu";
  if (s.target != "cuda") fail(ErrorKind::InvalidArgument, "unknown target '", s.target, "' (expected cpu or cuda)");
  if (cuda::device_count() == 0)
    fail(ErrorKind::Runtime, "--target cuda needs a visible GPU to build on (the engine is tuned for it); none is visible");
  return cuda::device_arch(local_device());
}

void prepare_target(Settings& s) {
  std::string arch = target_arch(s);
  if (s.target == "cuda") s.cuda_arch = arch;
}

// TensorRT's tactic choice: time the cuBLASLt candidates for every static GEMM
// on this GPU and keep the winners in the engine.
void finish_target(Graph& g, const Settings& s) {
  if (s.target != "cuda") return;
  cuda::DeviceContext dev(local_device());
  cuda::tune_gemms(g, dev, s.timing_cache, s.verbose);
}

std::shared_ptr<cuda::Executor> make_cuda_executor(const Graph& g, const Settings& s, const RuntimeOptions& r) {
  int dev = r.device >= 0 ? r.device : local_device();
  std::string arch = cuda::device_arch(dev);
  if (arch.empty()) fail(ErrorKind::Runtime, "this engine targets cuda (", s.cuda_arch, "), but no CUDA device is visible");
  if (arch != s.cuda_arch)
    fail(ErrorKind::InvalidArgument, "this engine was built for ", s.cuda_arch, ", but GPU ", dev, " (", cuda::device_name(dev), ") is ", arch,
         "; rebuild it on this GPU with --target cuda");
  return std::make_shared<cuda::Executor>(g, cuda::ExecutorOptions{dev, r.cuda_graph, s.verbose});
}

std::map<std::string, Tensor> run_cuda(cuda::Executor& e, const std::map<std::string, Tensor>& inputs,
                                       const cpu::NodeTimer& timer, const cpu::Communicators* comms,
                                       const std::set<std::string>* only) {
  return e.run(inputs, timer, comms, only);
}

std::map<std::string, Tensor> run_cuda_device(cuda::Executor& e, const std::map<std::string, Tensor>& inputs,
                                              const cpu::Communicators* comms) {
  return e.run_device(inputs, comms);
}

void* cuda_stream_of(cuda::Executor& e) { return e.stream(); }
std::string describe_cuda_plan(cuda::Executor& e, const std::map<std::string, Shape>& shapes) {
  cuda::PlanStats st = e.plan_stats(shapes);
  auto mib = [](size_t b) { return str(b, " bytes (", double(b) / (1 << 20), " MiB)"); };
  return str("memory plan (GPU ", e.device(), "): weights ", mib(st.weight_bytes), "; activations peak ", mib(st.arena_bytes),
             ", ", mib(st.naive_bytes), " without reuse; ", st.steps, " kernel steps, ", st.fallback_steps, " on the CPU fallback\n");
}
double timed_cuda_run(cuda::Executor& e, const std::map<std::string, Tensor>& inputs, const cpu::Communicators* comms) {
  return e.timed_run(inputs, comms);
}
std::map<std::string, Tensor> upload_to_cuda(cuda::Executor& e, const std::map<std::string, Tensor>& inputs) {
  return e.upload(inputs);
}

#else

[[noreturn]] static void no_cuda() {
  fail(ErrorKind::Unsupported, "this tessera was built without CUDA (no CUDA toolkit at build time); target cuda is unavailable");
}
std::string target_arch(const Settings& s) {
  if (s.target == "cuda") no_cuda();
  if (s.target != "cpu") fail(ErrorKind::InvalidArgument, "unknown target '", s.target, "' (expected cpu or cuda)");
  return "cpu";
}
void prepare_target(Settings& s) { target_arch(s); }
void finish_target(Graph&, const Settings&) {}
std::shared_ptr<cuda::Executor> make_cuda_executor(const Graph&, const Settings&, const RuntimeOptions&) { no_cuda(); }
std::map<std::string, Tensor> run_cuda(cuda::Executor&, const std::map<std::string, Tensor>&, const cpu::NodeTimer&,
                                       const cpu::Communicators*, const std::set<std::string>*) { no_cuda(); }
std::map<std::string, Tensor> run_cuda_device(cuda::Executor&, const std::map<std::string, Tensor>&, const cpu::Communicators*) { no_cuda(); }
void* cuda_stream_of(cuda::Executor&) { no_cuda(); }
std::string describe_cuda_plan(cuda::Executor&, const std::map<std::string, Shape>&) { no_cuda(); }
double timed_cuda_run(cuda::Executor&, const std::map<std::string, Tensor>&, const cpu::Communicators*) { no_cuda(); }
std::map<std::string, Tensor> upload_to_cuda(cuda::Executor&, const std::map<std::string, Tensor>&) { no_cuda(); }

#endif

}  // namespace tessera
