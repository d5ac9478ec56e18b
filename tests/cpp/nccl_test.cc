// NCCL collectives on 2+ GPUs, captured in a CUDA graph and replayed, checked
// against the host reference. Skips cleanly without 2 GPUs (CI has none).
// On one GPU: a caller's own ncclComm_t wrapped (used, then still the
// caller's to use and destroy); the timeout that aborts a communicator; and
// a cuda engine's collectives host-staged over gloo for two ranks sharing the
// GPU (NCCL refuses that), against the CPU engine over the same gloo ranks.
#ifdef TESSERA_WITH_CUDA
#include <cuda_runtime.h>
#include <gloo/rendezvous/file_store.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <iostream>
#include <random>
#include <thread>

#include "dist/gloo_communicator.h"
#include "dist/nccl_communicator.h"
#include "tessera/tessera.h"

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

// Each rank runs in a fresh process: this test binary exec'd again with a
// filter naming the current test and TESSERA_TEST_RANK set. A plain fork
// would inherit whatever CUDA state earlier tests left in this process, and
// a forked child cannot use it ("initialization error").
struct Rank {
  int rank = 0;
  std::string dir;  // a fresh directory shared by the ranks (a gloo FileStore)
  uint64_t seed = 0;
};

[[noreturn]] void run_as_rank(const std::function<int(const Rank&)>& body) {
  Rank r{std::atoi(std::getenv("TESSERA_TEST_RANK")), std::getenv("TESSERA_TEST_DIR"),
         std::strtoull(std::getenv("TESSERA_TEST_SEED"), nullptr, 10)};
  int rc = 1;
  try {
    rc = body(r);
  } catch (const std::exception& e) {
    std::cerr << "rank " << r.rank << ": " << e.what() << "\n";
  }
  std::cerr.flush();
  _exit(rc);
}

// Runs `body` in `ranks` fresh processes; each must return 0.
void in_children(int ranks, const std::string& tag, const std::function<int(const Rank&)>& body) {
  if (std::getenv("TESSERA_TEST_RANK")) run_as_rank(body);
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  std::string filter = std::string("--gtest_filter=") + info->test_suite_name() + "." + info->name();
  std::string dir = (fs::temp_directory_path() / ("tessera_" + tag + "_" + std::to_string(::getpid()))).string();
  fs::remove_all(dir);
  fs::create_directories(dir);
  std::string seed = std::to_string(std::random_device{}());
  std::vector<pid_t> pids;
  for (int r = 0; r < ranks; ++r) {
    pid_t pid = fork();
    if (pid == 0) {
      setenv("TESSERA_TEST_RANK", std::to_string(r).c_str(), 1);
      setenv("TESSERA_TEST_DIR", dir.c_str(), 1);
      setenv("TESSERA_TEST_SEED", seed.c_str(), 1);
      char* argv[] = {const_cast<char*>("tessera_tests"), filter.data(), nullptr};
      execv("/proc/self/exe", argv);
      _exit(127);
    }
    pids.push_back(pid);
  }
  for (int r = 0; r < ranks; ++r) {
    int status = 0;
    waitpid(pids[size_t(r)], &status, 0);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
        << "rank " << r << (WIFSIGNALED(status) ? " killed by signal " + std::to_string(WTERMSIG(status)) : "");
  }
  fs::remove_all(dir);
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
  in_children(world, "nccl", [&](const Rank& r) { return rank_main(r.dir, r.rank, world, r.seed); });
}
namespace {

// y = Op(x) for one collective node.
Graph one_collective(const std::string& op, const std::string& reduce, int64_t axis, int root, int world, const Shape& shape) {
  Graph g;
  Value* x = g.add_value("x", DType::f32, shape);
  g.inputs.push_back(x);
  Value* a = g.add_value("a", DType::f32, {});
  Value* y = g.add_value("y", DType::f32, {});
  g.add_node("Neg", "neg", {x}, {a});
  Attributes attrs;
  attrs.set("axis", axis);
  attrs.set("group_size", int64_t(world));
  attrs.set("reduce", reduce);
  attrs.set("root", int64_t(root));
  g.add_node(op, "coll", {a}, {y}, attrs);
  g.outputs.push_back(y);
  return g;
}

int wrapped_rank(int) {
  if (cudaSetDevice(0) != cudaSuccess) return 1;
  ncclComm_t raw = nullptr;
  int dev = 0;
  if (ncclCommInitAll(&raw, 1, &dev) != ncclSuccess) return 1;
  cudaStream_t s;
  cudaStreamCreate(&s);
  int bad = 0;
  const int64_t n = 4096;
  Tensor x = host_input(3, 0, n);
  {
    std::shared_ptr<dist::NcclCommunicator> c = dist::NcclCommunicator::wrap(raw, s);
    bad += c->rank() != 0 || c->size() != 1 || c->handle() != raw;
    // Through the communicator: max over one rank is the input.
    DeviceBuf in(DType::f32, {n}), out(DType::f32, {n});
    cudaMemcpy(in.t.raw(), x.raw(), x.nbytes(), cudaMemcpyHostToDevice);
    c->all_reduce(in.t, out.t, dist::ReduceOp::max);
    c->wait();
    Tensor h = fetch(out.t);
    bad += std::memcmp(h.raw(), x.raw(), x.nbytes()) != 0;
    // Through a cuda engine, its collectives on the wrapped communicator.
    Settings st;
    st.target = "cuda";
    Engine e = Engine::build(one_collective("AllReduce", "sum", 0, 0, 1, {n}), st);
    e.set_communicator(c);
    for (int rep = 0; rep < 3; ++rep) {  // eager, captured, replayed
      Tensor y = e.run({{"x", x}}).at("y");
      for (int64_t i = 0; i < n; ++i) bad += y.data<float>()[i] != -x.data<float>()[i];
    }
  }  // engine and wrapper gone: the comm is still the caller's
  DeviceBuf buf(DType::f32, {n});
  cudaMemcpy(buf.t.raw(), x.raw(), x.nbytes(), cudaMemcpyHostToDevice);
  bad += ncclAllReduce(buf.t.raw(), buf.t.raw(), size_t(n), ncclFloat32, ncclSum, raw, s) != ncclSuccess;
  bad += cudaStreamSynchronize(s) != cudaSuccess;
  ncclResult_t state = ncclInternalError;
  ncclCommGetAsyncError(raw, &state);
  bad += state != ncclSuccess;
  Tensor h = fetch(buf.t);
  bad += std::memcmp(h.raw(), x.raw(), x.nbytes()) != 0;
  bad += ncclCommDestroy(raw) != ncclSuccess;
  cudaStreamDestroy(s);
  if (bad) std::cerr << "wrapped communicator: " << bad << " failures\n";
  return bad ? 1 : 0;
}

// A stream that stays busy past the timeout (a host callback held until a
// second thread lets it go, 1 s later): wait() must give up at its 200 ms
// timeout, abort the communicator and say so, where without the timeout it
// would return once the stream drains. (ncclCommAbort frees device memory,
// which waits for the device, so the throw itself comes after the release.)
// A later collective is a clear error; teardown does not hang.
std::atomic<bool> g_release{false};

int abort_rank(const std::string& dir) {
  auto store = std::make_shared<gloo::rendezvous::FileStore>(dir);
  auto c = dist::NcclCommunicator::create(*store, 0, 1, 0, std::chrono::seconds(20));
  c->set_timeout(std::chrono::milliseconds(200));
  int bad = 0;
  auto held = [](void*) {
    while (!g_release.load()) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  };
  cudaLaunchHostFunc(c->stream(), held, nullptr);
  std::thread releaser([] {
    std::this_thread::sleep_for(std::chrono::milliseconds(1000));
    g_release = true;
  });
  auto t0 = std::chrono::steady_clock::now();
  try {
    c->wait();
    std::cerr << "wait() returned on a stream busy past its timeout\n";
    ++bad;
  } catch (const Error& e) {
    std::string m = e.what();
    if (m.find("timed out after 200 ms") == std::string::npos || m.find("nccl") == std::string::npos)
      std::cerr << "unexpected message: " << m << "\n", ++bad;
  }
  releaser.join();
  auto took = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0);
  if (took > std::chrono::milliseconds(10000)) std::cerr << "wait() took " << took.count() << " ms\n", ++bad;
  if (!c->aborted()) std::cerr << "not aborted\n", ++bad;
  cudaStreamSynchronize(c->stream());
  DeviceBuf buf(DType::f32, {16});
  try {
    c->all_reduce(buf.t, buf.t, dist::ReduceOp::sum);
    std::cerr << "a collective on an aborted communicator returned\n", ++bad;
  } catch (const Error& e) {
    if (std::string(e.what()).find("aborted") == std::string::npos) std::cerr << "after abort: " << e.what() << "\n", ++bad;
  }
  c.reset();  // an aborted communicator is not finalized again
  return bad ? 1 : 0;
}

// Two ranks on GPU 0 over gloo: every collective, fused and as Start/Wait,
// three runs each (eager, the one that would capture, a third), equal to the
// CPU engine's answer over the same communicator.
int staged_rank(const std::string& dir, int rank) {
  const int world = 2;
  const Shape shape = {4, 6, 8};
  auto store = std::make_shared<gloo::rendezvous::FileStore>(dir);
  std::shared_ptr<dist::Communicator> comm = dist::GlooCommunicator::create(store, rank, world, std::chrono::seconds(60));
  struct Case { std::string op, reduce; int64_t axis; int root; };
  std::vector<Case> cases = {{"AllReduce", "sum", 0, 0}, {"AllReduce", "max", 0, 0}, {"ReduceScatter", "avg", 1, 0},
                             {"ReduceScatter", "sum", 0, 0}, {"AllGather", "sum", 1, 0}, {"AllGather", "sum", 0, 0},
                             {"AllToAll", "sum", 2, 0}, {"RootGather", "sum", 1, 1}, {"RootScatter", "sum", 1, 1},
                             {"Broadcast", "sum", 0, 1}};
  Tensor x = host_input(11, rank, numel(shape)).reshaped(shape);
  int bad = 0;
  for (const Case& k : cases)
    for (bool fuse : {true, false}) {
      Settings cpu, gpu;
      cpu.fuse_distributed_ops = gpu.fuse_distributed_ops = fuse;
      gpu.target = "cuda";
      Engine ref = Engine::build(one_collective(k.op, k.reduce, k.axis, k.root, world, shape), cpu);
      Engine e = Engine::build(one_collective(k.op, k.reduce, k.axis, k.root, world, shape), gpu);
      ref.set_communicator(comm);
      e.set_communicator(comm);
      Tensor want = ref.run({{"x", x}}).at("y");
      for (int rep = 0; rep < 3; ++rep) {
        Tensor got = e.run({{"x", x}}).at("y");
        if (got.shape() != want.shape() || std::memcmp(got.raw(), want.raw(), want.nbytes()) != 0) {
          std::cerr << "rank " << rank << ": " << k.op << " axis " << k.axis << (fuse ? " fused" : " start/wait") << " run " << rep
                    << ": host-staged cuda result differs from the cpu engine's\n";
          ++bad;
        }
      }
    }
  return bad ? 1 : 0;
}

}  // namespace

TEST(Nccl, WrappedCommIsUsedAndLeftToTheCaller) {
  if (gpu_count() < 1) GTEST_SKIP() << "needs a GPU";
  in_children(1, "nccl_wrap", [](const Rank& r) { return wrapped_rank(r.rank); });
}

TEST(Nccl, WaitPastTheTimeoutAbortsTheCommunicator) {
  if (gpu_count() < 1) GTEST_SKIP() << "needs a GPU";
  in_children(1, "nccl_abort", [](const Rank& r) { return abort_rank(r.dir); });
}

TEST(Nccl, HostStagedGlooCollectivesOnOneGpuMatchCpu) {
  if (gpu_count() < 1) GTEST_SKIP() << "needs a GPU";
  in_children(2, "nccl_staged", [](const Rank& r) { return staged_rank(r.dir, r.rank); });
}
#endif
