// `tessera demo`: the README's first command. Builds the seed's ToyModel from
// seeded weights, compiles it, writes and reloads the engine file, runs it,
// and checks the answer against a plain double-precision forward pass.
#include <chrono>
#include <cmath>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <random>

#include "tools/cli.h"
#include "tools/toy_model.h"

namespace tessera::cli {

namespace {
double rel_l2(const Tensor& a, const Tensor& b) {
  double num = 0, den = 0;
  for (int64_t i = 0; i < a.numel(); ++i) {
    double d = double(a.data<float>()[i]) - b.data<float>()[i];
    num += d * d;
    den += double(b.data<float>()[i]) * b.data<float>()[i];
  }
  return std::sqrt(num / std::max(den, 1e-30));
}
}  // namespace

void add_demo(CLI::App& app) {
  auto* cmd = app.add_subcommand("demo", "Compile and run the seed's ToyModel (no downloads)");
  struct Opts {
    std::string out;
    int64_t batch = 20;
    uint64_t seed = 0;
  };
  auto o = std::make_shared<Opts>();
  cmd->add_option("-o,--output", o->out, "where to write the engine (default: a temporary file)");
  cmd->add_option("--batch", o->batch, "batch size")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--seed", o->seed, "weight and input seed")->capture_default_str();
  cmd->callback([o] {
    auto layers = toy::make_weights(o->seed);
    auto t0 = std::chrono::steady_clock::now();
    Engine built = Engine::build(toy::make_graph(layers), Settings{});
    std::string path = o->out.empty() ? (std::filesystem::temp_directory_path() / "tessera_toy_model.tsr").string() : o->out;
    built.save(path);
    double build_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    Engine e = Engine::load(path);
    std::mt19937_64 gen(o->seed + 1);
    std::normal_distribution<float> normal;
    Tensor x = Tensor::empty(DType::f32, {o->batch, 10});
    for (int64_t i = 0; i < x.numel(); ++i) x.data<float>()[i] = normal(gen);
    Tensor y = e.run({{"x", x}}).begin()->second;
    std::vector<double> ms;
    for (int i = 0; i < 20; ++i) {
      auto s = std::chrono::steady_clock::now();
      e.run({{"x", x}});
      ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - s).count());
    }
    std::sort(ms.begin(), ms.end());
    double err = rel_l2(y, toy::reference_forward(layers, x));
    std::cout << "ToyModel (10→3200→1600→500→100, " << built.graph().constant_bytes() / 1024 << " KiB of weights)\n"
              << "  engine " << path << " built in " << std::fixed << std::setprecision(1) << build_ms << " ms\n"
              << "  run on cpu, batch " << o->batch << ": output " << to_string(y.shape()) << ", p50 " << std::setprecision(3)
              << ms[ms.size() / 2] << " ms\n"
              << "  rel. L2 error vs double-precision reference: " << std::scientific << std::setprecision(2) << err << "\n";
    if (!(err <= 1e-5)) fail(ErrorKind::Runtime, "demo: result differs from the reference (rel. L2 ", err, " > 1e-5)");
    std::cout << "  ok\n";
  });
}

}  // namespace tessera::cli
