#include "dist/nccl_communicator.h"

#include <gloo/rendezvous/store.h>

#include <algorithm>
#include <thread>

#include "core/error.h"

namespace tessera::dist {

namespace {

ncclDataType_t nccl_type(DType t) {
  switch (t) {
    case DType::f32: return ncclFloat32;
    case DType::f16: return ncclFloat16;
    case DType::bf16: return ncclBfloat16;
    case DType::f64: return ncclFloat64;
    case DType::i64: return ncclInt64;
    case DType::i32: return ncclInt32;
    case DType::i8: return ncclInt8;
    case DType::u8: case DType::boolean: return ncclUint8;
  }
  return ncclFloat32;
}

ncclRedOp_t nccl_op(ReduceOp op) {
  switch (op) {
    case ReduceOp::sum: return ncclSum;
    case ReduceOp::avg: return ncclAvg;
    case ReduceOp::max: return ncclMax;
    case ReduceOp::min: return ncclMin;
  }
  return ncclSum;
}

void cuda_check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) fail(ErrorKind::Runtime, what, ": ", cudaGetErrorString(e));
}

void require_device(const Tensor& t, const char* what) {
  if (t.device() != Device::cuda) fail(ErrorKind::Internal, what, ": NCCL needs device tensors");
}

// Poll a non-blocking communicator until it leaves ncclInProgress.
ncclResult_t settle(ncclComm_t comm, std::chrono::milliseconds timeout) {
  auto start = std::chrono::steady_clock::now(), deadline = start + timeout;
  ncclResult_t state = ncclInProgress;
  while (true) {
    ncclCommGetAsyncError(comm, &state);
    auto now = std::chrono::steady_clock::now();
    if (state != ncclInProgress || now > deadline) return state;
    // Enqueueing settles in microseconds: spin first, sleep only when it drags on.
    if (now - start < std::chrono::milliseconds(2)) std::this_thread::yield();
    else std::this_thread::sleep_for(std::chrono::microseconds(100));
  }
}

}  // namespace

std::unique_ptr<NcclCommunicator> NcclCommunicator::create(gloo::rendezvous::Store& store, int rank, int size, int device,
                                                           std::chrono::milliseconds timeout, const std::string& key) {
  cuda_check(cudaSetDevice(device), "cudaSetDevice");
  ncclUniqueId id;
  if (rank == 0) {
    if (ncclGetUniqueId(&id) != ncclSuccess) fail(ErrorKind::Distributed, "ncclGetUniqueId failed");
    store.set(key, std::vector<char>(id.internal, id.internal + sizeof id.internal));
  } else {
    store.wait({key}, timeout);
    std::vector<char> bytes = store.get(key);
    if (bytes.size() != sizeof id.internal) fail(ErrorKind::Distributed, "rank ", rank, ": bad NCCL unique id under '", key, "'");
    std::copy(bytes.begin(), bytes.end(), id.internal);
  }
  std::unique_ptr<NcclCommunicator> c(new NcclCommunicator());
  c->rank_ = rank, c->size_ = size, c->owned_ = true, c->timeout_ = timeout;
  ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
  config.blocking = 0;  // so a missing rank cannot hang us: we poll with a deadline
  ncclResult_t r = ncclCommInitRankConfig(&c->comm_, size, id, rank, &config);
  // Non-blocking: the communicator is usable only once its state reads ncclSuccess.
  if ((r == ncclSuccess || r == ncclInProgress) && c->comm_) r = settle(c->comm_, timeout);
  if (r != ncclSuccess) {
    if (c->comm_) ncclCommAbort(c->comm_), c->comm_ = nullptr;
    fail(ErrorKind::Distributed, "rank ", rank, ": NCCL communicator of ", size, " ranks not ready within ", timeout.count(),
         " ms (", r == ncclInProgress ? "timed out: a rank never joined" : ncclGetErrorString(r), ")");
  }
  cuda_check(cudaStreamCreateWithFlags(&c->stream_, cudaStreamNonBlocking), "cudaStreamCreate");
  return c;
}

std::unique_ptr<NcclCommunicator> NcclCommunicator::wrap(ncclComm_t comm, cudaStream_t stream) {
  std::unique_ptr<NcclCommunicator> c(new NcclCommunicator());
  c->comm_ = comm, c->stream_ = stream;
  ncclCommUserRank(comm, &c->rank_);
  ncclCommCount(comm, &c->size_);
  return c;
}

NcclCommunicator::~NcclCommunicator() {
  if (owned_ && comm_) {
    if (aborted_) return;
    ncclCommFinalize(comm_);
    if (settle(comm_, timeout_) != ncclSuccess) ncclCommAbort(comm_);
    else ncclCommDestroy(comm_);
  }
}

void NcclCommunicator::abort() {
  if (comm_ && !aborted_) ncclCommAbort(comm_);
  aborted_ = true;
}

ncclComm_t NcclCommunicator::live(const char* what) const {
  if (aborted_)
    fail(ErrorKind::Distributed, "rank ", rank_, ": ", what, ": the NCCL communicator was aborted after an earlier failure "
         "and cannot be used again");
  return comm_;
}

void NcclCommunicator::check(ncclResult_t r, const char* what) {
  // A non-blocking communicator may still be enqueuing: NCCL requires its state
  // to be ncclSuccess before the next call.
  if (r == ncclInProgress) r = settle(comm_, timeout_);
  if (r == ncclSuccess) return;
  if (r == ncclInProgress) {
    abort();
    collective_failed(what, "not enqueued within " + std::to_string(timeout_.count()) + " ms");
  }
  abort();
  collective_failed(what, ncclGetErrorString(r));
}

void NcclCommunicator::wait() {
  live("wait");
  auto deadline = std::chrono::steady_clock::now() + timeout_;
  while (true) {
    cudaError_t s = cudaStreamQuery(stream_);
    if (s == cudaSuccess) return;
    if (s != cudaErrorNotReady) fail(ErrorKind::Runtime, "rank ", rank_, ": stream error: ", cudaGetErrorString(s));
    ncclResult_t state = ncclSuccess;
    ncclCommGetAsyncError(comm_, &state);
    if (state != ncclSuccess && state != ncclInProgress) {
      abort();
      collective_failed("collective", ncclGetErrorString(state));
    }
    if (std::chrono::steady_clock::now() > deadline) {
      abort();
      collective_failed("collective", "timed out after " + std::to_string(timeout_.count()) + " ms");
    }
    std::this_thread::sleep_for(std::chrono::microseconds(50));
  }
}

void NcclCommunicator::all_reduce(const Tensor& in, Tensor& out, ReduceOp op) {
  require_device(in, "all_reduce");
  check(ncclAllReduce(in.raw(), out.raw(), size_t(in.numel()), nccl_type(in.dtype()), nccl_op(op), live("all_reduce"), stream_), "all_reduce");
}

void NcclCommunicator::all_gather(const Tensor& in, Tensor& out) {
  require_device(in, "all_gather");
  check(ncclAllGather(in.raw(), out.raw(), size_t(in.numel()), nccl_type(in.dtype()), live("all_gather"), stream_), "all_gather");
}

void NcclCommunicator::reduce_scatter(const Tensor& in, Tensor& out, ReduceOp op) {
  require_device(in, "reduce_scatter");
  check(ncclReduceScatter(in.raw(), out.raw(), size_t(out.numel()), nccl_type(in.dtype()), nccl_op(op), live("reduce_scatter"), stream_), "reduce_scatter");
}

void NcclCommunicator::all_to_all(const Tensor& in, Tensor& out) {
  require_device(in, "all_to_all");
  check(ncclAlltoAll(in.raw(), out.raw(), size_t(in.numel() / size_), nccl_type(in.dtype()), live("all_to_all"), stream_), "all_to_all");
}

void NcclCommunicator::gather(const Tensor& in, Tensor& out, int root) {
  require_device(in, "gather");
  check(ncclGather(in.raw(), rank_ == root ? out.raw() : nullptr, size_t(in.numel()), nccl_type(in.dtype()), root, live("gather"), stream_), "gather");
}

void NcclCommunicator::scatter(const Tensor& in, Tensor& out, int root) {
  require_device(out, "scatter");
  check(ncclScatter(rank_ == root ? in.raw() : nullptr, out.raw(), size_t(out.numel()), nccl_type(out.dtype()), root, live("scatter"), stream_), "scatter");
}

void NcclCommunicator::broadcast(Tensor& inout, int root) {
  require_device(inout, "broadcast");
  check(ncclBroadcast(inout.raw(), inout.raw(), size_t(inout.numel()), nccl_type(inout.dtype()), root, live("broadcast"), stream_), "broadcast");
}

void NcclCommunicator::barrier() {
  // NCCL has no barrier: a one-element all-reduce, then wait for it.
  void* p = nullptr;
  cuda_check(cudaMallocAsync(&p, 4, stream_), "cudaMallocAsync");
  check(ncclAllReduce(p, p, 1, ncclFloat32, ncclSum, live("barrier"), stream_), "barrier");
  cudaFreeAsync(p, stream_);
  wait();
}

std::unique_ptr<Communicator> NcclCommunicator::split(const std::vector<std::vector<int>>& groups, const std::string& name) {
  int color = -1, key = 0;
  for (size_t g = 0; g < groups.size(); ++g) {
    auto it = std::find(groups[g].begin(), groups[g].end(), rank_);
    if (it != groups[g].end()) color = int(g), key = int(it - groups[g].begin());
  }
  if (color < 0) fail(ErrorKind::InvalidArgument, "split '", name, "': rank ", rank_, " is in none of the groups");
  std::unique_ptr<NcclCommunicator> c(new NcclCommunicator());
  ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
  config.blocking = 0;
  ncclResult_t r = ncclCommSplit(comm_, color, key, &c->comm_, &config);
  if (r == ncclInProgress) r = settle(comm_, timeout_);
  if (r == ncclSuccess && c->comm_) r = settle(c->comm_, timeout_);
  if (r != ncclSuccess) fail(ErrorKind::Distributed, "split '", name, "' failed: ", ncclGetErrorString(r));
  ncclCommUserRank(c->comm_, &c->rank_);
  ncclCommCount(c->comm_, &c->size_);
  c->owned_ = true, c->stream_ = stream_, c->timeout_ = timeout_, c->probe_ = probe_;
  return c;
}

}  // namespace tessera::dist
