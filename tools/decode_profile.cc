#include "tools/decode_profile.h"

#include <algorithm>
#include <chrono>
#include <iomanip>
#include <map>
#include <vector>

namespace tessera::cli {
namespace {

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0.0 : v[v.size() / 2];
}

struct Cost {
  std::string op;
  double ms = 0;
  int64_t calls = 0;
};

void print_costs(std::ostream& os, const std::string& title, std::map<std::string, Cost> costs, int top, double total) {
  std::vector<std::pair<std::string, Cost>> v(costs.begin(), costs.end());
  std::sort(v.begin(), v.end(), [](auto& a, auto& b) { return a.second.ms > b.second.ms; });
  os << title << "\n";
  for (int i = 0; i < top && i < int(v.size()); ++i) {
    const Cost& c = v[size_t(i)].second;
    os << "  " << std::setw(9) << std::setprecision(4) << c.ms << " ms " << std::setw(5) << std::setprecision(1)
       << 100 * c.ms / total << "%  x" << std::setw(3) << c.calls << "  " << v[size_t(i)].first;
    if (c.op != v[size_t(i)].first) os << " (" << c.op << ")";
    os << "\n";
  }
}

}  // namespace

void profile_decode_step(const Engine& e, const gen::Generator& g, int64_t position, int top, bool print, std::ostream& os) {
  std::map<std::string, Tensor> in = g.step_inputs(position), dev = e.bench_inputs(in);
  constexpr int kRuns = 30;
  std::vector<double> gpu, wall;
  for (int i = 0; i < 5; ++i) e.timed_run(dev);  // the plan, its first eager run, its capture
  for (int i = 0; i < kRuns; ++i) gpu.push_back(e.timed_run(dev));
  for (int i = 0; i < kRuns; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    e.run(in);
    wall.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::map<std::string, Cost> by_node, by_op;
  double eager = 0;
  int64_t steps = 0;
  e.run(in, [&](const Node& n, double ms) {
    Cost& c = by_node[n.name];
    c.op = n.op, c.ms += ms, ++c.calls;
    Cost& o = by_op[n.op];
    o.op = n.op, o.ms += ms, ++o.calls;
    eager += ms, ++steps;
  });
  if (!print) return;
  os << std::fixed << std::setprecision(4) << "decode step [" << g.slots() << ", 1] at position " << position << " (median of "
     << kRuns << "): " << median(gpu) << " ms on the device (" << e.settings().target << (e.settings().target == "cuda" ? ", replayed" : "")
     << "), " << median(wall) << " ms through Engine::run with host copies; eager, timed per node: " << eager << " ms in " << steps
     << " steps\n";
  print_costs(os, "by op:", by_op, top, eager);
  print_costs(os, "costliest nodes:", by_node, top, eager);
}

}  // namespace tessera::cli
