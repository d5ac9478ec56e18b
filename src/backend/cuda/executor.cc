// The CUDA executor: plans per input shapes (plan.cc), runs the steps on its
// stream, captures each plan into a CUDA graph after its first run and
// replays it after that. CPU-fallback steps run as host callbacks between
// pinned copies, so they keep the stream's order and can be captured too.
// A plan whose collectives are staged through the host (a gloo communicator:
// the kernel synchronizes the stream) is never captured.
#include "backend/cuda/executor.h"

#include <iostream>
#include <set>

#include "backend/cpu/kernel_registry.h"
#include "backend/cpu/run_context.h"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/plan.h"
#include "dist/nccl_communicator.h"

namespace tessera::cuda {

int device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  return n;
}

std::string device_arch(int d) {
  cudaDeviceProp p{};
  if (d >= device_count() || cudaGetDeviceProperties(&p, d) != cudaSuccess) return "";
  return "sm_" + std::to_string(p.major * 10 + p.minor);
}

std::string device_name(int d) {
  cudaDeviceProp p{};
  if (d >= device_count() || cudaGetDeviceProperties(&p, d) != cudaSuccess) return "";
  return p.name;
}

namespace {

struct HostCall {
  Step* step;
  cpu::RunContext* run;
};

// Runs in CUDA's callback thread: no CUDA calls here.
void CUDART_CB run_fallback(void* arg) {
  auto* call = static_cast<HostCall*>(arg);
  Step& s = *call->step;
  try {
    std::vector<const Tensor*> ins;
    for (size_t i = 0; i < s.ins.size(); ++i) {
      if (s.ins[i].host) ins.push_back(s.ins[i].host);
      else if (s.ins[i].device) ins.push_back(&s.fallback->host_in[i]);
      else ins.push_back(nullptr);
    }
    std::vector<Tensor> outs = cpu::run_node(*s.node, ins, call->run);
    for (size_t i = 0; i < s.outs.size(); ++i) {
      if (!s.outs[i]) continue;
      Tensor& dst = s.fallback->host_out[i];
      if (outs[i].shape() != dst.shape() || outs[i].dtype() != dst.dtype())
        fail(ErrorKind::Internal, "CPU fallback produced ", to_string(outs[i].shape()), " for a planned ", to_string(dst.shape()));
      std::memcpy(dst.raw(), outs[i].raw(), dst.nbytes());
    }
  } catch (const std::exception& e) {
    s.fallback->error = e.what();
  }
}

// True when a collective step of `p` would run over a communicator that is
// not NCCL: kernels/collectives.cc then stages it through the host, which
// synchronizes the stream and so cannot be captured in a CUDA graph.
bool host_staged_collectives(const Plan& p, const cpu::Communicators* comms) {
  if (!comms) return false;
  for (const Step& s : p.steps) {
    const OpSchema* schema = OpRegistry::find(s.node->op);
    if (!s.fn || !schema || !schema->collective) continue;
    dist::Communicator& c = comms->get(s.node->attrs.get_string("group", ""), *s.node);
    if (!dynamic_cast<dist::NcclCommunicator*>(&c)) return true;
  }
  return false;
}

}  // namespace

struct Executor::Impl {
  const Graph& g;
  ExecutorOptions opt;
  DeviceContext dev;
  cudaStream_t stream = nullptr;
  bool own_stream = true;
  Weights weights;
  // One plan per input shapes (and per caller address of the inputs updated
  // in place); the least recently used goes when there are too many.
  using PlanKey = std::pair<std::map<std::string, Shape>, std::map<std::string, const void*>>;
  std::map<PlanKey, std::unique_ptr<Plan>> plans;
  std::map<PlanKey, uint64_t> last_used;
  uint64_t clock = 0;
  static constexpr size_t kMaxPlans = 16;
  std::set<std::string> inplace;  // graph inputs an in-place kernel may update at the caller's address
  std::vector<std::unique_ptr<HostCall>> calls;  // outlive the graphs that point at them
  cpu::RunContext run_ctx;                       // for collectives run by the CPU fallback
  bool warned_fallback = false;
  const cpu::Communicators* last_comms = nullptr;
  // Set when the graph has a data-dependent shape: it then runs on the CPU reference executor.
  std::unique_ptr<cpu::Executor> cpu_exec;

  Impl(const Graph& graph, const ExecutorOptions& o) : g(graph), opt(o), dev(o.device), inplace(inplace_inputs(graph)) {
    TSR_CUDA(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
    upload_weights(g, weights, stream);
  }
  ~Impl() {
    plans.clear();
    if (own_stream && stream) cudaStreamDestroy(stream);
  }

  // Evict the least recently used plan; freeing its arena waits for the device.
  void evict_one() {
    auto oldest = last_used.begin();
    for (auto it = last_used.begin(); it != last_used.end(); ++it)
      if (it->second < oldest->second) oldest = it;
    TSR_CUDA(cudaStreamSynchronize(stream));
    plans.erase(oldest->first);
    last_used.erase(oldest);
  }

  Plan& plan_for(const std::map<std::string, Tensor>& inputs) {
    PlanKey key;
    std::set<std::string> bound;
    for (auto& [k, t] : inputs) {
      key.first[k] = t.shape();
      if (inplace.count(k) && t.device() == Device::cuda) {
        key.second[k] = t.raw();
        bound.insert(k);
      }
    }
    auto it = plans.find(key);
    if (it != plans.end()) {
      last_used[key] = ++clock;
      return *it->second;
    }
    TSR_CUDA(cudaSetDevice(opt.device));
    if (plans.size() >= kMaxPlans) evict_one();
    std::unique_ptr<Plan> p;
    try {
      p = make_plan(g, weights, inputs, bound, opt.verbose);
    } catch (const DataDependentShape& e) {
      std::cerr << "tessera: warning: [cuda] " << e.what() << "; without a static plan this engine runs on the CPU reference "
                << "backend (the CUDA backend has no data-dependent shapes yet)\n";
      cpu_exec = std::make_unique<cpu::Executor>(g);
      throw;
    }
    if (p->stats.fallback_steps && !warned_fallback) {
      std::string ops;
      for (Step& s : p->steps)
        if (!s.fn && ops.find(s.node->op) == std::string::npos) ops += (ops.empty() ? "" : ", ") + s.node->op;
      std::cerr << "tessera: warning: [cuda] " << p->stats.fallback_steps << " node(s) have no CUDA kernel and run on the CPU "
                << "(ops: " << ops << ")\n";
      warned_fallback = true;
    }
    last_used[key] = ++clock;
    return *plans.emplace(key, std::move(p)).first->second;
  }

  void launch(Plan& p, const cpu::Communicators* comms, std::vector<cudaEvent_t>* events) {
    run_ctx.comms = comms;
    for (size_t i = 0; i < p.steps.size(); ++i) {
      Step& s = p.steps[i];
      if (events) TSR_CUDA(cudaEventRecord((*events)[2 * i], stream));
      if (s.fn) {
        KernelContext ctx(*s.node, s.ins, s.outs, stream, dev, &s.state);
        ctx.set_communicators(comms);
        s.fn(ctx);
      } else {
        for (size_t j = 0; j < s.ins.size(); ++j)
          if (s.ins[j].device && !s.ins[j].host)
            TSR_CUDA(cudaMemcpyAsync(s.fallback->host_in[j].raw(), s.ins[j].device->raw(), s.ins[j].device->nbytes(),
                                     cudaMemcpyDeviceToHost, stream));
        calls.push_back(std::make_unique<HostCall>(HostCall{&s, &run_ctx}));
        TSR_CUDA(cudaLaunchHostFunc(stream, run_fallback, calls.back().get()));
        for (size_t j = 0; j < s.outs.size(); ++j)
          if (s.outs[j] && s.outs[j]->nbytes())
            TSR_CUDA(cudaMemcpyAsync(s.outs[j]->raw(), s.fallback->host_out[j].raw(), s.outs[j]->nbytes(),
                                     cudaMemcpyHostToDevice, stream));
      }
      if (events) TSR_CUDA(cudaEventRecord((*events)[2 * i + 1], stream));
    }
  }

  void capture(Plan& p, const cpu::Communicators* comms) {
    cudaGraph_t graph = nullptr;
    TSR_CUDA(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
    try {
      launch(p, comms, nullptr);
    } catch (...) {
      cudaStreamEndCapture(stream, &graph);
      if (graph) cudaGraphDestroy(graph);
      throw;
    }
    cudaError_t e = cudaStreamEndCapture(stream, &graph);
    if (e == cudaSuccess) e = cudaGraphInstantiate(&p.graph, graph, 0);
    if (graph) cudaGraphDestroy(graph);
    if (e != cudaSuccess) {
      cudaGetLastError();
      p.graph = nullptr;
      std::cerr << "tessera: warning: [cuda] CUDA graph capture failed (" << cudaGetErrorString(e)
                << "); this shape runs step by step\n";
    }
    p.stats.graph_captured = p.graph != nullptr;
  }

  void check_fallbacks(Plan& p) {
    for (Step& s : p.steps)
      if (s.fallback && !s.fallback->error.empty()) {
        std::string e = std::move(s.fallback->error);
        s.fallback->error.clear();
        fail(ErrorKind::Runtime, e);
      }
  }

  void copy_inputs(Plan& p, const std::map<std::string, Tensor>& inputs) {
    for (auto& [v, slot] : p.inputs) {
      const Tensor& t = inputs.at(v->name);
      if (!t.nbytes()) continue;
      auto kind = t.device() == Device::cuda ? cudaMemcpyDeviceToDevice : cudaMemcpyHostToDevice;
      TSR_CUDA(cudaMemcpyAsync(slot->raw(), t.raw(), t.nbytes(), kind, stream));
    }
  }

  // Enqueue one run; outputs are device tensors (or host values known at plan time).
  std::map<std::string, Tensor> enqueue(const std::map<std::string, Tensor>& inputs, const cpu::NodeTimer& timer,
                                        const cpu::Communicators* comms) {
    TSR_CUDA(cudaSetDevice(opt.device));
    last_comms = comms;
    Plan& p = plan_for(inputs);
    copy_inputs(p, inputs);
    if (timer) {
      std::vector<cudaEvent_t> ev(2 * p.steps.size());
      for (auto& e : ev) TSR_CUDA(cudaEventCreate(&e));
      launch(p, comms, &ev);
      TSR_CUDA(cudaStreamSynchronize(stream));
      for (size_t i = 0; i < p.steps.size(); ++i) {
        float ms = 0;
        cudaEventElapsedTime(&ms, ev[2 * i], ev[2 * i + 1]);
        timer(*p.steps[i].node, double(ms));
      }
      for (auto& e : ev) cudaEventDestroy(e);
    } else {
      // The first run is eager and makes the kernels' states; the second
      // captures the graph that it and later runs replay (a shape seen once,
      // like a prompt's prefill, is never captured).
      if (!p.graph && p.ran && opt.cuda_graph && !p.capture_tried && !host_staged_collectives(p, comms)) {
        p.capture_tried = true;
        capture(p, comms);
      }
      if (p.graph) TSR_CUDA(cudaGraphLaunch(p.graph, stream));
      else launch(p, comms, nullptr);
    }
    p.ran = true;
    std::map<std::string, Tensor> out;
    for (Value* o : g.outputs) {
      auto h = p.host.find(o);
      if (h != p.host.end()) out[o->name] = h->second;
      else if (o->constant) out[o->name] = *o->constant;
      else out[o->name] = p.dev.at(o);
    }
    return out;
  }

  // A rank that died mid-collective must not hang us: NCCL's wait polls with
  // the communicator's timeout and aborts it, naming the rank at fault.
  void wait_for_collectives() {
    if (!last_comms) return;
    auto wait = [&](const std::shared_ptr<dist::Communicator>& c) {
      if (auto* n = dynamic_cast<dist::NcclCommunicator*>(c.get()); n && n->stream() == stream) n->wait();
    };
    wait(last_comms->world);
    for (auto& [name, c] : last_comms->groups) wait(c);
  }

  void sync(Plan* p) {
    wait_for_collectives();
    cudaError_t e = cudaStreamSynchronize(stream);
    if (e != cudaSuccess) fail(ErrorKind::Runtime, "[cuda] a kernel failed: ", cudaGetErrorString(e));
    for (auto& [k, plan] : plans) check_fallbacks(*plan);
  }
};

Executor::Executor(const Graph& g, const ExecutorOptions& opt) {
  if (device_count() == 0) fail(ErrorKind::Runtime, "[cuda] no CUDA device is visible (check the driver and CUDA_VISIBLE_DEVICES)");
  if (opt.device >= device_count())
    fail(ErrorKind::InvalidArgument, "[cuda] device ", opt.device, " asked for, but only ", device_count(), " are visible");
  impl_ = std::make_unique<Impl>(g, opt);
}

Executor::~Executor() = default;

namespace {
std::map<std::string, Tensor> to_host(const std::map<std::string, Tensor>& ts) {
  std::map<std::string, Tensor> out;
  for (auto& [name, t] : ts) {
    if (t.device() != Device::cuda) {
      out[name] = t;
      continue;
    }
    Tensor h = Tensor::empty(t.dtype(), t.shape());
    if (h.nbytes()) TSR_CUDA(cudaMemcpy(h.raw(), t.raw(), h.nbytes(), cudaMemcpyDeviceToHost));
    out[name] = h;
  }
  return out;
}
}  // namespace

std::map<std::string, Tensor> Executor::run(const std::map<std::string, Tensor>& inputs, const cpu::NodeTimer& timer,
                                            const cpu::Communicators* comms, const std::set<std::string>* only) {
  if (!impl_->cpu_exec) {
    try {
      impl_->plan_for(inputs);
    } catch (const DataDependentShape&) {
    }
  }
  if (impl_->cpu_exec) return impl_->cpu_exec->run(to_host(inputs), timer, comms);
  std::map<std::string, Tensor> dev = impl_->enqueue(inputs, timer, comms);
  std::map<std::string, Tensor> out;
  for (auto& [name, t] : dev) {
    if (only && !only->count(name)) continue;
    if (t.device() != Device::cuda) {
      out[name] = t;
      continue;
    }
    Tensor h = Tensor::empty(t.dtype(), t.shape());
    if (h.nbytes()) TSR_CUDA(cudaMemcpyAsync(h.raw(), t.raw(), h.nbytes(), cudaMemcpyDeviceToHost, impl_->stream));
    out[name] = h;
  }
  impl_->sync(nullptr);
  return out;
}

std::map<std::string, Tensor> Executor::run_device(const std::map<std::string, Tensor>& inputs, const cpu::Communicators* comms) {
  if (!impl_->cpu_exec) {
    try {
      impl_->plan_for(inputs);
    } catch (const DataDependentShape&) {
    }
  }
  if (impl_->cpu_exec) return upload(impl_->cpu_exec->run(to_host(inputs), {}, comms));
  return impl_->enqueue(inputs, {}, comms);
}

void Executor::synchronize() { impl_->sync(nullptr); }

double Executor::timed_run(const std::map<std::string, Tensor>& inputs, const cpu::Communicators* comms) {
  cudaEvent_t a, b;
  TSR_CUDA(cudaEventCreate(&a));
  TSR_CUDA(cudaEventCreate(&b));
  TSR_CUDA(cudaEventRecord(a, impl_->stream));
  run_device(inputs, comms);
  TSR_CUDA(cudaEventRecord(b, impl_->stream));
  impl_->sync(nullptr);
  float ms = 0;
  cudaEventElapsedTime(&ms, a, b);
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  return double(ms);
}

std::map<std::string, Tensor> Executor::upload(const std::map<std::string, Tensor>& inputs) {
  TSR_CUDA(cudaSetDevice(impl_->opt.device));
  std::map<std::string, Tensor> out;
  for (auto& [name, t] : inputs) {
    if (t.device() == Device::cuda) {
      out[name] = t;
      continue;
    }
    void* p = nullptr;
    if (cudaMalloc(&p, std::max<size_t>(t.nbytes(), 1)) != cudaSuccess) {
      cudaGetLastError();
      out_of_memory(t.nbytes(), "input '" + name + "'", 0);
    }
    std::shared_ptr<void> owner(p, [](void* q) { cudaFree(q); });
    if (t.nbytes()) TSR_CUDA(cudaMemcpy(p, t.raw(), t.nbytes(), cudaMemcpyHostToDevice));
    out[name] = Tensor::view(t.dtype(), t.shape(), p, owner, Device::cuda);
  }
  return out;
}

void* Executor::stream() const { return impl_->stream; }

void Executor::set_stream(void* s) {
  if (impl_->own_stream && impl_->stream) cudaStreamDestroy(impl_->stream);
  impl_->stream = static_cast<cudaStream_t>(s);
  impl_->own_stream = false;
}

int Executor::device() const { return impl_->opt.device; }

PlanStats Executor::plan_stats(const std::map<std::string, Shape>& input_shapes) {
  std::map<std::string, Tensor> fake;
  for (Value* in : impl_->g.inputs) {
    auto it = input_shapes.find(in->name);
    if (it == input_shapes.end()) fail(ErrorKind::InvalidArgument, "plan_stats: no shape for input '", in->name, "'");
    fake[in->name] = Tensor::view(in->dtype, it->second, nullptr, std::make_shared<int>(0));
  }
  return impl_->plan_for(fake).stats;
}

}  // namespace tessera::cuda
