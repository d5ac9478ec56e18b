// `tessera bench`: trtexec's figures for an engine — latency percentiles,
// throughput, a per-layer profile and a Chrome trace.
#include <algorithm>
#include <chrono>
#include <iomanip>
#include <iostream>
#include <nlohmann/json.hpp>

#include "core/npy.h"
#include "tools/cli.h"

namespace tessera::cli {

namespace {

struct LayerStat {
  std::string op;
  double ms = 0;
  int calls = 0;
};

double percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, size_t(p / 100.0 * double(v.size())))];
}

void print_profile(const std::map<std::string, LayerStat>& layers, int top) {
  std::vector<std::pair<std::string, LayerStat>> v(layers.begin(), layers.end());
  std::sort(v.begin(), v.end(), [](auto& a, auto& b) { return a.second.ms > b.second.ms; });
  double total = 0;
  for (auto& [n, s] : v) total += s.ms;
  std::cout << "per-layer profile (mean ms per run, top " << top << "):\n";
  for (int i = 0; i < top && i < int(v.size()); ++i) {
    auto& [name, s] = v[size_t(i)];
    std::cout << "  " << std::setw(10) << std::fixed << std::setprecision(4) << s.ms / s.calls << "  " << std::setw(5)
              << std::setprecision(1) << 100 * s.ms / total << "%  " << s.op << "  " << name << "\n";
  }
}

}  // namespace

void add_bench(CLI::App& app) {
  auto* cmd = app.add_subcommand("bench", "Time an engine: latency p50/p90/p99, throughput, per-layer profile");
  struct Opts {
    std::string engine, trace;
    std::vector<std::string> shapes;
    int warmup = 5, iters = 50, top = 10;
    uint64_t seed = 0;
    bool no_cuda_graph = false;
  };
  auto o = std::make_shared<Opts>();
  cmd->add_option("engine", o->engine, "engine file (.tsr)")->required();
  cmd->add_option("--shape", o->shapes, "input shape for symbolic dims, e.g. x=8x128");
  cmd->add_option("--warmup", o->warmup, "untimed runs first")->capture_default_str();
  cmd->add_option("--iterations", o->iters, "timed runs")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--top", o->top, "layers to show in the profile")->capture_default_str();
  cmd->add_option("--trace", o->trace, "write a Chrome-trace JSON of one profiled run");
  cmd->add_flag("--no-cuda-graph", o->no_cuda_graph, "cuda engines: time op-by-op runs instead of CUDA graph replays");
  cmd->callback([o] {
    Engine e = Engine::load(o->engine);
    RuntimeOptions rt;
    rt.cuda_graph = !o->no_cuda_graph;
    e.set_runtime(rt);
    auto host_inputs = random_inputs(e.graph(), parse_shape_flags(o->shapes), o->seed);
    // cuda: inputs stay on the device and each run is timed with CUDA events (as the peers are).
    auto inputs = e.bench_inputs(host_inputs);
    for (int i = 0; i < o->warmup; ++i) e.timed_run(inputs);
    std::vector<double> lat;
    for (int i = 0; i < o->iters; ++i) lat.push_back(e.timed_run(inputs));
    double mean = 0;
    for (double x : lat) mean += x / double(lat.size());
    int64_t batch = inputs.empty() || inputs.begin()->second.rank() == 0 ? 1 : inputs.begin()->second.dim(0);
    std::cout << std::fixed << std::setprecision(4) << "latency ms: p50 " << percentile(lat, 50) << "  p90 " << percentile(lat, 90)
              << "  p99 " << percentile(lat, 99) << "  mean " << mean << "  (" << o->iters << " runs, target "
              << e.settings().target << ")\n"
              << std::setprecision(1) << "throughput: " << 1000.0 / mean << " inferences/s, " << 1000.0 * double(batch) / mean
              << " samples/s (batch " << batch << ")\n";
    // One more run, timed per layer, for the profile and the trace.
    std::map<std::string, LayerStat> layers;
    nlohmann::json events = nlohmann::json::array();
    double t_us = 0;  // steps run one after another: each starts where the last ended
    e.run(host_inputs, [&](const Node& n, double ms) {
      LayerStat& s = layers[n.name];
      s.op = n.op, s.ms += ms, ++s.calls;
      events.push_back({{"name", n.name}, {"cat", n.op}, {"ph", "X"}, {"ts", t_us}, {"dur", ms * 1000}, {"pid", 0}, {"tid", 0}});
      t_us += ms * 1000;
    });
    print_profile(layers, o->top);
    if (!o->trace.empty()) {
      write_file_atomic(o->trace, nlohmann::json{{"traceEvents", events}}.dump());
      std::cout << "trace: " << o->trace << "\n";
    }
  });
}

}  // namespace tessera::cli
