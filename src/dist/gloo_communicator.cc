#include "dist/gloo_communicator.h"

#include <gloo/allgather.h>
#include <gloo/allreduce.h>
#include <gloo/alltoall.h>
#include <gloo/barrier.h>
#include <gloo/broadcast.h>
#include <gloo/gather.h>
#include <gloo/rendezvous/context.h>
#include <gloo/rendezvous/prefix_store.h>
#include <gloo/scatter.h>
#include <gloo/transport/tcp/device.h>

#include <algorithm>

#include "core/error.h"

namespace tessera::dist {

namespace {

using ReduceFn = void (*)(void*, const void*, const void*, size_t);

template <typename T>
ReduceFn reduce_fn(ReduceOp op) {
  if (op == ReduceOp::max) return static_cast<ReduceFn>(&gloo::max<T>);
  if (op == ReduceOp::min) return static_cast<ReduceFn>(&gloo::min<T>);
  return static_cast<ReduceFn>(&gloo::sum<T>);  // avg divides afterwards
}

uint8_t* bytes(const Tensor& t) { return static_cast<uint8_t*>(t.raw()); }

void check_sizes(const char* what, size_t got, size_t want) {
  if (got != want) fail(ErrorKind::Internal, what, ": buffer holds ", got, " bytes, expected ", want);
}

}  // namespace

std::unique_ptr<GlooCommunicator> GlooCommunicator::create(std::shared_ptr<gloo::rendezvous::Store> store, int rank, int size,
                                                           std::chrono::milliseconds timeout, const std::string& hostname) {
  std::unique_ptr<GlooCommunicator> c(new GlooCommunicator());
  c->store_ = std::move(store);
  c->hostname_ = hostname;
  c->timeout_ = timeout;
  gloo::transport::tcp::attr attr(hostname.c_str());
  c->device_ = gloo::transport::tcp::CreateDevice(attr);
  auto ctx = std::make_shared<gloo::rendezvous::Context>(rank, size);
  ctx->setTimeout(timeout);
  try {
    ctx->connectFullMesh(*c->store_, c->device_);
  } catch (const std::exception& e) {
    fail(ErrorKind::Distributed, "rank ", rank, ": gloo could not connect ", size, " ranks within ", timeout.count(), " ms: ", e.what());
  }
  c->ctx_ = ctx;
  return c;
}

int GlooCommunicator::rank() const { return ctx_->rank; }
int GlooCommunicator::size() const { return ctx_->size; }

template <typename F>
void GlooCommunicator::guarded(const char* what, F&& f) {
  try {
    f();
  } catch (const gloo::Exception& e) {
    collective_failed(what, e.what());
  }
}

void GlooCommunicator::all_reduce(const Tensor& in, Tensor& out, ReduceOp op) {
  check_sizes("all_reduce", out.nbytes(), in.nbytes());
  // gloo has no bf16 reduction: stage through f32 (same answer, host-side).
  Tensor work = in.dtype() == DType::bf16 ? in.cast(DType::f32) : in;
  if (work.raw() != out.raw()) work = work.clone();
  guarded("all_reduce", [&] {
    gloo::AllreduceOptions opts(ctx_);
    opts.setTag(next_tag());
    opts.setTimeout(timeout_);
    size_t n = size_t(work.numel());
    switch (work.dtype()) {
      case DType::f32: opts.setOutput(work.data<float>(), n); opts.setReduceFunction(reduce_fn<float>(op)); break;
      case DType::f64: opts.setOutput(work.data<double>(), n); opts.setReduceFunction(reduce_fn<double>(op)); break;
      case DType::f16: opts.setOutput(work.data<gloo::float16>(), n); opts.setReduceFunction(reduce_fn<gloo::float16>(op)); break;
      case DType::i64: opts.setOutput(work.data<int64_t>(), n); opts.setReduceFunction(reduce_fn<int64_t>(op)); break;
      case DType::i32: opts.setOutput(work.data<int32_t>(), n); opts.setReduceFunction(reduce_fn<int32_t>(op)); break;
      case DType::i8: opts.setOutput(work.data<int8_t>(), n); opts.setReduceFunction(reduce_fn<int8_t>(op)); break;
      case DType::u8: case DType::boolean: opts.setOutput(work.data<uint8_t>(), n); opts.setReduceFunction(reduce_fn<uint8_t>(op)); break;
      default: fail(ErrorKind::Internal, "all_reduce: unhandled dtype");
    }
    gloo::allreduce(opts);
  });
  if (op == ReduceOp::avg) {
    Tensor f = work.cast(DType::f64);
    for (int64_t i = 0; i < f.numel(); ++i) f.data<double>()[i] /= size();
    work = f.cast(work.dtype());
  }
  Tensor result = work.dtype() == out.dtype() ? work : work.cast(out.dtype());
  if (result.raw() != out.raw()) std::memcpy(out.raw(), result.raw(), out.nbytes());
}

void GlooCommunicator::all_gather(const Tensor& in, Tensor& out) {
  check_sizes("all_gather", out.nbytes(), in.nbytes() * size_t(size()));
  guarded("all_gather", [&] {
    gloo::AllgatherOptions opts(ctx_);
    opts.setTag(next_tag());
    opts.setTimeout(timeout_);
    opts.setInput(bytes(in), in.nbytes());
    opts.setOutput(bytes(out), out.nbytes());
    gloo::allgather(opts);
  });
}

void GlooCommunicator::reduce_scatter(const Tensor& in, Tensor& out, ReduceOp op) {
  check_sizes("reduce_scatter", in.nbytes(), out.nbytes() * size_t(size()));
  // Host-staged: a full all-reduce, then this rank's chunk.
  Tensor full = Tensor::empty(in.dtype(), in.shape());
  all_reduce(in, full, op);
  std::memcpy(out.raw(), bytes(full) + out.nbytes() * size_t(rank()), out.nbytes());
}

void GlooCommunicator::all_to_all(const Tensor& in, Tensor& out) {
  check_sizes("all_to_all", out.nbytes(), in.nbytes());
  guarded("all_to_all", [&] {
    gloo::AlltoallOptions opts(ctx_);
    opts.setTag(next_tag());
    opts.setTimeout(timeout_);
    opts.setInput(bytes(in), in.nbytes());
    opts.setOutput(bytes(out), out.nbytes());
    gloo::alltoall(opts);
  });
}

void GlooCommunicator::gather(const Tensor& in, Tensor& out, int root) {
  if (rank() == root) check_sizes("gather", out.nbytes(), in.nbytes() * size_t(size()));
  guarded("gather", [&] {
    gloo::GatherOptions opts(ctx_);
    opts.setTag(next_tag());
    opts.setTimeout(timeout_);
    opts.setRoot(root);
    opts.setInput(bytes(in), in.nbytes());
    if (rank() == root) opts.setOutput(bytes(out), out.nbytes());
    gloo::gather(opts);
  });
}

void GlooCommunicator::scatter(const Tensor& in, Tensor& out, int root) {
  if (rank() == root) check_sizes("scatter", in.nbytes(), out.nbytes() * size_t(size()));
  guarded("scatter", [&] {
    gloo::ScatterOptions opts(ctx_);
    opts.setTag(next_tag());
    opts.setTimeout(timeout_);
    opts.setRoot(root);
    if (rank() == root) {
      std::vector<uint8_t*> chunks;
      for (int r = 0; r < size(); ++r) chunks.push_back(bytes(in) + out.nbytes() * size_t(r));
      opts.setInputs(chunks, out.nbytes());
    }
    opts.setOutput(bytes(out), out.nbytes());
    gloo::scatter(opts);
  });
}

void GlooCommunicator::broadcast(Tensor& inout, int root) {
  guarded("broadcast", [&] {
    gloo::BroadcastOptions opts(ctx_);
    opts.setTag(next_tag());
    opts.setTimeout(timeout_);
    opts.setRoot(root);
    opts.setOutput(bytes(inout), inout.nbytes());
    gloo::broadcast(opts);
  });
}

void GlooCommunicator::barrier() {
  guarded("barrier", [&] {
    gloo::BarrierOptions opts(ctx_);
    opts.setTag(next_tag());
    opts.setTimeout(timeout_);
    gloo::barrier(opts);
  });
}

std::unique_ptr<Communicator> GlooCommunicator::split(const std::vector<std::vector<int>>& groups, const std::string& name) {
  for (size_t g = 0; g < groups.size(); ++g) {
    auto it = std::find(groups[g].begin(), groups[g].end(), rank());
    if (it == groups[g].end()) continue;
    auto prefixed = std::make_shared<gloo::rendezvous::PrefixStore>(name + "/" + std::to_string(g), *store_);
    int sub_rank = int(it - groups[g].begin());
    // The prefix store refers to store_, which the child keeps alive through its own pointer.
    std::unique_ptr<GlooCommunicator> c = create(prefixed, sub_rank, int(groups[g].size()), timeout_, hostname_);
    c->parent_store_ = store_;
    c->probe_ = probe_;
    return c;
  }
  fail(ErrorKind::InvalidArgument, "split '", name, "': rank ", rank(), " is in none of the groups");
}

}  // namespace tessera::dist
