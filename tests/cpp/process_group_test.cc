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

using Env = std::map<std::string, std::string>;
Env torchrun_env(int rank, int world, int port) {
  return {{"RANK", std::to_string(rank)}, {"WORLD_SIZE", std::to_string(world)}, {"LOCAL_RANK", std::to_string(rank)},
          {"LOCAL_WORLD_SIZE", std::to_string(world)}, {"MASTER_ADDR", "127.0.0.1"}, {"MASTER_PORT", std::to_string(port)},
          {"GROUP_RANK", "0"}, {"TORCHELASTIC_RUN_ID", "test"}};
}
Env mpirun_env(int rank, int world, int port) {
  return {{"OMPI_COMM_WORLD_RANK", std::to_string(rank)}, {"OMPI_COMM_WORLD_SIZE", std::to_string(world)},
          {"OMPI_COMM_WORLD_LOCAL_RANK", std::to_string(rank)}, {"OMPI_COMM_WORLD_LOCAL_SIZE", std::to_string(world)},
          {"MASTER_ADDR", "127.0.0.1"}, {"MASTER_PORT", std::to_string(port)}};
}

struct Outcome {
  int status = 0;
  std::string message;  // what the rank wrote to its report file
  double seconds = 0;
};

// Fork `world` ranks running body(rank, report); collect exit status and report text.
std::vector<Outcome> run_ranks(int world, const std::function<int(int, std::ofstream&)>& body) {
  std::string base = "/tmp/tessera_pg_" + std::to_string(getpid()) + "_";
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
  std::vector<Outcome> out(static_cast<size_t>(world));
  for (int r = 0; r < world; ++r) {
    waitpid(pids[size_t(r)], &out[size_t(r)].status, 0);
    out[size_t(r)].seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::ifstream f(base + std::to_string(r));
    out[size_t(r)].message.assign(std::istreambuf_iterator<char>(f), {});
    std::remove((base + std::to_string(r)).c_str());
  }
  return out;
}

int all_reduce_check(const Env& env, std::ofstream& report) {
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
  for (const Outcome& o : run_ranks(3, [&](int r, std::ofstream& rep) { return all_reduce_check(torchrun_env(r, 3, port), rep); }))
    EXPECT_TRUE(WIFEXITED(o.status) && WEXITSTATUS(o.status) == 0) << o.message;
}

TEST(ProcessGroup, MpirunStyleEnvironment) {
  int port = free_port();
  for (const Outcome& o : run_ranks(2, [&](int r, std::ofstream& rep) { return all_reduce_check(mpirun_env(r, 2, port), rep); }))
    EXPECT_TRUE(WIFEXITED(o.status) && WEXITSTATUS(o.status) == 0) << o.message;
}

TEST(ProcessGroup, KilledRankIsNamedWithinTimeout) {
  int port = free_port();
  auto outcomes = run_ranks(3, [&](int r, std::ofstream& rep) {
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
    EXPECT_TRUE(WIFEXITED(o.status) && WEXITSTATUS(o.status) == 1) << o.message;
    EXPECT_NE(o.message.find("rank 2 is gone"), std::string::npos) << o.message;
    EXPECT_LT(o.seconds, 10.0) << "survivors must fail within the timeout";
  }
}

TEST(ProcessGroup, HungRankIsNamedAfterTimeout) {
  int port = free_port();
  auto outcomes = run_ranks(2, [&](int r, std::ofstream& rep) {
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
  EXPECT_TRUE(WIFEXITED(outcomes[0].status) && WEXITSTATUS(outcomes[0].status) == 1) << outcomes[0].message;
  EXPECT_NE(outcomes[0].message.find("rank 1 did not respond"), std::string::npos) << outcomes[0].message;
}

TEST(ProcessGroup, RendezvousThatNeverCompletesTimesOut) {
  int port = free_port();
  auto outcomes = run_ranks(1, [&](int, std::ofstream&) {
    // Rank 0 of 3: the other two never start.
    auto pg = dist::init_process_group(dist::detect_rank_info(torchrun_env(0, 3, port)), "gloo", 1500ms);
    return 0;
  });
  EXPECT_TRUE(WIFEXITED(outcomes[0].status) && WEXITSTATUS(outcomes[0].status) == 1);
  EXPECT_NE(outcomes[0].message.find("1-2"), std::string::npos) << outcomes[0].message;
  EXPECT_LT(outcomes[0].seconds, 10.0);
}
