// Per-run state the CPU kernels may need beyond their inputs: the
// communicators for collective nodes and the collectives in flight. One
// worker thread per run issues every collective in graph order, which keeps
// NCCL's rule (same collectives, same order, on every rank) and lets a
// *Start node return while its collective proceeds.
#pragma once
#include <condition_variable>
#include <deque>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>

#include "dist/communicator.h"
#include "ir/graph.h"

namespace tessera::cpu {

class CollectiveQueue {
 public:
  CollectiveQueue();
  ~CollectiveQueue();
  std::shared_future<void> submit(std::function<void()> task);

 private:
  void loop();
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::packaged_task<void()>> tasks_;
  bool stop_ = false;
  std::thread thread_;
};

struct Communicators {
  std::shared_ptr<dist::Communicator> world;
  std::map<std::string, std::shared_ptr<dist::Communicator>> groups;  // mesh axes: "tp", "dp"
  // The communicator for a node's `group` attribute ("" = world).
  dist::Communicator& get(const std::string& group, const Node& node) const;
};

struct RunContext {
  const Communicators* comms = nullptr;
  std::unique_ptr<CollectiveQueue> queue;  // created on first use
  std::unordered_map<const Value*, std::shared_future<void>> pending;
  CollectiveQueue& collectives() {
    if (!queue) queue = std::make_unique<CollectiveQueue>();
    return *queue;
  }
};

}  // namespace tessera::cpu
