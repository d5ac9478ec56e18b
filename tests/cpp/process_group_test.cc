// Process groups end to end on the CPU (gloo over the TCP store): ranks found
// from torchrun- and mpirun-style environments, a rank killed mid-collective
// or hung is named by the others within the timeout, and a rendezvous that
// never completes fails with a clear error.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <functional>
#include <thread>

#include "dist/process_group.h"
#include "forked_ranks.h"

using namespace tessera;
using namespace std::chrono_literals;

namespace {

int free_port() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  int port = ntohs(a.sin_port);
  close(fd);
  return port;
}

using namespace test;  // Env, torchrun_env, mpirun_env, run_ranks (forked_ranks.h)

int all_reduce_check(const Env& env, std::ostream& report) {
  auto pg = dist::init_process_group(dist::detect_rank_info(env), "gloo", 20s);
  Tensor t = Tensor::from<float>(DType::f32, {2}, {float(pg->info.rank + 1), 1.0f});
  pg->world->all_reduce(t, t, dist::ReduceOp::sum);
  int n = pg->info.world_size;
  bool ok = t.data<float>()[0] == float(n * (n + 1) / 2) && t.data<float>()[1] == float(n);
  report << "rank " << pg->info.rank << " launcher " << pg->info.launcher << (ok ? " ok" : " wrong");
  pg->world->barrier();
  return ok ? 0 : 1;
}

}  // namespace

TEST(ProcessGroup, TorchrunStyleEnvironment) {
  int port = free_port();
  for (const Outcome& o : run_ranks(3, [&](int r, std::ostream& rep) { return all_reduce_check(torchrun_env(r, 3, port), rep); }))
    EXPECT_TRUE(WIFEXITED(o.status) && WEXITSTATUS(o.status) == 0) << o.report;
}

TEST(ProcessGroup, MpirunStyleEnvironment) {
  int port = free_port();
  for (const Outcome& o : run_ranks(2, [&](int r, std::ostream& rep) { return all_reduce_check(mpirun_env(r, 2, port), rep); }))
    EXPECT_TRUE(WIFEXITED(o.status) && WEXITSTATUS(o.status) == 0) << o.report;
}

TEST(ProcessGroup, KilledRankIsNamedWithinTimeout) {
  int port = free_port();
  auto outcomes = run_ranks(3, [&](int r, std::ostream& rep) {
    auto pg = dist::init_process_group(dist::detect_rank_info(torchrun_env(r, 3, port)), "gloo", 10s);
    Tensor t = Tensor::zeros(DType::f32, {1 << 16});
    pg->world->all_reduce(t, t, dist::ReduceOp::sum);  // one good collective first
    if (r == 2) raise(SIGKILL);                          // dies before the second
    pg->world->all_reduce(t, t, dist::ReduceOp::sum);
    rep << "no error";
    return 0;
  });
  EXPECT_TRUE(WIFSIGNALED(outcomes[2].status) && WTERMSIG(outcomes[2].status) == SIGKILL);
  for (int r : {0, 1}) {
    const Outcome& o = outcomes[size_t(r)];
    EXPECT_TRUE(WIFEXITED(o.status) && WEXITSTATUS(o.status) == 1) << o.report;
    EXPECT_NE(o.report.find("rank 2 is gone"), std::string::npos) << o.report;
    EXPECT_LT(o.seconds, 10.0) << "survivors must fail within the timeout";
  }
}

TEST(ProcessGroup, HungRankIsNamedAfterTimeout) {
  int port = free_port();
  auto outcomes = run_ranks(2, [&](int r, std::ostream& rep) {
    auto pg = dist::init_process_group(dist::detect_rank_info(torchrun_env(r, 2, port)), "gloo", 2s);
    Tensor t = Tensor::zeros(DType::f32, {16});
    if (r == 1) {
      std::this_thread::sleep_for(6s);  // never joins the collective in time
      return 0;
    }
    pg->world->all_reduce(t, t, dist::ReduceOp::sum);
    rep << "no error";
    return 0;
  });
  EXPECT_TRUE(WIFEXITED(outcomes[0].status) && WEXITSTATUS(outcomes[0].status) == 1) << outcomes[0].report;
  EXPECT_NE(outcomes[0].report.find("rank 1 did not respond"), std::string::npos) << outcomes[0].report;
}

TEST(ProcessGroup, RendezvousThatNeverCompletesTimesOut) {
  int port = free_port();
  auto outcomes = run_ranks(1, [&](int, std::ostream&) {
    // Rank 0 of 3: the other two never start.
    auto pg = dist::init_process_group(dist::detect_rank_info(torchrun_env(0, 3, port)), "gloo", 1500ms);
    return 0;
  });
  EXPECT_TRUE(WIFEXITED(outcomes[0].status) && WEXITSTATUS(outcomes[0].status) == 1);
  EXPECT_NE(outcomes[0].report.find("1-2"), std::string::npos) << outcomes[0].report;
  EXPECT_LT(outcomes[0].seconds, 10.0);
}
