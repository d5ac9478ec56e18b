#include "backend/cpu/run_context.h"

#include "core/error.h"

namespace tessera::cpu {

CollectiveQueue::CollectiveQueue() : thread_([this] { loop(); }) {}

CollectiveQueue::~CollectiveQueue() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

std::shared_future<void> CollectiveQueue::submit(std::function<void()> task) {
  std::packaged_task<void()> t(std::move(task));
  std::shared_future<void> f = t.get_future().share();
  {
    std::lock_guard<std::mutex> lock(mu_);
    tasks_.push_back(std::move(t));
  }
  cv_.notify_one();
  return f;
}

void CollectiveQueue::loop() {
  for (;;) {
    std::packaged_task<void()> t;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stop_ || !tasks_.empty(); });
      if (tasks_.empty()) return;
      t = std::move(tasks_.front());
      tasks_.pop_front();
    }
    t();  // exceptions land in the future
  }
}

dist::Communicator& Communicators::get(const std::string& group, const Node& node) const {
  if (group.empty() || group == "world") {
    if (world) return *world;
  } else if (auto it = groups.find(group); it != groups.end()) {
    return *it->second;
  }
  fail(ErrorKind::Distributed, "node '", node.name, "' (", node.op, ") needs the ", group.empty() ? "world" : "'" + group + "'",
       " communicator, but the engine runs without one: start it with `tessera launch` (or give Engine a communicator)");
}

}  // namespace tessera::cpu
