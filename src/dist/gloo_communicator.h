// The gloo communicator: collectives on host tensors over TCP, for the CPU
// backend and as the host-staged fallback when NCCL is absent.
#pragma once
#include <memory>

#include "dist/communicator.h"

namespace gloo {
class Context;
namespace rendezvous { class Store; }
namespace transport { class Device; }
}  // namespace gloo

namespace tessera::dist {

class GlooCommunicator : public Communicator {
 public:
  // Connects a full mesh of `size` ranks through `store` (every rank calls this).
  static std::unique_ptr<GlooCommunicator> create(std::shared_ptr<gloo::rendezvous::Store> store, int rank, int size,
                                                  std::chrono::milliseconds timeout, const std::string& hostname = "127.0.0.1");
  int rank() const override;
  int size() const override;
  std::string backend() const override { return "gloo"; }
  void all_reduce(const Tensor& in, Tensor& out, ReduceOp op) override;
  void all_gather(const Tensor& in, Tensor& out) override;
  void reduce_scatter(const Tensor& in, Tensor& out, ReduceOp op) override;
  void all_to_all(const Tensor& in, Tensor& out) override;
  void gather(const Tensor& in, Tensor& out, int root) override;
  void scatter(const Tensor& in, Tensor& out, int root) override;
  void broadcast(Tensor& inout, int root) override;
  void barrier() override;
  std::unique_ptr<Communicator> split(const std::vector<std::vector<int>>& groups, const std::string& name) override;

 private:
  GlooCommunicator() = default;
  uint32_t next_tag() { return tag_++; }
  template <typename F>
  void guarded(const char* what, F&& f);

  std::shared_ptr<gloo::rendezvous::Store> store_;
  std::shared_ptr<gloo::rendezvous::Store> parent_store_;  // keeps a PrefixStore's target alive
  std::shared_ptr<gloo::transport::Device> device_;
  std::shared_ptr<gloo::Context> ctx_;
  uint32_t tag_ = 0;
  std::string hostname_;
};

}  // namespace tessera::dist
