// Issue 4's CI line "the same tests pass under torchrun --no-python-style
// environment variables and mpirun-style ones", taken literally: the whole
// collective suite of collectives_test.cc (every op, every reduction and axis,
// fused and unfused, 2 and 3 ranks) run through the job path a real launcher
// takes — rank discovery from the environment, rendezvous through the TCP
// store (rank 0 hosts it), gloo over that store — instead of a FileStore.
// Also a 1-D device mesh (the 2-D one is in collectives_test.cc).
// Plus, under the mpirun-style environment (the torchrun-style one is in
// process_group_test.cc): a rank SIGKILLed while the others are inside a
// collective is named by them within the timeout, and a rendezvous that never
// completes times out naming the missing ranks.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <fstream>
#include <functional>
#include <iostream>
#include <random>
#include <thread>

#include "dist/device_mesh.h"
#include "dist/process_group.h"
#include "tessera/tessera.h"

using namespace tessera;
using namespace std::chrono_literals;

namespace {

using Env = std::map<std::string, std::string>;

// A port below Linux's ephemeral range (32768+), so no outgoing connection
// takes it between here and rank 0's bind.
int pick_port() {
  static std::mt19937 rng(std::random_device{}() ^ uint32_t(::getpid()));
  for (;;) {
    int port = 20000 + int(rng() % 12000);
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(uint16_t(port));
    bool free = ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    ::close(fd);
    if (free) return port;
  }
}

Env torchrun_env(int rank, int world, int port) {
  return {{"RANK", std::to_string(rank)},        {"WORLD_SIZE", std::to_string(world)},
          {"LOCAL_RANK", std::to_string(rank)},  {"LOCAL_WORLD_SIZE", std::to_string(world)},
          {"GROUP_RANK", "0"},                   {"MASTER_ADDR", "127.0.0.1"},
          {"MASTER_PORT", std::to_string(port)}, {"TORCHELASTIC_RUN_ID", "audit"}};
}

Env mpirun_env(int rank, int world, int port) {
  return {{"OMPI_COMM_WORLD_RANK", std::to_string(rank)}, {"OMPI_COMM_WORLD_SIZE", std::to_string(world)},
          {"OMPI_COMM_WORLD_LOCAL_RANK", std::to_string(rank)}, {"OMPI_COMM_WORLD_LOCAL_SIZE", std::to_string(world)},
          {"MASTER_ADDR", "127.0.0.1"}, {"MASTER_PORT", std::to_string(port)}};
}

using EnvFn = Env (*)(int, int, int);

// --- the single-process reference (as in collectives_test.cc) ---------------

const Shape kShape = {6, 12, 6};

Tensor rank_input(uint64_t seed, int rank) {
  std::mt19937 gen(uint32_t(seed * 131 + uint64_t(rank)));
  std::uniform_int_distribution<int> u(-50, 50);  // small integers: exact sums in f32 in any order
  Tensor t = Tensor::empty(DType::f32, kShape);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = float(u(gen));
  return t;
}

int64_t outer_of(const Shape& s, int64_t axis) {
  int64_t o = 1;
  for (int64_t i = 0; i < axis; ++i) o *= s[size_t(i)];
  return o;
}

Tensor chunk(const Tensor& t, int64_t axis, int64_t g, int64_t k) {
  Shape s = t.shape();
  int64_t n = s[size_t(axis)], outer = outer_of(s, axis), inner = t.numel() / (outer * n), c = n / g;
  s[size_t(axis)] = c;
  Tensor out = Tensor::empty(t.dtype(), s);
  for (int64_t o = 0; o < outer; ++o)
    std::memcpy(out.data<float>() + o * c * inner, t.data<float>() + (o * n + k * c) * inner, size_t(c * inner) * 4);
  return out;
}

Tensor concat(const std::vector<Tensor>& parts, int64_t axis) {
  Shape s = parts[0].shape();
  int64_t c = s[size_t(axis)], outer = outer_of(s, axis), inner = parts[0].numel() / (outer * c), g = int64_t(parts.size());
  s[size_t(axis)] = c * g;
  Tensor out = Tensor::empty(DType::f32, s);
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t r = 0; r < g; ++r)
      std::memcpy(out.data<float>() + (o * g + r) * c * inner, parts[size_t(r)].data<float>() + o * c * inner, size_t(c * inner) * 4);
  return out;
}

Tensor reduce(const std::vector<Tensor>& in, const std::string& op) {
  Tensor out = in[0].clone();
  for (int64_t i = 0; i < out.numel(); ++i) {
    float acc = in[0].data<float>()[i];
    for (size_t r = 1; r < in.size(); ++r) {
      float v = in[r].data<float>()[i];
      acc = op == "max" ? std::max(acc, v) : op == "min" ? std::min(acc, v) : acc + v;
    }
    out.data<float>()[i] = op == "avg" ? acc / float(in.size()) : acc;
  }
  return out;
}

struct Config {
  std::string op, reduce;
  int64_t axis;
  int root;
};

std::vector<Config> configs() {
  std::vector<Config> c;
  for (std::string red : {"sum", "avg", "max", "min"}) {
    c.push_back({"AllReduce", red, 0, 0});
    for (int64_t axis : {0, 1, -1}) c.push_back({"ReduceScatter", red, axis, 0});
  }
  for (int64_t axis : {0, 1, -1}) {
    c.push_back({"AllGather", "sum", axis, 0});
    c.push_back({"AllToAll", "sum", axis, 0});
    c.push_back({"RootGather", "sum", axis, 1});
    c.push_back({"RootScatter", "sum", axis, 1});
  }
  c.push_back({"Broadcast", "sum", 0, 1});
  return c;
}

Tensor expected(const Config& c, const std::vector<Tensor>& in, int rank) {
  int64_t g = int64_t(in.size()), axis = c.axis < 0 ? c.axis + 3 : c.axis;
  if (c.op == "AllReduce") return reduce(in, c.reduce);
  if (c.op == "ReduceScatter") return chunk(reduce(in, c.reduce), axis, g, rank);
  if (c.op == "AllGather") return concat(in, axis);
  if (c.op == "AllToAll") {
    std::vector<Tensor> parts;
    for (int64_t j = 0; j < g; ++j) parts.push_back(chunk(in[size_t(j)], axis, g, rank));
    return concat(parts, axis);
  }
  if (c.op == "RootGather") return rank == c.root ? concat(in, axis) : Tensor::zeros(DType::f32, concat(in, axis).shape());
  if (c.op == "RootScatter") return chunk(in[size_t(c.root)], axis, g, rank);
  return in[size_t(c.root)];  // Broadcast
}

// out = Collective(Neg(Neg(x))).
Graph collective_graph(const Config& c, int world) {
  Graph g;
  Value* x = g.add_value("x", DType::f32, kShape);
  g.inputs.push_back(x);
  Value* a = g.add_value("a", DType::f32, {});
  Value* b = g.add_value("b", DType::f32, {});
  Value* y = g.add_value("y", DType::f32, {});
  g.add_node("Neg", "neg1", {x}, {a});
  g.add_node("Neg", "neg2", {a}, {b});
  Attributes attrs;
  attrs.set("axis", c.axis);
  attrs.set("group_size", int64_t(world));
  attrs.set("reduce", c.reduce);
  attrs.set("root", int64_t(c.root));
  g.add_node(c.op, "coll", {b}, {y}, attrs);
  g.outputs.push_back(y);
  return g;
}

// --- forked ranks --------------------------------------------------------------

struct Outcome {
  int status = 0;
  std::string report;  // what the rank wrote (its error, or its verdict)
  double seconds = 0;
};

// Forks `world` ranks running body(rank, report) and returns exit status and report of each.
std::vector<Outcome> run_ranks(int world, const std::function<int(int, std::ostream&)>& body) {
  std::string base = "/tmp/tessera_audit4_" + std::to_string(::getpid()) + "_";
  std::vector<pid_t> pids;
  auto t0 = std::chrono::steady_clock::now();
  for (int r = 0; r < world; ++r) {
    pid_t pid = fork();
    if (pid == 0) {
      std::ofstream report(base + std::to_string(r));
      int rc = 99;
      try {
        rc = body(r, report);
      } catch (const std::exception& e) {
        report << e.what();
        rc = 1;
      }
      report.close();
      _exit(rc);
    }
    pids.push_back(pid);
  }
  std::vector<Outcome> out(size_t(world), Outcome{});
  for (int r = 0; r < world; ++r) {
    waitpid(pids[size_t(r)], &out[size_t(r)].status, 0);
    out[size_t(r)].seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::ifstream f(base + std::to_string(r));
    out[size_t(r)].report.assign(std::istreambuf_iterator<char>(f), {});
    std::remove((base + std::to_string(r)).c_str());
  }
  return out;
}

bool exited_ok(const Outcome& o) { return WIFEXITED(o.status) && WEXITSTATUS(o.status) == 0; }

// Every collective config, fused and unfused, on one rank found from `env`.
int collective_suite(const Env& env, std::ostream& report) {
  dist::RankInfo info = dist::detect_rank_info(env);
  auto pg = dist::init_process_group(info, "gloo", 30s);
  int rank = pg->info.rank, world = pg->info.world_size;
  uint64_t seed = 0x5eed;
  std::vector<Tensor> inputs;
  for (int r = 0; r < world; ++r) inputs.push_back(rank_input(seed, r));
  int failures = 0;
  for (bool fuse : {true, false})
    for (const Config& c : configs()) {
      Settings s;
      s.fuse_distributed_ops = fuse;
      Engine e = Engine::build(collective_graph(c, world), s);
      e.set_communicator(pg->world);
      Tensor got = e.run({{"x", inputs[size_t(rank)]}}).at("y");
      Tensor want = expected(c, inputs, rank);
      if (got.shape() != want.shape() || std::memcmp(got.raw(), want.raw(), want.nbytes()) != 0) {
        report << c.op << " reduce=" << c.reduce << " axis=" << c.axis << " fuse=" << fuse << " mismatch; ";
        ++failures;
      }
    }
  report << "launcher " << info.launcher << (failures ? " FAILED" : " ok");
  pg->finish();
  return failures ? 1 : 0;
}

void expect_suite_passes(EnvFn env_of, int world, const std::string& launcher) {
  int port = pick_port();
  auto outcomes = run_ranks(world, [&](int r, std::ostream& rep) { return collective_suite(env_of(r, world, port), rep); });
  for (int r = 0; r < world; ++r) {
    const Outcome& o = outcomes[size_t(r)];
    EXPECT_TRUE(exited_ok(o)) << "rank " << r << " of " << world << ": " << o.report;
    EXPECT_EQ(o.report, "launcher " + launcher + " ok") << "rank " << r;
  }
}

}  // namespace

TEST(CollectivesEnv, TorchrunStyleTwoRanks) { expect_suite_passes(torchrun_env, 2, "torchrun"); }
TEST(CollectivesEnv, TorchrunStyleThreeRanks) { expect_suite_passes(torchrun_env, 3, "torchrun"); }
TEST(CollectivesEnv, MpirunStyleTwoRanks) { expect_suite_passes(mpirun_env, 2, "mpirun"); }
TEST(CollectivesEnv, MpirunStyleThreeRanks) { expect_suite_passes(mpirun_env, 3, "mpirun"); }

// Rank 2 is killed by SIGKILL from a thread while every rank is inside a
// stream of large all-reduces: the survivors must fail (exit 1) within the
// timeout, naming rank 2.
TEST(CollectivesEnv, MpirunStyleRankKilledMidCollectiveIsNamed) {
  int port = pick_port();
  auto outcomes = run_ranks(3, [&](int r, std::ostream& rep) {
    auto pg = dist::init_process_group(dist::detect_rank_info(mpirun_env(r, 3, port)), "gloo", 10s);
    Tensor t = Tensor::zeros(DType::f32, {1 << 20});
    pg->world->all_reduce(t, t, dist::ReduceOp::sum);  // everyone is in
    if (r == 2)
      std::thread([] {
        std::this_thread::sleep_for(50ms);
        raise(SIGKILL);
      }).detach();
    for (int i = 0; i < 100000; ++i) pg->world->all_reduce(t, t, dist::ReduceOp::sum);
    rep << "no error";
    return 0;
  });
  EXPECT_TRUE(WIFSIGNALED(outcomes[2].status) && WTERMSIG(outcomes[2].status) == SIGKILL) << outcomes[2].report;
  for (int r : {0, 1}) {
    const Outcome& o = outcomes[size_t(r)];
    EXPECT_TRUE(WIFEXITED(o.status) && WEXITSTATUS(o.status) == 1) << o.report;
    EXPECT_NE(o.report.find("rank 2 is gone"), std::string::npos) << o.report;
    EXPECT_LT(o.seconds, 10.0) << "survivors must fail within the timeout";
  }
}

TEST(CollectivesEnv, MpirunStyleRendezvousThatNeverCompletesTimesOut) {
  int port = pick_port();
  auto outcomes = run_ranks(1, [&](int, std::ostream&) {
    dist::init_process_group(dist::detect_rank_info(mpirun_env(0, 3, port)), "gloo", 1500ms);  // ranks 1, 2 never start
    return 0;
  });
  EXPECT_TRUE(WIFEXITED(outcomes[0].status) && WEXITSTATUS(outcomes[0].status) == 1);
  EXPECT_NE(outcomes[0].report.find("2 of 3 ranks never joined: 1-2"), std::string::npos) << outcomes[0].report;
  EXPECT_LT(outcomes[0].seconds, 10.0);
}

// A mesh of one dimension: one group holding every rank, whose communicator
// (split from the world) reduces like the world.
TEST(CollectivesEnv, OneDimensionalMesh) {
  dist::DeviceMesh mesh(3, {3}, {"tp"});
  EXPECT_EQ(mesh.groups("tp"), (std::vector<std::vector<int>>{{0, 1, 2}}));
  EXPECT_EQ(mesh.coords(2), (std::vector<int>{2}));
  int port = pick_port();
  auto outcomes = run_ranks(3, [&](int r, std::ostream& rep) {
    auto pg = dist::init_process_group(dist::detect_rank_info(torchrun_env(r, 3, port)), "gloo", 30s);
    auto axes = dist::DeviceMesh(3, {3}, {"tp"}).split(*pg->world);
    Tensor t = Tensor::from<float>(DType::f32, {2}, {float(r + 1), 1.0f});
    axes.at("tp")->all_reduce(t, t, dist::ReduceOp::sum);
    bool ok = axes.at("tp")->size() == 3 && axes.at("tp")->rank() == r && t.data<float>()[0] == 6.0f && t.data<float>()[1] == 3.0f;
    rep << (ok ? "ok" : "wrong");
    axes.clear();
    pg->finish();
    return ok ? 0 : 1;
  });
  for (const Outcome& o : outcomes) EXPECT_TRUE(exited_ok(o)) << o.report;
}
