// Communicators: the collectives tessera's graphs call, over whole contiguous
// tensors. NCCL implements them on device buffers (on the engine's stream);
// gloo on host buffers. dist/ knows nothing of ops: "along a dim" layouts are
// the kernels' business; here every collective is rank-major chunks.
//
// The ordering rule of NCCL holds for every backend: all ranks of a group
// issue the same collectives in the same order.
#pragma once
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace tessera::dist {

enum class ReduceOp { sum, avg, max, min };
ReduceOp reduce_op_from_name(const std::string& name);  // "sum", "avg", "max", "min"
const char* reduce_op_name(ReduceOp op);

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual std::string backend() const = 0;  // "gloo", "nccl"

  // in == out allowed. out[k] = op over ranks of in[k].
  virtual void all_reduce(const Tensor& in, Tensor& out, ReduceOp op) = 0;
  // out = concat over ranks of in (out.numel() == size * in.numel()).
  virtual void all_gather(const Tensor& in, Tensor& out) = 0;
  // out = chunk `rank` of the reduction of in (in.numel() == size * out.numel()).
  virtual void reduce_scatter(const Tensor& in, Tensor& out, ReduceOp op) = 0;
  // Chunk j of in goes to rank j; out's chunk i comes from rank i.
  virtual void all_to_all(const Tensor& in, Tensor& out) = 0;
  // Root receives the concat over ranks; `out` is ignored elsewhere.
  virtual void gather(const Tensor& in, Tensor& out, int root) = 0;
  // Root's `in` holds size chunks; rank i receives chunk i.
  virtual void scatter(const Tensor& in, Tensor& out, int root) = 0;
  virtual void broadcast(Tensor& inout, int root) = 0;
  virtual void barrier() = 0;

  // A communicator over a subset of this one's ranks (e.g. one axis of a
  // device mesh). Every rank of *this* group calls split with the same list of
  // groups, in the same order; each gets the group that holds it.
  virtual std::unique_ptr<Communicator> split(const std::vector<std::vector<int>>& groups, const std::string& name) = 0;

  void set_timeout(std::chrono::milliseconds t) { timeout_ = t; }
  std::chrono::milliseconds timeout() const { return timeout_; }
  // Called when a collective fails, to name the rank at fault (a dead
  // connection seen by the rendezvous store, a rank that never arrived).
  void set_failure_probe(std::function<std::string()> probe) { probe_ = std::move(probe); }

 protected:
  [[noreturn]] void collective_failed(const char* what, const std::string& cause) const;
  std::chrono::milliseconds timeout_ = std::chrono::seconds(60);
  std::function<std::string()> probe_;
};

}  // namespace tessera::dist
