// Barrier and rendezvous on top of the store: the few steps every rank takes
// to join a job, with timeout errors that say who is missing.
#include "core/error.h"
#include "dist/store.h"

namespace tessera::dist {

using std::chrono::milliseconds;

std::string format_ranks(const std::vector<int>& ranks) {
  std::string out;
  for (size_t i = 0; i < ranks.size();) {
    size_t j = i;
    while (j + 1 < ranks.size() && ranks[j + 1] == ranks[j] + 1) ++j;
    if (!out.empty()) out += ", ";
    out += j == i ? std::to_string(ranks[i]) : str(ranks[i], "-", ranks[j]);
    i = j + 1;
  }
  return out;
}

// Round g of barrier `name` is complete when the shared counter reaches
// (g+1)·world_size; the rank that gets there sets `name/done/g`. A rank's own
// counter `name/<rank>` says how many rounds it has entered, which is how a
// timeout tells who never arrived.
void barrier(Store& store, const std::string& name, int world_size, milliseconds timeout) {
  int rank = store.rank();
  if (rank < 0 || rank >= world_size)
    fail(ErrorKind::Distributed, "barrier '", name, "': this store's rank ", rank, " is not in [0, ", world_size, ")");
  int64_t entered = store.add(name + "/" + std::to_string(rank), 1);
  int64_t arrived = store.add(name + "/count", 1);
  int64_t round = (arrived - 1) / world_size;
  std::string done = name + "/done/" + std::to_string(round);
  if (arrived == (round + 1) * world_size) store.set(done, "1");
  if (store.wait_for({done}, timeout)) return;

  std::vector<int> missing;
  for (int r = 0; r < world_size; ++r)
    if (store.add(name + "/" + std::to_string(r), 0) < entered) missing.push_back(r);
  std::vector<int> dead = store.dead_ranks();
  std::string msg = str("barrier '", name, "' timed out after ", timeout.count(), " ms: ", missing.size(), " of ", world_size,
                        " ranks never joined: ", format_ranks(missing));
  if (!dead.empty()) msg += str("; ranks whose connection dropped (killed or crashed?): ", format_ranks(dead));
  fail(ErrorKind::Distributed, msg, " (store at ", net::endpoint(store.host(), store.port()), ")");
}

std::string listen_host_for(const std::string& master_addr) {
  if (master_addr == "localhost" || master_addr.starts_with("127.") || master_addr == "::1") return master_addr;
  return master_addr.find(':') != std::string::npos ? "::" : "0.0.0.0";
}

Rendezvous rendezvous(const RankInfo& info, milliseconds timeout) {
  Rendezvous rv;
  int port = info.store_port;
  if (info.rank == 0 && !info.store_hosted_by_launcher) {
    if (port == 0 && info.world_size > 1)
      fail(ErrorKind::Distributed, "rendezvous of ", info.world_size, " ranks needs an agreed store port: set MASTER_PORT or TESSERA_STORE_PORT");
    rv.server = std::make_unique<StoreServer>(listen_host_for(info.master_addr), port);
    port = rv.server->port();
  } else if (port == 0) {
    fail(ErrorKind::Distributed, "rank ", info.rank, " does not know the store's port: set MASTER_PORT or TESSERA_STORE_PORT");
  }
  rv.world_size = info.world_size;
  rv.store = Store::connect(info.master_addr, port, info.rank, timeout);
  rv.store->set_timeout(timeout);
  barrier(*rv.store, "tessera/rendezvous", info.world_size, timeout);
  return rv;
}

void Rendezvous::finish(milliseconds timeout) {
  if (!store) return;
  barrier(*store, "tessera/finish", world_size, timeout);
  store->close();
  // A rank that has not said goodbye by the timeout is stuck or gone; the
  // server stops regardless, as the job is over.
  if (server) server->wait_for_ranks_to_leave(timeout);
  store.reset();
  server.reset();
}

}  // namespace tessera::dist
