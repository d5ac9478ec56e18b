// `tessera bench-comm`: nccl-tests-style latency and bandwidth of every
// collective, per message size, under `tessera launch`. With NCCL each size is
// timed twice: as stream calls, and as `iters` calls captured in one CUDA
// graph and replayed (how an engine runs them). Bus bandwidth uses
// nccl-tests' factors: all_reduce 2(n-1)/n, the others (n-1)/n, broadcast 1.
// gather, scatter and broadcast use root 0 (the IR's RootGather/RootScatter).
#include <algorithm>
#include <chrono>
#include <iomanip>
#include <iostream>

#include "dist/process_group.h"
#include "tools/cli.h"
#ifdef TESSERA_WITH_CUDA
#include <cuda_runtime.h>

#include "dist/nccl_communicator.h"
#endif

namespace tessera::cli {

namespace {

struct Case {
  std::string op;
  size_t bytes;  // nccl-tests' size: the full buffer (output of all_gather, input of reduce_scatter)
};

const std::vector<std::string> kOps = {"all_reduce", "all_gather", "reduce_scatter", "all_to_all",
                                       "gather", "scatter", "broadcast"};

// Before any rank joins: a typo costs no rendezvous.
void check_ops(const std::vector<std::string>& ops) {
  std::string known;
  for (const std::string& k : kOps) known += (known.empty() ? "" : ", ") + k;
  for (const std::string& op : ops)
    if (std::find(kOps.begin(), kOps.end(), op) == kOps.end())
      fail(ErrorKind::InvalidArgument, "--op '", op, "': unknown collective (expected ", known, ")");
}

double bus_factor(const std::string& op, int n) {
  if (op == "broadcast") return 1.0;
  if (op == "all_reduce") return 2.0 * (n - 1) / n;
  return double(n - 1) / n;
}

// Issue one collective of `bytes` (f32 elements; bf16 for the all-reduce sweep is not needed).
void issue(dist::Communicator& c, const std::string& op, Tensor& a, Tensor& b, size_t bytes) {
  int n = c.size();
  int64_t full = int64_t(bytes / 4), part = full / n;
  Tensor x = a.reshaped({a.numel()}), y = b.reshaped({b.numel()});
  auto view = [](const Tensor& t, int64_t count) { return Tensor::view(DType::f32, {count}, t.raw(), nullptr, t.device()); };
  if (op == "all_reduce") { Tensor i = view(x, full), o = view(y, full); c.all_reduce(i, o, dist::ReduceOp::sum); }
  else if (op == "all_gather") { Tensor i = view(x, part), o = view(y, part * n); c.all_gather(i, o); }
  else if (op == "reduce_scatter") { Tensor i = view(x, part * n), o = view(y, part); c.reduce_scatter(i, o, dist::ReduceOp::sum); }
  else if (op == "all_to_all") { Tensor i = view(x, part * n), o = view(y, part * n); c.all_to_all(i, o); }
  else if (op == "gather") { Tensor i = view(x, part), o = view(y, part * n); c.gather(i, o, 0); }
  else if (op == "scatter") { Tensor i = view(x, part * n), o = view(y, part); c.scatter(i, o, 0); }
  else if (op == "broadcast") { Tensor o = view(y, full); c.broadcast(o, 0); }
  else check_ops({op});
}

void print_header(const std::string& backend, int n) {
  std::cout << "# tessera bench-comm: " << n << " ranks, backend " << backend << ", float32\n"
            << "#        op        size    time_us   algbw_GB/s  busbw_GB/s   graph_us  g_busbw_GB/s\n";
}

void print_row(const Case& k, int n, double us, double graph_us) {
  double alg = double(k.bytes) / (us * 1e3), galg = graph_us > 0 ? double(k.bytes) / (graph_us * 1e3) : 0;
  std::cout << std::setw(16) << k.op << std::setw(12) << k.bytes << std::fixed << std::setprecision(2) << std::setw(11) << us
            << std::setw(13) << alg << std::setw(12) << alg * bus_factor(k.op, n);
  if (graph_us > 0) std::cout << std::setw(11) << graph_us << std::setw(14) << galg * bus_factor(k.op, n);
  std::cout << "\n";
}

double host_time_us(dist::Communicator& c, const Case& k, Tensor& a, Tensor& b, int warmup, int iters) {
  for (int i = 0; i < warmup; ++i) issue(c, k.op, a, b, k.bytes);
  c.barrier();
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < iters; ++i) issue(c, k.op, a, b, k.bytes);
  return std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count() / iters;
}

#ifdef TESSERA_WITH_CUDA
// Median over `reps` of the mean time per call, stream calls or graph replay.
std::pair<double, double> device_time_us(dist::NcclCommunicator& c, const Case& k, Tensor& a, Tensor& b, int warmup, int iters) {
  cudaStream_t s = c.stream();
  cudaEvent_t e0, e1;
  cudaEventCreate(&e0), cudaEventCreate(&e1);
  for (int i = 0; i < warmup; ++i) issue(c, k.op, a, b, k.bytes);
  c.wait();
  auto timed = [&](const std::function<void()>& body) {
    std::vector<double> v;
    for (int rep = 0; rep < 5; ++rep) {
      cudaEventRecord(e0, s);
      body();
      cudaEventRecord(e1, s);
      c.wait();
      float ms = 0;
      cudaEventElapsedTime(&ms, e0, e1);
      v.push_back(ms * 1e3 / iters);
    }
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };
  double eager = timed([&] { for (int i = 0; i < iters; ++i) issue(c, k.op, a, b, k.bytes); });
  cudaGraph_t g;
  cudaGraphExec_t exec;
  cudaStreamBeginCapture(s, cudaStreamCaptureModeRelaxed);
  for (int i = 0; i < iters; ++i) issue(c, k.op, a, b, k.bytes);
  cudaStreamEndCapture(s, &g);
  cudaGraphInstantiate(&exec, g, 0);
  cudaGraphLaunch(exec, s);  // warm the graph
  c.wait();
  double graph = timed([&] { cudaGraphLaunch(exec, s); });
  cudaGraphExecDestroy(exec), cudaGraphDestroy(g), cudaEventDestroy(e0), cudaEventDestroy(e1);
  return {eager, graph};
}

Tensor device_buffer(size_t bytes) {
  void* p = nullptr;
  if (cudaMalloc(&p, bytes) != cudaSuccess) fail(ErrorKind::Runtime, "out of GPU memory: bench-comm requested ", bytes, " bytes");
  cudaMemset(p, 0, bytes);
  return Tensor::view(DType::f32, {int64_t(bytes / 4)}, p, std::shared_ptr<void>(p, [](void* q) { cudaFree(q); }), Device::cuda);
}
#endif

}  // namespace

void add_bench_comm(CLI::App& app) {
  auto* cmd = app.add_subcommand("bench-comm", "Collective latency and bus bandwidth (nccl-tests style); run under tessera launch");
  struct Opts {
    std::string backend = "gloo";
    std::vector<std::string> ops = kOps;
    std::string min_bytes = "8K", max_bytes = "64M";
    int iters = 20, warmup = 5;
    double timeout = 60;
  };
  auto o = std::make_shared<Opts>();
  cmd->add_option("--backend", o->backend, "gloo (host) or nccl (GPU)")->check(CLI::IsMember({"gloo", "nccl"}))->capture_default_str();
  cmd->add_option("--op", o->ops, "collectives to time (repeatable)");
  cmd->add_option("--min-bytes", o->min_bytes, "smallest size (K/M/G suffixes)")->capture_default_str();
  cmd->add_option("--max-bytes", o->max_bytes, "largest size; sizes double from the smallest")->capture_default_str();
  cmd->add_option("--iters", o->iters, "calls per timing")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--warmup", o->warmup, "untimed calls first")->capture_default_str();
  cmd->add_option("--timeout", o->timeout, "seconds before a silent rank fails the job")->capture_default_str();
  cmd->callback([o] {
    auto parse = [](const std::string& s) {
      size_t v = std::stoull(s), mult = 1;
      char u = s.empty() ? 0 : char(std::toupper(s.back()));
      if (u == 'K') mult = 1 << 10; else if (u == 'M') mult = 1 << 20; else if (u == 'G') mult = size_t(1) << 30;
      return v * mult;
    };
    size_t lo = parse(o->min_bytes), hi = parse(o->max_bytes);
    check_ops(o->ops);
    auto pg = dist::init_process_group(o->backend, std::chrono::milliseconds(int64_t(o->timeout * 1000)));
    dist::Communicator& c = *pg->world;
    int n = c.size();
    size_t cap = hi * size_t(n) + 4096;
    bool gpu = o->backend == "nccl";
#ifdef TESSERA_WITH_CUDA
    Tensor a = gpu ? device_buffer(cap) : Tensor::zeros(DType::f32, {int64_t(cap / 4)});
    Tensor b = gpu ? device_buffer(cap) : Tensor::zeros(DType::f32, {int64_t(cap / 4)});
#else
    Tensor a = Tensor::zeros(DType::f32, {int64_t(cap / 4)}), b = Tensor::zeros(DType::f32, {int64_t(cap / 4)});
#endif
    if (c.rank() == 0) print_header(o->backend, n);
    for (const std::string& op : o->ops)
      for (size_t bytes = lo; bytes <= hi; bytes *= 2) {
        Case k{op, std::max<size_t>(bytes / (4 * size_t(n)) * 4 * size_t(n), 4 * size_t(n))};
        double us = 0, graph_us = 0;
#ifdef TESSERA_WITH_CUDA
        if (gpu) std::tie(us, graph_us) = device_time_us(static_cast<dist::NcclCommunicator&>(c), k, a, b, o->warmup, o->iters);
#endif
        if (!gpu) us = host_time_us(c, k, a, b, o->warmup, o->iters);
        if (c.rank() == 0) print_row(k, n, us, graph_us);
      }
    pg->finish();
  });
}

}  // namespace tessera::cli
