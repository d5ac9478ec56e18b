// A process's distributed context: rank discovery from the environment,
// rendezvous through the TCP store, and the world communicator (gloo on host
// tensors, NCCL on device tensors). The failure probe wired into the
// communicator names the rank at fault when a collective fails: one whose
// store connection died (killed, crashed), or one that stopped answering.
#pragma once
#include <gloo/rendezvous/store.h>

#include <memory>

#include "dist/communicator.h"
#include "dist/env.h"
#include "dist/store.h"

namespace tessera::dist {

// gloo's store interface over tessera's TCP store (gloo and NCCL bootstrap through it).
class GlooStore : public gloo::rendezvous::Store {
 public:
  explicit GlooStore(dist::Store& store) : store_(store) {}
  void set(const std::string& key, const std::vector<char>& data) override;
  std::vector<char> get(const std::string& key) override;
  void wait(const std::vector<std::string>& keys) override;
  void wait(const std::vector<std::string>& keys, const std::chrono::milliseconds& timeout) override;

 private:
  dist::Store& store_;
};

struct ProcessGroup {
  ProcessGroup() = default;
  ProcessGroup(const ProcessGroup&) = delete;
  ProcessGroup& operator=(const ProcessGroup&) = delete;
  // If this process hosts the store, it waits (bounded by the timeout) for the
  // other ranks to leave first: a failing job must not take the store away
  // from ranks still asking it which rank failed.
  ~ProcessGroup();
  // Clean exit: a last barrier, then everyone leaves the store together.
  void finish();

  RankInfo info;
  std::chrono::milliseconds timeout{60000};
  Rendezvous rendezvous;
  std::shared_ptr<GlooStore> gloo_store;
  std::shared_ptr<Communicator> world;
};

// backend: "gloo" or "nccl" (NCCL uses GPU local_rank). Every rank calls it.
std::unique_ptr<ProcessGroup> init_process_group(const std::string& backend, std::chrono::milliseconds timeout);
std::unique_ptr<ProcessGroup> init_process_group(const RankInfo& info, const std::string& backend,
                                                 std::chrono::milliseconds timeout);

// A second world communicator over NCCL on GPU `device`, beside the gloo one
// (CUDA engines run their collectives on it; DP gathers stay on gloo). Every
// rank calls it. Fails clearly in a build without CUDA.
std::shared_ptr<Communicator> make_nccl_world(ProcessGroup& pg, int device);

// Names the ranks at fault for a failed collective (used as the failure probe).
std::string diagnose_failure(Store& store, int rank, int world_size, std::chrono::milliseconds timeout);

}  // namespace tessera::dist
