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
#include "collective_reference.h"
#include "forked_ranks.h"

using namespace tessera;
using namespace std::chrono_literals;

namespace {

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

using namespace test;  // the single-process reference (collective_reference.h), forked ranks (forked_ranks.h)

using EnvFn = Env (*)(int, int, int);

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
