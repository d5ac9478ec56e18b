// CUDA kernels for the collective ops (ops/collectives.cc): NCCL on the
// engine's stream, so a run's collectives are captured in its CUDA graph.
// Along an axis other than 0 the tensor is rearranged into rank-major chunks
// (2-D async copies into scratch) around the call, as on the CPU backend.
// XStart issues its collective at once on the stream and CollectiveWait is a
// view of it: the stream orders them (no overlap with compute yet).
//
// A group whose communicator is not NCCL (gloo: NCCL absent, or refused, as
// for two ranks on one GPU) is staged through the host instead: synchronize
// the stream, copy the input to pinned host memory, run the CPU backend's own
// collective (backend/host_collectives.cc, so the same answer), copy the
// result back on the stream. It synchronizes, so the executor never captures
// a plan holding such a node (executor.cc, host_staged_collectives).
#include <cuda_runtime.h>

#include <algorithm>
#include <atomic>
#include <iostream>

#include "backend/cuda/cuda_check.h"
#include "backend/cuda/kernel_registry.h"
#include "backend/host_collectives.h"
#include "dist/nccl_communicator.h"

namespace tessera::cuda {
namespace {

// View src as [a][b][c] elements and write dst as [b][a][c], with one 2-D copy
// per index of the shorter of a and b (one of them is the rank count).
void swap01(const KernelContext& ctx, const void* src, void* dst, int64_t a, int64_t b, int64_t c, size_t es) {
  size_t row = size_t(c) * es;
  const char* s = static_cast<const char*>(src);
  char* d = static_cast<char*>(dst);
  if (a <= b) {
    for (int64_t i = 0; i < a; ++i)
      TSR_CUDA(cudaMemcpy2DAsync(d + size_t(i) * row, size_t(a) * row, s + size_t(i * b) * row, row, row, size_t(b),
                                 cudaMemcpyDeviceToDevice, ctx.stream()));
  } else {
    for (int64_t j = 0; j < b; ++j)
      TSR_CUDA(cudaMemcpy2DAsync(d + size_t(j * a) * row, row, s + size_t(j) * row, size_t(b) * row, row, size_t(a),
                                 cudaMemcpyDeviceToDevice, ctx.stream()));
  }
}

struct Split {
  int64_t outer, chunk;  // the tensor seen as [outer][ranks][chunk]
};
Split split_along(const Shape& shape, int64_t axis, int64_t g) {
  int64_t outer = 1, inner = 1;
  for (int64_t i = 0; i < axis; ++i) outer *= shape[size_t(i)];
  for (size_t i = size_t(axis); i < shape.size(); ++i) inner *= shape[i];
  return {outer, inner / g};
}

Tensor scratch_like(const KernelContext& ctx, const Tensor& t, int slot) {
  char* base = static_cast<char*>(ctx.scratch(2 * ((t.nbytes() + 255) / 256 * 256) + 256));
  return Tensor::view(t.dtype(), {t.numel()}, base + size_t(slot) * ((t.nbytes() + 255) / 256 * 256), nullptr, Device::cuda);
}

// Pinned host copies of one node's input and output, made on its first
// host-staged run and kept with the plan (its shapes are fixed).
struct Staging {
  Tensor in, out;
  ~Staging() {
    if (in.raw()) cudaFreeHost(in.raw());
    if (out.raw()) cudaFreeHost(out.raw());
  }
};

Tensor pinned_like(const Tensor& t) {
  void* p = nullptr;
  TSR_CUDA(cudaMallocHost(&p, std::max<size_t>(t.nbytes(), 1)));
  return Tensor::view(t.dtype(), t.shape(), p, nullptr);
}

// Once per process, whichever group comes first: the job is slower, not wrong.
void warn_host_staged(const std::string& group, const std::string& backend) {
  static std::atomic<bool> warned{false};
  if (warned.exchange(true)) return;
  std::cerr << "tessera: warning: [cuda] collectives: NCCL unavailable for group '" << (group.empty() ? "world" : group)
            << "'; using host-staged " << backend << " (slower)\n";
}

void host_staged(KernelContext& ctx, const std::string& op, dist::Communicator& comm) {
  const Node& n = ctx.node();
  warn_host_staged(n.attrs.get_string("group", ""), comm.backend());
  const Tensor& in = ctx.input(0);
  Tensor& out = ctx.output(0);
  Staging& st = ctx.state<Staging>();
  if (!st.in.raw()) st.in = pinned_like(in), st.out = pinned_like(out);
  if (in.nbytes()) TSR_CUDA(cudaMemcpyAsync(st.in.raw(), in.raw(), in.nbytes(), cudaMemcpyDeviceToHost, ctx.stream()));
  TSR_CUDA(cudaStreamSynchronize(ctx.stream()));
  run_host_collective(op, n, comm, st.in, st.out);
  // Pinned source: the copy is asynchronous; the next run's synchronize (or
  // the executor's) orders it before st.out is written again.
  if (out.nbytes()) TSR_CUDA(cudaMemcpyAsync(out.raw(), st.out.raw(), out.nbytes(), cudaMemcpyHostToDevice, ctx.stream()));
}

void k_collective(KernelContext& ctx) {
  const Node& n = ctx.node();
  std::string op = n.op.ends_with("Start") ? n.op.substr(0, n.op.size() - 5) : n.op;
  dist::Communicator& any = ctx.comm(n.attrs.get_string("group", ""));
  auto* comm = dynamic_cast<dist::NcclCommunicator*>(&any);
  if (!comm) return host_staged(ctx, op, any);
  comm->set_stream(ctx.stream());
  const Tensor& in = ctx.input(0);
  Tensor& out = ctx.output(0);
  int64_t g = comm->size();
  int64_t want = n.attrs.get_int("group_size", g);
  if (op != "AllReduce" && op != "Broadcast" && want != g)
    ctx.error("compiled for ", want, " ranks but runs on ", g, "; rebuild the engine for this world size");
  int64_t axis = in.rank() > 0 ? normalize_axis(n.attrs.get_int("axis", 0), in.rank(), n.name) : 0;
  dist::ReduceOp red = dist::reduce_op_from_name(n.attrs.get_string("reduce", "sum"));
  int root = int(n.attrs.get_int("root", 0));
  size_t es = dtype_size(in.dtype());
  if (op == "AllReduce") {
    comm->all_reduce(in, out, red);
  } else if (op == "Broadcast") {
    if (out.raw() != in.raw()) TSR_CUDA(cudaMemcpyAsync(out.raw(), in.raw(), in.nbytes(), cudaMemcpyDeviceToDevice, ctx.stream()));
    comm->broadcast(out, root);
  } else if (op == "AllGather") {
    Split s = split_along(out.shape(), axis, g);
    if (s.outer == 1) return comm->all_gather(in, out);
    Tensor tmp = scratch_like(ctx, out, 0);
    comm->all_gather(in, tmp);
    swap01(ctx, tmp.raw(), out.raw(), g, s.outer, s.chunk, es);
  } else if (op == "ReduceScatter") {
    Split s = split_along(in.shape(), axis, g);
    if (s.outer == 1) return comm->reduce_scatter(in, out, red);
    Tensor tmp = scratch_like(ctx, in, 0);
    swap01(ctx, in.raw(), tmp.raw(), s.outer, g, s.chunk, es);
    comm->reduce_scatter(tmp, out, red);
  } else if (op == "AllToAll") {
    Split s = split_along(in.shape(), axis, g);
    Tensor a = scratch_like(ctx, in, 0), b = scratch_like(ctx, in, 1);
    swap01(ctx, in.raw(), a.raw(), s.outer, g, s.chunk, es);
    comm->all_to_all(a, b);
    swap01(ctx, b.raw(), out.raw(), g, s.outer, s.chunk, es);
  } else if (op == "RootGather") {
    Split s = split_along(out.shape(), axis, g);
    Tensor tmp = scratch_like(ctx, out, 0);
    comm->gather(in, tmp, root);
    if (comm->rank() != root) TSR_CUDA(cudaMemsetAsync(out.raw(), 0, out.nbytes(), ctx.stream()));
    else swap01(ctx, tmp.raw(), out.raw(), g, s.outer, s.chunk, es);
  } else if (op == "RootScatter") {
    Split s = split_along(in.shape(), axis, g);
    Tensor tmp = scratch_like(ctx, in, 0);
    if (comm->rank() == root) swap01(ctx, in.raw(), tmp.raw(), s.outer, g, s.chunk, es);
    comm->scatter(tmp, out, root);
  } else {
    ctx.error("unknown collective");
  }
}

}  // namespace

TESSERA_CUDA_KERNEL("AllReduce", k_collective);
TESSERA_CUDA_KERNEL("AllGather", k_collective);
TESSERA_CUDA_KERNEL("ReduceScatter", k_collective);
TESSERA_CUDA_KERNEL("AllToAll", k_collective);
TESSERA_CUDA_KERNEL("RootGather", k_collective);
TESSERA_CUDA_KERNEL("RootScatter", k_collective);
TESSERA_CUDA_KERNEL("Broadcast", k_collective);
TESSERA_CUDA_KERNEL("AllReduceStart", k_collective);
TESSERA_CUDA_KERNEL("AllGatherStart", k_collective);
TESSERA_CUDA_KERNEL("ReduceScatterStart", k_collective);
TESSERA_CUDA_KERNEL("AllToAllStart", k_collective);
TESSERA_CUDA_KERNEL("RootGatherStart", k_collective);
TESSERA_CUDA_KERNEL("RootScatterStart", k_collective);
TESSERA_CUDA_KERNEL("BroadcastStart", k_collective);
TESSERA_CUDA_ALIAS("CollectiveWait");

}  // namespace tessera::cuda
