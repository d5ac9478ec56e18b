// The rendezvous store: a small key/value store over TCP through which ranks
// find each other and exchange bootstrap data (NCCL unique ids, gloo
// addresses), with the semantics of torch's TCPStore: set/get/add/check/wait,
// get and wait block until the key exists or the timeout passes.
//
// One process hosts a StoreServer (rank 0, or `tessera launch`); every rank
// connects a Store client. The server parks blocked requests and answers them
// when the key arrives, so waiting costs no CPU anywhere; a client that times
// out cancels its parked request and reports the timeout itself. The server
// also notices clients that vanish without saying goodbye (killed, crashed):
// dead_ranks() names them, and timeout errors mention them.
#pragma once
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "dist/env.h"
#include "dist/socket.h"

namespace tessera::dist {

// Serves the store from a background thread (one poll() loop, many clients).
class StoreServer {
 public:
  // Listens on host:port; port 0 = pick a free one (see port()). host "" or
  // "0.0.0.0" = every IPv4 interface, "::" = every interface.
  StoreServer(const std::string& host, int port);
  ~StoreServer();  // stops the thread; connected clients see the connection close
  StoreServer(const StoreServer&) = delete;
  StoreServer& operator=(const StoreServer&) = delete;

  int port() const;
  // Ranks (clients with rank >= 0) connected and not yet gone or said goodbye.
  int connected_ranks() const;
  // Blocks until no rank is connected (all closed or dropped); false on timeout.
  // The host calls it before destroying the server, so that no rank loses
  // the store in the middle of its last request.
  bool wait_for_ranks_to_leave(std::chrono::milliseconds timeout) const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

// A client connection. Thread-safe: one mutex serialises requests on the
// socket, so a thread blocked in get() holds up the others on this Store;
// give each thread that waits its own Store.
class Store {
 public:
  // Connects to host:port, retrying until `timeout` (the server may start
  // later), and introduces itself as `rank` (-1 for launchers and tools,
  // which are never reported dead). The error names host:port and the timeout.
  static std::unique_ptr<Store> connect(const std::string& host, int port, int rank,
                                        std::chrono::milliseconds timeout);
  ~Store();  // close()
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  void set(const std::string& key, const std::string& value);
  // Blocks until the key exists; after timeout() a Distributed error names the key.
  std::string get(const std::string& key);
  // Atomic counter (the value is kept as decimal text, so get() reads "3");
  // a missing key counts from 0. Returns the new value; delta 0 reads it.
  int64_t add(const std::string& key, int64_t delta);
  // Whether every key exists, without waiting.
  bool check(const std::vector<std::string>& keys);
  // Blocks until every key exists; a Distributed error names the missing keys on timeout.
  void wait(const std::vector<std::string>& keys);
  void wait(const std::vector<std::string>& keys, std::chrono::milliseconds timeout);
  // Like wait(), but returns false on timeout instead of throwing.
  bool wait_for(const std::vector<std::string>& keys, std::chrono::milliseconds timeout);
  // Removes a key; returns whether it existed.
  bool delete_key(const std::string& key);
  int64_t num_keys();

  void set_timeout(std::chrono::milliseconds t);  // default 60 s
  std::chrono::milliseconds timeout() const;

  // Ranks whose connection to the server dropped without a clean close()
  // (killed, crashed), sorted; a rank that connects again is removed.
  std::vector<int> dead_ranks();
  // Says goodbye and closes; idempotent, also run by the destructor.
  void close();
  int rank() const { return rank_; }
  const std::string& host() const { return host_; }
  int port() const { return port_; }

 private:
  Store(std::string host, int port, int rank, net::Fd fd);
  std::string where() const;
  void handshake(net::Clock::time_point deadline);
  void send_locked(const std::string& frame);
  bool read_frame_locked(net::Clock::time_point deadline, std::string& payload);
  std::string call_locked(const std::string& frame, const char* what);
  bool call_parked_locked(const std::string& frame, std::chrono::milliseconds timeout, std::string& payload);
  void cancel_locked();
  [[noreturn]] void broken_locked(const std::string& why);
  std::vector<int> dead_ranks_locked();
  std::string timeout_message_locked(const std::string& what, std::chrono::milliseconds timeout);

  std::string host_;
  int port_;
  int rank_;
  mutable std::mutex mu_;
  net::Fd fd_;
  std::string rbuf_;      // bytes received but not yet consumed
  std::string broken_;    // why the connection is unusable, once it is
  std::atomic<int64_t> timeout_ms_{60000};  // atomic: read while another thread holds mu_
};

// Everyone-waits-for-everyone: each rank sets `name/<rank>` and bumps the
// counter `name/count`; the last to arrive releases the others. Reusable with
// the same name (each round is a generation of the counter). On timeout the
// Distributed error lists the ranks that never arrived and any dead ranks.
void barrier(Store& store, const std::string& name, int world_size, std::chrono::milliseconds timeout);

// A process's entry into the job: rank 0 hosts the server unless the launcher
// already does; every rank connects; then a barrier of all world_size ranks
// whose timeout error lists the ranks that never joined. Keep the result alive
// until every rank is done with the store (rank 0's server dies with it):
// finish() is the clean way out.
struct Rendezvous {
  std::unique_ptr<StoreServer> server;
  std::unique_ptr<Store> store;
  int world_size = 1;

  // Leaves the job: a last barrier of all ranks, then each closes its store,
  // and the host waits (up to `timeout`) for the others' goodbyes before its
  // server goes. Without this, the last rank through a final barrier can
  // lose the store while its reply is still in flight.
  void finish(std::chrono::milliseconds timeout);
};
Rendezvous rendezvous(const RankInfo& info, std::chrono::milliseconds timeout);

// Where rank 0 binds its server for a given master address: loopback
// addresses stay on loopback; anything else listens on every interface
// (as torch does), since other nodes may reach this one by another address.
std::string listen_host_for(const std::string& master_addr);

// "0-3, 5, 7-8": a sorted rank list, compressed for error messages.
std::string format_ranks(const std::vector<int>& ranks);

}  // namespace tessera::dist
