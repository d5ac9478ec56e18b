// The NCCL communicator: collectives on device tensors, enqueued on the
// caller's stream (the engine's), so they are captured in its CUDA graph.
// Created by tessera (unique id exchanged through the rendezvous store) or
// wrapped around a caller's existing ncclComm_t.
//
// Failure: communicators are created non-blocking; wait() polls the stream
// and ncclCommGetAsyncError and, past the timeout or on an error, aborts the
// communicator (never leaves it hanging) and names the rank at fault.
#pragma once
#include <cuda_runtime.h>
#include <nccl.h>

#include <memory>

#include "dist/communicator.h"

namespace gloo::rendezvous { class Store; }

namespace tessera::dist {

class NcclCommunicator : public Communicator {
 public:
  // Every rank calls this; rank 0 makes the unique id and publishes it under `key`.
  static std::unique_ptr<NcclCommunicator> create(gloo::rendezvous::Store& store, int rank, int size, int device,
                                                  std::chrono::milliseconds timeout, const std::string& key = "nccl/world");
  // Wrap a communicator the caller made (and keeps owning: the wrapper never
  // finalizes or destroys it).
  static std::unique_ptr<NcclCommunicator> wrap(ncclComm_t comm, cudaStream_t stream);
  ~NcclCommunicator() override;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string backend() const override { return "nccl"; }
  void set_stream(cudaStream_t s) { stream_ = s; }
  cudaStream_t stream() const { return stream_; }
  ncclComm_t handle() const { return comm_; }

  void all_reduce(const Tensor& in, Tensor& out, ReduceOp op) override;
  void all_gather(const Tensor& in, Tensor& out) override;
  void reduce_scatter(const Tensor& in, Tensor& out, ReduceOp op) override;
  void all_to_all(const Tensor& in, Tensor& out) override;
  void gather(const Tensor& in, Tensor& out, int root) override;
  void scatter(const Tensor& in, Tensor& out, int root) override;
  void broadcast(Tensor& inout, int root) override;
  void barrier() override;
  std::unique_ptr<Communicator> split(const std::vector<std::vector<int>>& groups, const std::string& name) override;

  // Block until the stream's work is done, with the timeout and abort rules above.
  void wait();
  // Abort the communicator (pending collectives return); it is unusable after:
  // a later collective is an error saying so. A wrapped communicator is aborted
  // too on a failure (never left hanging): its owner must not destroy it then.
  void abort();
  bool aborted() const { return aborted_; }

 private:
  NcclCommunicator() = default;
  void check(ncclResult_t r, const char* what);
  ncclComm_t live(const char* what) const;  // comm_, or an error once aborted
  void group_end(const char* what);
  ncclComm_t comm_ = nullptr;
  cudaStream_t stream_ = nullptr;
  int rank_ = 0, size_ = 1;
  bool owned_ = false, aborted_ = false;
};

}  // namespace tessera::dist
