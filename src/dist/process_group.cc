#include "dist/process_group.h"

#include <thread>

#include "core/error.h"
#include "dist/gloo_communicator.h"
#ifdef TESSERA_WITH_CUDA
#include "dist/nccl_communicator.h"
#endif

namespace tessera::dist {

void GlooStore::set(const std::string& key, const std::vector<char>& data) { store_.set(key, std::string(data.begin(), data.end())); }

std::vector<char> GlooStore::get(const std::string& key) {
  std::string v = store_.get(key);
  return std::vector<char>(v.begin(), v.end());
}

void GlooStore::wait(const std::vector<std::string>& keys) { store_.wait(keys); }
void GlooStore::wait(const std::vector<std::string>& keys, const std::chrono::milliseconds& timeout) { store_.wait(keys, timeout); }

std::string diagnose_failure(Store& store, int rank, int world_size, std::chrono::milliseconds timeout) {
  // A killed peer's store connection may close a moment after our TCP link to it broke.
  auto settle = std::min<std::chrono::milliseconds>(std::chrono::seconds(3), timeout / 4);
  auto deadline = std::chrono::steady_clock::now() + settle;
  try {
    std::vector<int> dead;
    while ((dead = store.dead_ranks()).empty() && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    if (!dead.empty()) return str("rank ", format_ranks(dead), dead.size() > 1 ? " are" : " is", " gone (process died)");
    // Nobody died: ranks that also failed say so; the silent ones are hung.
    int64_t round = store.add("failure/round", 0);
    store.set(str("failure/", round, "/", rank), "1");
    std::this_thread::sleep_for(settle);
    std::vector<int> silent;
    for (int r = 0; r < world_size; ++r)
      if (r != rank && !store.check({str("failure/", round, "/", r)})) silent.push_back(r);
    if (!silent.empty()) return str("rank ", format_ranks(silent), " did not respond (hung or stopped)");
  } catch (const Error& e) {
    return str("the rendezvous store is unreachable, so rank 0 (its host) or the launcher is gone: ", e.what());
  }
  return "";
}

ProcessGroup::~ProcessGroup() {
  world.reset();
  if (!rendezvous.server) return;
  if (rendezvous.store) rendezvous.store->close();
  rendezvous.server->wait_for_ranks_to_leave(timeout);
}

void ProcessGroup::finish() {
  world.reset();
  rendezvous.finish(timeout);
}

std::unique_ptr<ProcessGroup> init_process_group(const RankInfo& info, const std::string& backend,
                                                 std::chrono::milliseconds timeout) {
  auto pg = std::make_unique<ProcessGroup>();
  pg->info = info;
  pg->timeout = timeout;
  pg->rendezvous = rendezvous(info, timeout);
  pg->gloo_store = std::make_shared<GlooStore>(*pg->rendezvous.store);
  if (backend == "gloo") {
    pg->world = GlooCommunicator::create(pg->gloo_store, info.rank, info.world_size, timeout);
#ifdef TESSERA_WITH_CUDA
  } else if (backend == "nccl") {
    pg->world = NcclCommunicator::create(*pg->gloo_store, info.rank, info.world_size, info.local_rank, timeout);
#endif
  } else {
    fail(ErrorKind::InvalidArgument, "unknown or unavailable communicator backend '", backend, "' (gloo",
#ifdef TESSERA_WITH_CUDA
         ", nccl",
#endif
         ")");
  }
  Store* store = pg->rendezvous.store.get();
  int rank = info.rank, world = info.world_size;
  pg->world->set_failure_probe([store, rank, world, timeout] { return diagnose_failure(*store, rank, world, timeout); });
  return pg;
}

std::shared_ptr<Communicator> make_nccl_world(ProcessGroup& pg, int device) {
#ifdef TESSERA_WITH_CUDA
  std::shared_ptr<Communicator> c =
      NcclCommunicator::create(*pg.gloo_store, pg.info.rank, pg.info.world_size, device, pg.timeout, "nccl/engine");
  Store* store = pg.rendezvous.store.get();
  int rank = pg.info.rank, world = pg.info.world_size;
  auto timeout = pg.timeout;
  c->set_failure_probe([store, rank, world, timeout] { return diagnose_failure(*store, rank, world, timeout); });
  return c;
#else
  (void)pg, (void)device;
  fail(ErrorKind::Unsupported, "NCCL is not available: this tessera was built without CUDA");
#endif
}

std::unique_ptr<ProcessGroup> init_process_group(const std::string& backend, std::chrono::milliseconds timeout) {
  return init_process_group(detect_rank_info(), backend, timeout);
}

}  // namespace tessera::dist
