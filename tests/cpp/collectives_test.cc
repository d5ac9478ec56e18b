// Every collective op, every reduction and axis, on 2 and 3 ranks (forked
// processes over gloo), fused and unfused, against a single-process reference
// computed from all ranks' inputs.
#include <gloo/rendezvous/file_store.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <functional>
#include <iostream>
#include <random>

#include "dist/device_mesh.h"
#include "dist/gloo_communicator.h"
#include "passes/pass_manager.h"
#include "tessera/tessera.h"
#include "collective_reference.h"

using namespace tessera;
namespace fs = std::filesystem;

namespace {

using namespace test;  // the reference (collective_reference.h)

// Body of one rank; returns the number of failures.
int run_rank(const std::string& dir, int rank, int world, uint64_t seed, bool fuse) {
  auto store = std::make_shared<gloo::rendezvous::FileStore>(dir);
  std::shared_ptr<dist::Communicator> comm = dist::GlooCommunicator::create(store, rank, world, std::chrono::seconds(30));
  std::vector<Tensor> inputs;
  for (int r = 0; r < world; ++r) inputs.push_back(rank_input(seed, r));
  int failures = 0;
  for (const Config& c : configs()) {
    Settings s;
    s.fuse_distributed_ops = fuse;
    Engine e = Engine::build(collective_graph(c, world), s);
    bool split = false;
    for (auto& n : e.graph().nodes()) split = split || n->op == "CollectiveWait";
    if (split == fuse) {
      std::cerr << "rank " << rank << ": " << c.op << " fused=" << fuse << " but graph split=" << split << "\n";
      ++failures;
    }
    e.set_communicator(comm);
    Tensor got = e.run({{"x", inputs[size_t(rank)]}}).at("y");
    Tensor want = expected(c, inputs, rank);
    bool ok = got.shape() == want.shape() && std::memcmp(got.raw(), want.raw(), want.nbytes()) == 0;
    if (!ok) {
      std::cerr << "rank " << rank << ": " << c.op << " reduce=" << c.reduce << " axis=" << c.axis << " world=" << world
                << " fuse=" << fuse << " mismatch: got " << to_string(got.shape()) << " want " << to_string(want.shape()) << "\n";
      ++failures;
    }
  }
  return failures;
}

// 2 x 2 mesh (dp, tp): y = AllGather_dp(AllReduce_tp(x)) against the reference.
int run_mesh_rank(const std::string& dir, int rank, int world, uint64_t seed, bool) {
  auto store = std::make_shared<gloo::rendezvous::FileStore>(dir);
  std::shared_ptr<dist::Communicator> comm = dist::GlooCommunicator::create(store, rank, world, std::chrono::seconds(30));
  dist::DeviceMesh mesh(world, {2, 2}, {"dp", "tp"});
  auto axes = mesh.split(*comm);
  Graph g;
  Value* x = g.add_value("x", DType::f32, kShape);
  g.inputs.push_back(x);
  Value* a = g.add_value("a", DType::f32, {});
  Value* y = g.add_value("y", DType::f32, {});
  Attributes ar, ag;
  ar.set("group", std::string("tp"));
  ag.set("group", std::string("dp"));
  ag.set("group_size", int64_t(2));
  g.add_node("AllReduce", "ar_tp", {x}, {a}, ar);
  g.add_node("AllGather", "ag_dp", {a}, {y}, ag);
  g.outputs.push_back(y);
  Engine e = Engine::build(std::move(g), Settings{});
  for (auto& [name, c] : axes) e.set_group(name, c);
  std::vector<Tensor> in;
  for (int r = 0; r < world; ++r) in.push_back(rank_input(seed, r));
  Tensor got = e.run({{"x", in[size_t(rank)]}}).at("y");
  // Ranks (dp, tp): 0=(0,0) 1=(0,1) 2=(1,0) 3=(1,1). tp groups {0,1},{2,3}; dp groups {0,2},{1,3}.
  std::vector<Tensor> tp_sums = {reduce({in[0], in[1]}, "sum"), reduce({in[2], in[3]}, "sum")};
  Tensor want = concat(tp_sums, 0);
  bool ok = got.shape() == want.shape() && std::memcmp(got.raw(), want.raw(), want.nbytes()) == 0;
  if (!ok) std::cerr << "rank " << rank << ": mesh result mismatch\n";
  return ok ? 0 : 1;
}

using RankBody = int (*)(const std::string&, int, int, uint64_t, bool);

void run_world(int world, bool fuse, RankBody body = run_rank) {
  std::string dir = (fs::temp_directory_path() / ("tessera_coll_" + std::to_string(::getpid()) + "_" + std::to_string(world) +
                                                  (fuse ? "f" : "u"))).string();
  fs::remove_all(dir);
  fs::create_directories(dir);
  uint64_t seed = std::random_device{}();
  std::vector<pid_t> pids;
  for (int r = 0; r < world; ++r) {
    pid_t pid = fork();
    if (pid == 0) {
      int failures = 1;
      try {
        failures = body(dir, r, world, seed, fuse);
      } catch (const std::exception& e) {
        std::cerr << "rank " << r << ": " << e.what() << "\n";
      }
      _exit(failures ? 1 : 0);
    }
    pids.push_back(pid);
  }
  for (int r = 0; r < world; ++r) {
    int status = 0;
    waitpid(pids[size_t(r)], &status, 0);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "rank " << r << " of " << world << " failed";
  }
  fs::remove_all(dir);
}

}  // namespace

TEST(Collectives, TwoRanksFused) { run_world(2, true); }
TEST(Collectives, TwoRanksUnfused) { run_world(2, false); }
TEST(Collectives, ThreeRanksFused) { run_world(3, true); }
TEST(Collectives, ThreeRanksUnfused) { run_world(3, false); }

TEST(Collectives, TwoByTwoMeshGroups) { run_world(4, true, run_mesh_rank); }

TEST(DeviceMesh, GroupsAndBadShapes) {
  dist::DeviceMesh mesh(6, {2, 3}, {"dp", "tp"});
  EXPECT_EQ(mesh.groups("tp"), (std::vector<std::vector<int>>{{0, 1, 2}, {3, 4, 5}}));
  EXPECT_EQ(mesh.groups("dp"), (std::vector<std::vector<int>>{{0, 3}, {1, 4}, {2, 5}}));
  EXPECT_THROW(dist::DeviceMesh(4, {2, 3}, {"dp", "tp"}), Error);
  EXPECT_THROW(mesh.groups("pp"), Error);
}

TEST(Collectives, SplitLeavesOverlapAndFusesAdjacent) {
  // y = AllReduce(x); z = Neg(x); out = y + z: Neg can overlap the all-reduce.
  Graph g;
  Value* x = g.add_value("x", DType::f32, {4});
  g.inputs.push_back(x);
  Value* y = g.add_value("y", DType::f32, {});
  Value* z = g.add_value("z", DType::f32, {});
  Value* o = g.add_value("o", DType::f32, {});
  g.add_node("AllReduce", "ar", {x}, {y});
  g.add_node("Neg", "neg", {x}, {z});
  g.add_node("Add", "add", {y, z}, {o});
  g.outputs.push_back(o);
  split_collectives(g);
  fuse_distributed_ops(g);
  std::vector<std::string> ops;
  for (auto& n : g.nodes()) ops.push_back(n->op);
  EXPECT_EQ(ops, (std::vector<std::string>{"AllReduceStart", "Neg", "CollectiveWait", "Add"}));
}

TEST(Collectives, NoCommunicatorIsAClearError) {
  Config c{"AllReduce", "sum", 0, 0};
  Engine e = Engine::build(collective_graph(c, 2), Settings{});
  try {
    e.run({{"x", rank_input(1, 0)}});
    FAIL() << "expected an error";
  } catch (const Error& err) {
    EXPECT_NE(std::string(err.what()).find("tessera launch"), std::string::npos) << err.what();
  }
}
