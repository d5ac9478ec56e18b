// The seed's tensor_parallel_simple_example, in C++: the ToyModel sharded with
// its exact DTensor plan, one engine per rank, collectives inside the engine.
//
//   tessera launch --nproc-per-node 2 -- ./build/tensor_parallel_simple_example [--target cuda] [--comm auto|nccl|gloo]
//
// Every rank also builds the unsharded model and checks its part of the
// output against the single-rank result (rel. L2 <= 1e-5), then prints timings.
// --target cuda: the engines run on each rank's GPU (by local rank) and the
// collectives on NCCL, or host-staged over gloo when ranks share a GPU
// (--comm, as for `tessera generate`).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <iomanip>
#include <iostream>
#include <random>

#include "dist/process_group.h"
#include "parallel/tp_plan.h"
#include "tessera/tessera.h"
#include "tools/cli.h"
#include "tools/toy_model.h"

using namespace tessera;

namespace {

parallel::Plan seed_plan() {
  // ColwiseParallel(input_layouts=Shard(0)) / RowwiseParallel(output_layouts=Shard(0)), as in the seed.
  parallel::Plan p;
  for (const char* name : {"in_proj", "in_proj2"}) p.entries.push_back({name, parallel::Style::colwise, parallel::Layout{true, 0}, {}, true});
  for (const char* name : {"out_proj", "out_proj2"}) p.entries.push_back({name, parallel::Style::rowwise, {}, parallel::Layout{true, 0}, true});
  return p;
}

Tensor rows(const Tensor& t, int64_t begin, int64_t count) {
  int64_t width = t.numel() / t.dim(0);
  Tensor out = Tensor::empty(t.dtype(), {count, width});
  std::memcpy(out.raw(), t.data<float>() + begin * width, out.nbytes());
  return out;
}

double rel_l2(const Tensor& a, const Tensor& b) {
  double num = 0, den = 0;
  for (int64_t i = 0; i < a.numel(); ++i) {
    double d = double(a.data<float>()[i]) - b.data<float>()[i];
    num += d * d, den += double(b.data<float>()[i]) * b.data<float>()[i];
  }
  return std::sqrt(num / std::max(den, 1e-30));
}

double p50_ms(const Engine& e, const Tensor& x, int iters) {
  std::vector<double> ms;
  for (int i = 0; i < iters; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    e.run({{"x", x}});
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

struct Args {
  std::string target = "cpu", comm = "auto";
};

Args parse_args(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    std::string flag = argv[i];
    if ((flag != "--target" && flag != "--comm") || i + 1 >= argc)
      fail(ErrorKind::InvalidArgument, "unknown argument '", flag, "' (usage: [--target cpu|cuda] [--comm auto|nccl|gloo])");
    (flag == "--target" ? a.target : a.comm) = argv[++i];
  }
  if (a.target != "cpu" && a.target != "cuda") fail(ErrorKind::InvalidArgument, "--target '", a.target, "': expected cpu or cuda");
  return a;
}

int run(const Args& args) {
  auto pg = dist::init_process_group("gloo", std::chrono::seconds(60));
  int rank = pg->info.rank, world = pg->info.world_size;
  const int64_t batch = 20;
  if (batch % world) fail(ErrorKind::InvalidArgument, "batch ", batch, " does not divide by ", world, " ranks");
  auto layers = toy::make_weights(0);
  Settings tp, one;
  tp.tp_degree = world, tp.tp_rank = rank, tp.plan_json = seed_plan().to_json();
  tp.target = one.target = args.target;
  Engine sharded = Engine::build(toy::make_graph(layers), tp);
  std::shared_ptr<dist::Communicator> comm = cli::engine_communicator(*pg, args.target, args.comm);
  sharded.set_communicator(comm);
  Engine single = Engine::build(toy::make_graph(layers), one);

  std::mt19937_64 gen(1);  // the same full input on every rank
  std::normal_distribution<float> normal;
  Tensor x = Tensor::empty(DType::f32, {batch, 10});
  for (int64_t i = 0; i < x.numel(); ++i) x.data<float>()[i] = normal(gen);
  int64_t local = batch / world;
  Tensor x_local = rows(x, rank * local, local);  // input_layouts=Shard(0): each rank holds its rows
  Tensor y_local = sharded.run({{"x", x_local}}).begin()->second;
  Tensor y_ref = rows(single.run({{"x", x}}).begin()->second, rank * local, local);  // output_layouts=Shard(0)
  double err = rel_l2(y_local, y_ref);
  double tp_ms = p50_ms(sharded, x_local, 20), one_ms = p50_ms(single, x, 20);
  pg->world->barrier();
  std::cout << "rank " << rank << "/" << world << ": output " << to_string(y_local.shape()) << " (rows " << rank * local << ".."
            << (rank + 1) * local - 1 << "), rel. L2 vs single rank " << std::scientific << std::setprecision(2) << err
            << std::fixed << std::setprecision(3) << ", p50 " << tp_ms << " ms sharded vs " << one_ms << " ms single (" << args.target << ", "
            << (comm == pg->world ? (args.target == "cuda" ? "host-staged gloo" : "gloo") : "nccl") << ")\n";
  pg->finish();
  if (!(err <= 1e-5)) {
    std::cerr << "rank " << rank << ": sharded result differs from the single-rank result\n";
    return 1;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(parse_args(argc, argv));
  } catch (const Error& e) {
    std::cerr << "tensor_parallel_simple_example: error: " << e.what() << "\n";
    return 1;
  }
}
