// The launcher from C++: option resolution, and whole launches whose ranks are
// this test binary re-run in "child mode" (LaunchChild.Run), which detects its
// rank from the environment and rendezvous through the launcher's store.
// The CLI's end-to-end tests are tests/python/test_launch.py.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <sstream>
#include <thread>

#include "core/error.h"
#include "dist/launcher.h"
#include "dist/store.h"

using namespace tessera;
using namespace tessera::dist;
using namespace std::chrono_literals;

namespace {

constexpr const char* kChildVar = "TESSERA_TEST_LAUNCH_CHILD";

std::string self_exe() {
  char buf[4096];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  return n > 0 ? std::string(buf, size_t(n)) : "";
}

std::string error_of(const LaunchOptions& o) {
  try {
    resolve_launch_options(o);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

LaunchOptions with_program() {
  LaunchOptions o;
  o.program = {"true"};
  return o;
}

// Launches this binary as `n` ranks running `scenario`, output captured.
struct ChildLaunch {
  std::ostringstream out, err;
  LaunchResult result;
  std::chrono::steady_clock::duration took;

  ChildLaunch(const std::string& scenario, int n) {
    LaunchOptions o;
    o.nproc_per_node = n;
    o.timeout = 10s;
    o.program = {self_exe(), "--gtest_filter=LaunchChild.Run"};
    o.out = &out;
    o.err = &err;
    setenv(kChildVar, scenario.c_str(), 1);
    auto t0 = std::chrono::steady_clock::now();
    result = launch(o);
    took = std::chrono::steady_clock::now() - t0;
    unsetenv(kChildVar);
  }
};

}  // namespace

TEST(LaunchOptions, Defaults) {
  LaunchOptions o = resolve_launch_options(with_program());
  EXPECT_EQ(o.master_addr, "127.0.0.1");
  EXPECT_EQ(o.master_port, 0);  // one node: any free port
  LaunchOptions two = with_program();
  two.nnodes = 2;
  EXPECT_EQ(resolve_launch_options(two).master_port, 29500);
}

TEST(LaunchOptions, RdzvEndpointForms) {
  LaunchOptions o = with_program();
  o.rdzv_endpoint = "node0:1234";
  o = resolve_launch_options(o);
  EXPECT_EQ(o.master_addr, "node0");
  EXPECT_EQ(o.master_port, 1234);
  o = with_program();
  o.rdzv_endpoint = "node0";
  EXPECT_EQ(resolve_launch_options(o).master_port, 29400);
  o.rdzv_endpoint = "[::1]:77";
  o = resolve_launch_options(o);
  EXPECT_EQ(o.master_addr, "::1");
  EXPECT_EQ(o.master_port, 77);
  o = with_program();
  o.rdzv_endpoint = "fe80::2";
  EXPECT_EQ(resolve_launch_options(o).master_addr, "fe80::2");
}

TEST(LaunchOptions, ErrorsNameTheFlag) {
  LaunchOptions o = with_program();
  o.rdzv_backend = "etcd-v2";
  EXPECT_NE(error_of(o).find("--rdzv-backend 'etcd-v2' is not supported"), std::string::npos);
  o = with_program();
  o.program.clear();
  EXPECT_NE(error_of(o).find("no program to launch"), std::string::npos);
  o = with_program();
  o.nnodes = 2;
  o.master_port = 0;
  EXPECT_NE(error_of(o).find("--master-port 0"), std::string::npos);
  o.master_port = 70000;
  EXPECT_NE(error_of(o).find("--master-port 70000 is not a port number"), std::string::npos);
  o = with_program();
  o.node_rank = -1;
  EXPECT_NE(error_of(o).find("--node-rank -1"), std::string::npos);
  o = with_program();
  o.rdzv_endpoint = "[::1";
  EXPECT_NE(error_of(o).find("unmatched '['"), std::string::npos);
  o.rdzv_endpoint = ":5";
  EXPECT_NE(error_of(o).find("no host"), std::string::npos);
}

// Child mode: what each rank does in the launches below.
TEST(LaunchChild, Run) {
  const char* scenario = std::getenv(kChildVar);
  if (!scenario) GTEST_SKIP() << "runs only as a rank under the launch tests";
  RankInfo info = detect_rank_info();
  ASSERT_EQ(info.launcher, "tessera launch");
  ASSERT_TRUE(info.store_hosted_by_launcher);
  Rendezvous rv = rendezvous(info, 10s);
  ASSERT_EQ(rv.server, nullptr);  // the launcher hosts
  Store& s = *rv.store;
  if (std::string(scenario) == "exchange") {
    s.set("rank/" + std::to_string(info.rank), std::to_string(info.rank * 10));
    std::string seen;
    for (int r = 0; r < info.world_size; ++r) seen += (r ? "," : "") + s.get("rank/" + std::to_string(r));
    std::printf("seen %s\n", seen.c_str());
    rv.finish(10s);
  } else if (std::string(scenario) == "one_dies") {
    if (info.rank == 1) _exit(3);
    s.get("never/set");  // blocks until the launcher stops this rank
  }
}

TEST(Launch, RanksRendezvousThroughTheLaunchersStore) {
  ChildLaunch l("exchange", 3);
  ASSERT_TRUE(l.result.ok) << l.result.error << "\n" << l.err.str();
  for (int r = 0; r < 3; ++r)
    EXPECT_NE(l.out.str().find("[rank " + std::to_string(r) + "]: seen 0,10,20\n"), std::string::npos) << l.out.str();
}

TEST(Launch, DeadRankStopsTheOthersBlockedInTheStore) {
  ChildLaunch l("one_dies", 3);
  EXPECT_FALSE(l.result.ok);
  EXPECT_EQ(l.result.error.rfind("rank 1 (pid ", 0), 0u) << l.result.error;
  EXPECT_NE(l.result.error.find("exited with code 3"), std::string::npos) << l.result.error;
  EXPECT_LT(l.took, 5s);
}
