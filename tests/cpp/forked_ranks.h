// Forked test ranks for the process-group tests (process_group_test.cc,
// audit_4_collectives_env_test.cc): the environment each launcher style
// gives a rank, and `world` forked processes running a body, with each one's
// exit status, report text and finishing time.
#pragma once
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <functional>
#include <map>
#include <ostream>
#include <string>
#include <vector>

namespace tessera::test {

using Env = std::map<std::string, std::string>;

inline Env torchrun_env(int rank, int world, int port) {
  return {{"RANK", std::to_string(rank)}, {"WORLD_SIZE", std::to_string(world)}, {"LOCAL_RANK", std::to_string(rank)},
          {"LOCAL_WORLD_SIZE", std::to_string(world)}, {"MASTER_ADDR", "127.0.0.1"}, {"MASTER_PORT", std::to_string(port)},
          {"GROUP_RANK", "0"}, {"TORCHELASTIC_RUN_ID", "test"}};
}

inline Env mpirun_env(int rank, int world, int port) {
  return {{"OMPI_COMM_WORLD_RANK", std::to_string(rank)}, {"OMPI_COMM_WORLD_SIZE", std::to_string(world)},
          {"OMPI_COMM_WORLD_LOCAL_RANK", std::to_string(rank)}, {"OMPI_COMM_WORLD_LOCAL_SIZE", std::to_string(world)},
          {"MASTER_ADDR", "127.0.0.1"}, {"MASTER_PORT", std::to_string(port)}};
}

struct Outcome {
  int status = 0;
  std::string report;  // what the rank wrote (its error, or its verdict)
  double seconds = 0;
};

// Forks `world` ranks running body(rank, report) and returns exit status and report of each.
inline std::vector<Outcome> run_ranks(int world, const std::function<int(int, std::ostream&)>& body) {
  std::string base = "/tmp/tessera_ranks_" + std::to_string(::getpid()) + "_";
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

}  // namespace tessera::test
