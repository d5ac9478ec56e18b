// The rendezvous store: set/get/add/wait across threads and processes,
// timeouts that name the key and the endpoint, dead-rank detection, barriers.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <random>
#include <thread>

#include "core/error.h"
#include "dist/socket.h"
#include "dist/store.h"

using namespace tessera;
using namespace tessera::dist;
using namespace std::chrono_literals;

namespace {

// A port nothing listens on right now. Taken below Linux's ephemeral range
// (32768+), so that the kernel cannot hand it to some other process's
// connection or port-0 listener between this check and the test's bind.
int free_port() {
  static std::mt19937 rng(std::random_device{}());
  for (;;) {
    int port = 20000 + int(rng() % 12000);
    try {
      net::listen_tcp("127.0.0.1", port);
      return port;
    } catch (const Error&) {
      // taken: try another
    }
  }
}

std::unique_ptr<Store> client(const StoreServer& s, int rank) { return Store::connect("127.0.0.1", s.port(), rank, 5s); }

// The Distributed error message thrown by f, or "" if none.
template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Distributed);
    return e.what();
  }
  return "";
}

// Runs `body` in a forked child that reports success through its exit code.
template <typename F>
pid_t fork_child(F&& body) {
  pid_t pid = fork();
  if (pid == 0) {
    int code = 0;
    try {
      code = body() ? 0 : 1;
    } catch (...) {
      code = 2;
    }
    _exit(code);
  }
  return pid;
}

int exit_code(pid_t pid) {
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

}  // namespace

TEST(DistStore, SetGetAddCheck) {
  StoreServer server("127.0.0.1", 0);
  auto s = client(server, 0);
  s->set("a", std::string("x\0y", 3));
  EXPECT_EQ(s->get("a"), std::string("x\0y", 3));
  EXPECT_EQ(s->add("n", 5), 5);
  EXPECT_EQ(s->add("n", -2), 3);
  EXPECT_EQ(s->get("n"), "3");
  EXPECT_EQ(s->add("n", 0), 3);
  EXPECT_TRUE(s->check({"a", "n"}));
  EXPECT_FALSE(s->check({"a", "missing"}));
  EXPECT_EQ(s->num_keys(), 2);
  EXPECT_TRUE(s->delete_key("a"));
  EXPECT_FALSE(s->delete_key("a"));
  EXPECT_NE(error_of([&] { s->add("n2", 1), s->set("t", "text"), s->add("t", 1); }).find("not an integer"), std::string::npos);
  EXPECT_EQ(s->get("n2"), "1");  // an error reply leaves the connection usable
  EXPECT_EQ(s->rank(), 0);
  EXPECT_EQ(s->timeout(), 5000ms);
}

TEST(DistStore, GetWaitsForAnotherThread) {
  StoreServer server("127.0.0.1", 0);
  std::vector<std::thread> readers;
  std::vector<std::string> got(4);
  for (int r = 0; r < 4; ++r)
    readers.emplace_back([&, r] {
      auto s = client(server, r);
      s->wait({"go"});
      got[size_t(r)] = s->get("value");
    });
  std::this_thread::sleep_for(50ms);
  auto writer = client(server, 4);
  writer->set("value", "42");
  writer->set("go", "");
  for (auto& t : readers) t.join();
  for (const std::string& g : got) EXPECT_EQ(g, "42");
}

TEST(DistStore, AddIsAtomicAcrossThreads) {
  StoreServer server("127.0.0.1", 0);
  std::vector<std::thread> threads;
  for (int r = 0; r < 4; ++r)
    threads.emplace_back([&, r] {
      auto s = client(server, r);
      for (int i = 0; i < 200; ++i) s->add("counter", 1);
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(client(server, -1)->add("counter", 0), 800);
}

TEST(DistStore, AcrossProcessesAndALateServer) {
  int port = free_port();
  // Children start first and retry connecting until the server appears.
  std::vector<pid_t> kids;
  for (int r = 1; r <= 3; ++r)
    kids.push_back(fork_child([port, r] {
      auto s = Store::connect("127.0.0.1", port, r, 5s);
      s->set("hello/" + std::to_string(r), "from " + std::to_string(r));
      s->add("arrived", 1);
      return s->get("reply") == "welcome";
    }));
  std::this_thread::sleep_for(100ms);
  StoreServer server("127.0.0.1", port);
  auto s = client(server, 0);
  s->wait({"hello/1", "hello/2", "hello/3"});
  EXPECT_EQ(s->get("hello/2"), "from 2");
  s->set("reply", "welcome");
  for (pid_t k : kids) EXPECT_EQ(exit_code(k), 0);
  EXPECT_EQ(s->add("arrived", 0), 3);
  EXPECT_TRUE(s->dead_ranks().empty());  // they all closed cleanly
}

TEST(DistStore, GetTimeoutNamesTheKeyAndStaysUsable) {
  StoreServer server("127.0.0.1", 0);
  auto s = client(server, 2);
  s->set_timeout(150ms);
  auto t0 = std::chrono::steady_clock::now();
  std::string err = error_of([&] { s->get("never/set"); });
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 2s);
  EXPECT_NE(err.find("get('never/set') timed out after 150 ms"), std::string::npos) << err;
  EXPECT_NE(err.find("127.0.0.1:" + std::to_string(server.port())), std::string::npos) << err;
  err = error_of([&] { s->wait({"k1", "k2"}, 100ms); });
  EXPECT_NE(err.find("wait for 'k1', 'k2' timed out after 100 ms"), std::string::npos) << err;
  EXPECT_FALSE(s->wait_for({"k1"}, 10ms));
  // The cancelled waits left the connection in step.
  s->set("k1", "v");
  EXPECT_EQ(s->get("k1"), "v");
  EXPECT_TRUE(s->wait_for({"k1"}, 10ms));
}

TEST(DistStore, ConnectTimeoutNamesHostPort) {
  int port = free_port();
  auto t0 = std::chrono::steady_clock::now();
  std::string err = error_of([&] { Store::connect("127.0.0.1", port, 1, 300ms); });
  auto took = std::chrono::steady_clock::now() - t0;
  EXPECT_GE(took, 300ms);
  EXPECT_LT(took, 2s);
  EXPECT_NE(err.find("could not connect to the store at 127.0.0.1:" + std::to_string(port) + " within 300 ms"), std::string::npos)
      << err;
}

TEST(DistStore, StrangerIsNotAStore) {
  net::Fd listener = net::listen_tcp("127.0.0.1", 0);  // accepts (backlog) but never answers
  std::string err = error_of([&] { Store::connect("127.0.0.1", net::local_port(listener.get()), 0, 200ms); });
  EXPECT_NE(err.find("did not answer the store handshake"), std::string::npos) << err;
}

TEST(DistStore, GarbageClientDoesNotHurtOthers) {
  StoreServer server("127.0.0.1", 0);
  auto s = client(server, 0);
  std::string e;
  net::Fd raw = net::try_connect("127.0.0.1", server.port(), e);
  ASSERT_TRUE(raw.valid()) << e;
  ASSERT_TRUE(net::send_all(raw.get(), "GET / HTTP/1.1\r\n\r\n"));
  char byte;
  EXPECT_EQ(::recv(raw.get(), &byte, 1, 0), 0);  // the server hangs up on it
  s->set("still", "fine");
  EXPECT_EQ(s->get("still"), "fine");
}

TEST(DistStore, DeadRankAfterSigkill) {
  StoreServer server("127.0.0.1", 0);
  int port = server.port();
  pid_t victim = fork_child([port] {
    auto s = Store::connect("127.0.0.1", port, 3, 5s);
    s->set("victim/ready", "1");
    pause();
    return true;
  });
  pid_t polite = fork_child([port] {
    auto s = Store::connect("127.0.0.1", port, 4, 5s);
    s->set("polite/ready", "1");
    return true;  // the destructor says goodbye
  });
  auto s = client(server, 0);
  s->wait({"victim/ready", "polite/ready"});
  EXPECT_EQ(exit_code(polite), 0);
  kill(victim, SIGKILL);
  EXPECT_EQ(exit_code(victim), 128 + SIGKILL);
  std::vector<int> dead;
  for (int i = 0; i < 200 && dead.empty(); ++i, std::this_thread::sleep_for(10ms)) dead = s->dead_ranks();
  EXPECT_EQ(dead, std::vector<int>{3});
  // A wait that the dead rank would have ended says who died.
  s->set_timeout(100ms);
  std::string err = error_of([&] { s->get("victim/result"); });
  EXPECT_NE(err.find("ranks whose connection dropped (killed or crashed?): 3"), std::string::npos) << err;
  // Reconnecting brings it back.
  client(server, 3)->close();
  EXPECT_TRUE(s->dead_ranks().empty());
}

TEST(DistStore, ServerGoingAwayEndsAWait) {
  auto server = std::make_unique<StoreServer>("127.0.0.1", 0);
  auto s = client(*server, 1);
  std::thread stopper([&] {
    std::this_thread::sleep_for(100ms);
    server.reset();
  });
  std::string err = error_of([&] { s->get("k"); });
  stopper.join();
  EXPECT_NE(err.find("the server closed the connection"), std::string::npos) << err;
  EXPECT_NE(error_of([&] { s->set("k", "v"); }).find("unusable"), std::string::npos);
}

TEST(DistStore, BarrierReleasesEveryoneAndIsReusable) {
  StoreServer server("127.0.0.1", 0);
  std::vector<std::thread> threads;
  std::atomic<int> passed{0};
  for (int r = 0; r < 3; ++r)
    threads.emplace_back([&, r] {
      auto s = client(server, r);
      for (int round = 0; round < 3; ++round) {
        if (r == round) std::this_thread::sleep_for(30ms);  // a different straggler each round
        barrier(*s, "b", 3, 5s);
        passed++;
      }
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(passed.load(), 9);
}

TEST(DistStore, BarrierTimeoutListsMissingRanks) {
  StoreServer server("127.0.0.1", 0);
  std::vector<std::string> errors(2);
  std::vector<std::thread> threads;
  for (int r : {0, 2})
    threads.emplace_back([&, r] {
      auto s = client(server, r);
      errors[size_t(r / 2)] = error_of([&] { barrier(*s, "sync", 5, 200ms); });
    });
  for (auto& t : threads) t.join();
  for (const std::string& err : errors)
    EXPECT_NE(err.find("barrier 'sync' timed out after 200 ms: 3 of 5 ranks never joined: 1, 3-4"), std::string::npos) << err;
}

TEST(DistStore, RendezvousRankZeroHosts) {
  int port = free_port();
  std::vector<std::thread> threads;
  std::vector<int64_t> seen(3);
  for (int r = 0; r < 3; ++r)
    threads.emplace_back([&, r] {
      RankInfo info;
      info.rank = r;
      info.world_size = 3;
      info.store_port = port;
      if (r != 0) std::this_thread::sleep_for(20ms);
      EXPECT_EQ(error_of([&] {
                  Rendezvous rv = rendezvous(info, 5s);
                  EXPECT_EQ(rv.server != nullptr, r == 0);
                  seen[size_t(r)] = rv.store->add("joined", 1);
                  rv.finish(5s);  // rank 0 keeps hosting until the others have left
                  EXPECT_EQ(rv.store, nullptr);
                }),
                "");
    });
  for (auto& t : threads) t.join();
  std::sort(seen.begin(), seen.end());
  EXPECT_EQ(seen, (std::vector<int64_t>{1, 2, 3}));
}

TEST(DistStore, RendezvousTimeoutListsRanksThatNeverJoined) {
  RankInfo info;
  info.world_size = 3;
  info.store_port = free_port();
  std::string err = error_of([&] { rendezvous(info, 200ms); });
  EXPECT_NE(err.find("2 of 3 ranks never joined: 1-2"), std::string::npos) << err;
  info.rank = 1;
  info.store_port = 0;
  EXPECT_NE(error_of([&] { rendezvous(info, 200ms); }).find("does not know the store's port"), std::string::npos);
}

TEST(DistStore, HostWaitsForRanksToLeave) {
  StoreServer server("127.0.0.1", 0);
  auto a = client(server, 0);
  auto b = client(server, 1);
  auto tool = client(server, -1);  // launchers and tools are not ranks
  for (int i = 0; i < 100 && server.connected_ranks() != 2; ++i) std::this_thread::sleep_for(5ms);
  EXPECT_EQ(server.connected_ranks(), 2);
  EXPECT_FALSE(server.wait_for_ranks_to_leave(50ms));
  std::thread leaver([&] {
    std::this_thread::sleep_for(30ms);
    a->close();
    b.reset();
  });
  EXPECT_TRUE(server.wait_for_ranks_to_leave(5s));
  leaver.join();
  EXPECT_EQ(server.connected_ranks(), 0);
}

TEST(DistStore, FormatRanks) {
  EXPECT_EQ(format_ranks({}), "");
  EXPECT_EQ(format_ranks({0, 1, 2, 3, 5, 7, 8}), "0-3, 5, 7-8");
  EXPECT_EQ(listen_host_for("127.0.0.1"), "127.0.0.1");
  EXPECT_EQ(listen_host_for("node0"), "0.0.0.0");
  EXPECT_EQ(listen_host_for("fe80::1"), "::");
}
