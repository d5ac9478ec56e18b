// NCCL collectives on 2+ GPUs, captured in a CUDA graph and replayed, checked
// against the host reference. Skips cleanly without 2 GPUs (CI has none).
#ifdef TESSERA_WITH_CUDA
#include <cuda_runtime.h>
#include <gloo/rendezvous/file_store.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <iostream>
#include <cmath>
#include <random>

#include "dist/nccl_communicator.h"

using namespace tessera;
namespace fs = std::filesystem;

namespace {

// Counted in a throwaway child: CUDA initialised in this process would be
// unusable in the ranks forked from it.
int gpu_count() {
  pid_t pid = fork();
  if (pid == 0) {
    int n = 0;
    _exit(cudaGetDeviceCount(&n) == cudaSuccess ? std::min(n, 100) : 0);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 0;
}

struct DeviceBuf {
  Tensor t;
  explicit DeviceBuf(DType dtype, const Shape& s) {
    void* p = nullptr;
    if (cudaMalloc(&p, std::max<size_t>(1, size_t(numel(s)) * dtype_size(dtype))) != cudaSuccess) throw std::runtime_error("cudaMalloc");
    t = Tensor::view(dtype, s, p, std::shared_ptr<void>(p, [](void* q) { cudaFree(q); }), Device::cuda);
  }
};

Tensor host_input(uint64_t seed, int rank, int64_t n) {
  std::mt19937 gen(uint32_t(seed * 7 + uint64_t(rank)));
  std::uniform_int_distribution<int> u(-20, 20);
  Tensor t = Tensor::empty(DType::f32, {n});
  for (int64_t i = 0; i < n; ++i) t.data<float>()[i] = float(u(gen));
  return t;
}

float reduce(const std::vector<Tensor>& all, int64_t i, dist::ReduceOp op) {
  float acc = all[0].data<float>()[i];
  for (size_t r = 1; r < all.size(); ++r) {
    float v = all[r].data<float>()[i];
    acc = op == dist::ReduceOp::max ? std::max(acc, v) : op == dist::ReduceOp::min ? std::min(acc, v) : acc + v;
  }
  return op == dist::ReduceOp::avg ? acc / float(all.size()) : acc;
}

Tensor fetch(const Tensor& dev) {
  Tensor h = Tensor::empty(DType::f32, dev.shape());
  cudaMemcpy(h.raw(), dev.raw(), h.nbytes(), cudaMemcpyDeviceToHost);
  return h;
}

// One rank: every collective and reduction inside one captured graph, replayed twice.
int rank_main(const std::string& dir, int rank, int world, uint64_t seed) {
  auto store = std::make_shared<gloo::rendezvous::FileStore>(dir);
  auto comm = dist::NcclCommunicator::create(*store, rank, world, rank, std::chrono::seconds(20));
  const int64_t n = 1024 * world, c = n / world;
  const dist::ReduceOp ops[] = {dist::ReduceOp::sum, dist::ReduceOp::avg, dist::ReduceOp::max, dist::ReduceOp::min};
  std::vector<Tensor> all;
  for (int r = 0; r < world; ++r) all.push_back(host_input(seed, r, n));
  DeviceBuf in(DType::f32, {n}), ag(DType::f32, {n * world}), a2a(DType::f32, {n}), bc(DType::f32, {n}),
      ga(DType::f32, {n * world}), sc(DType::f32, {c});
  std::vector<DeviceBuf> ar, rs;
  for (int k = 0; k < 4; ++k) ar.emplace_back(DType::f32, Shape{n}), rs.emplace_back(DType::f32, Shape{c});
  cudaMemcpy(in.t.raw(), all[size_t(rank)].raw(), size_t(n) * 4, cudaMemcpyHostToDevice);
  cudaStream_t s = comm->stream();
  cudaGraph_t graph;
  cudaGraphExec_t exec;
  cudaStreamBeginCapture(s, cudaStreamCaptureModeRelaxed);
  for (int k = 0; k < 4; ++k) {
    comm->all_reduce(in.t, ar[size_t(k)].t, ops[k]);
    comm->reduce_scatter(in.t, rs[size_t(k)].t, ops[k]);
  }
  comm->all_gather(in.t, ag.t);
  comm->all_to_all(in.t, a2a.t);
  comm->gather(in.t, ga.t, 1);
  comm->scatter(in.t, sc.t, 0);  // root 0's buffer, chunk r to rank r
  cudaMemcpyAsync(bc.t.raw(), in.t.raw(), size_t(n) * 4, cudaMemcpyDeviceToDevice, s);
  comm->broadcast(bc.t, 1);
  if (cudaStreamEndCapture(s, &graph) != cudaSuccess || cudaGraphInstantiate(&exec, graph, 0) != cudaSuccess) {
    std::cerr << "rank " << rank << ": graph capture failed\n";
    return 1;
  }
  for (int rep = 0; rep < 2; ++rep) cudaGraphLaunch(exec, s);
  comm->wait();
  int bad = 0;
  for (int k = 0; k < 4; ++k) {
    Tensor h_ar = fetch(ar[size_t(k)].t), h_rs = fetch(rs[size_t(k)].t);
    for (int64_t i = 0; i < n; ++i) {
      float want = reduce(all, i, ops[k]);
      bad += std::fabs(h_ar.data<float>()[i] - want) > 1e-5f;
      if (i / c == rank) bad += std::fabs(h_rs.data<float>()[i % c] - want) > 1e-5f;
    }
  }
  Tensor h_ag = fetch(ag.t), h_a2a = fetch(a2a.t), h_bc = fetch(bc.t), h_ga = fetch(ga.t), h_sc = fetch(sc.t);
  for (int64_t i = 0; i < n; ++i) {
    bad += h_bc.data<float>()[i] != all[1].data<float>()[i];
    bad += h_a2a.data<float>()[i] != all[size_t(i / c)].data<float>()[rank * c + i % c];
    if (i < c) bad += h_sc.data<float>()[i] != all[0].data<float>()[rank * c + i];
  }
  for (int r = 0; r < world; ++r)
    for (int64_t i = 0; i < n; ++i) {
      bad += h_ag.data<float>()[r * n + i] != all[size_t(r)].data<float>()[i];
      if (rank == 1) bad += h_ga.data<float>()[r * n + i] != all[size_t(r)].data<float>()[i];
    }
  // Tear down in order: the graph holds NCCL kernels, then the communicator (collective finalize).
  cudaGraphExecDestroy(exec);
  cudaGraphDestroy(graph);
  comm.reset();
  std::cerr << "rank " << rank << ": communicator closed, " << bad << " wrong elements\n";
  return bad ? 1 : 0;
}

}  // namespace

TEST(Nccl, CollectivesInCudaGraph) {
  int world = gpu_count();
  if (world < 2) GTEST_SKIP() << "needs 2 GPUs, found " << world;
  std::string dir = (fs::temp_directory_path() / ("tessera_nccl_" + std::to_string(::getpid()))).string();
  fs::create_directories(dir);
  uint64_t seed = std::random_device{}();
  std::vector<pid_t> pids;
  for (int r = 0; r < world; ++r) {
    pid_t pid = fork();
    if (pid == 0) {
      int rc = 1;
      try {
        rc = rank_main(dir, r, world, seed);
      } catch (const std::exception& e) {
        std::cerr << "rank " << r << ": " << e.what() << "\n";
      }
      _exit(rc);
    }
    pids.push_back(pid);
  }
  for (int r = 0; r < world; ++r) {
    int status = 0;
    waitpid(pids[size_t(r)], &status, 0);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "rank " << r;
  }
  fs::remove_all(dir);
}
#endif
