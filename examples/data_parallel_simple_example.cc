// The ToyModel, data-parallel: every rank compiles the same engine, takes its
// part of a batch of 21 requests (Accelerate's split_between_processes: the
// first ranks take one more), runs it, and rank 0 gathers the outputs in the
// original order and checks them against one process running the whole batch.
//
//   tessera launch --nproc-per-node 2 -- ./build/data_parallel_simple_example
#include <cmath>
#include <iomanip>
#include <iostream>
#include <random>

#include "dist/process_group.h"
#include "engine/data_parallel.h"
#include "tessera/tessera.h"
#include "tools/toy_model.h"

using namespace tessera;

namespace {

int run() {
  auto pg = dist::init_process_group("gloo", std::chrono::seconds(60));
  int rank = pg->info.rank, world = pg->info.world_size;
  auto layers = toy::make_weights(0);
  Engine engine = Engine::build(toy::make_graph(layers), Settings{});
  std::mt19937_64 gen(1);  // every rank holds the same full batch
  std::normal_distribution<float> normal;
  Tensor x = Tensor::empty(DType::f32, {21, 10});
  for (int64_t i = 0; i < x.numel(); ++i) x.data<float>()[i] = normal(gen);
  auto t0 = std::chrono::steady_clock::now();
  auto outs = run_data_parallel(engine, {{"x", x}}, pg->world.get(), DataParallelOptions{});
  double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  int status = 0;
  if (rank == 0) {
    Tensor got = outs.begin()->second, want = toy::reference_forward(layers, x);
    double num = 0, den = 0;
    for (int64_t i = 0; i < want.numel(); ++i) {
      double d = double(got.data<float>()[i]) - want.data<float>()[i];
      num += d * d, den += double(want.data<float>()[i]) * want.data<float>()[i];
    }
    double err = std::sqrt(num / den);
    std::cout << "data parallel over " << world << " ranks: 21 requests -> output " << to_string(got.shape())
              << " in the original order, rel. L2 vs reference " << std::scientific << std::setprecision(2) << err
              << std::fixed << std::setprecision(3) << ", " << ms << " ms (cpu, gloo)\n";
    status = (got.shape() == want.shape() && err <= 1e-5) ? 0 : 1;
  }
  pg->finish();
  return status;
}

}  // namespace

int main() {
  try {
    return run();
  } catch (const Error& e) {
    std::cerr << "data_parallel_simple_example: error: " << e.what() << "\n";
    return 1;
  }
}
