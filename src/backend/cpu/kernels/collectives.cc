// CPU kernels for the collective ops (ops/collectives.cc) over a
// dist::Communicator (gloo on the CPU backend). The collective itself is
// backend/host_collectives.cc, shared with the CUDA backend's host-staged
// fallback; here it is queued on the run's collective thread (Start/Wait).
#include "backend/cpu/loops.h"
#include "backend/cpu/run_context.h"
#include "backend/host_collectives.h"

namespace tessera::cpu {
namespace {

// Submit the node's collective to the run's queue; returns when it is queued.
std::shared_future<void> submit(KernelContext& c, const std::string& op) {
  RunContext& rc = c.run();
  if (!rc.comms) c.error("this engine holds collective ops: run it under `tessera launch` (or give Engine a communicator)");
  dist::Communicator& comm = rc.comms->get(c.attrs().get_string("group", ""), c.node());
  Tensor in = c.input(0), out = c.output(0);  // shared storage keeps both alive while in flight
  const Node* node = &c.node();
  return rc.collectives().submit([op, node, &comm, in, out]() mutable { run_host_collective(op, *node, comm, in, out); });
}

void k_fused(KernelContext& c) { submit(c, c.node().op).get(); }

void k_start(KernelContext& c) {
  std::string op = c.node().op.substr(0, c.node().op.size() - 5);
  c.run().pending[c.node().outputs[0]] = submit(c, op);
}

void k_wait(KernelContext& c) {
  RunContext& rc = c.run();
  auto it = rc.pending.find(c.node().inputs[0]);
  if (it == rc.pending.end()) c.error("waits on '", c.node().inputs[0]->name, "', which no collective started");
  std::shared_future<void> f = it->second;
  rc.pending.erase(it);
  f.get();
  c.set_output(0, c.input(0));
}

}  // namespace

TESSERA_CPU_KERNEL("AllReduce", k_fused);
TESSERA_CPU_KERNEL("AllGather", k_fused);
TESSERA_CPU_KERNEL("ReduceScatter", k_fused);
TESSERA_CPU_KERNEL("AllToAll", k_fused);
TESSERA_CPU_KERNEL("RootGather", k_fused);
TESSERA_CPU_KERNEL("RootScatter", k_fused);
TESSERA_CPU_KERNEL("Broadcast", k_fused);
TESSERA_CPU_KERNEL("AllReduceStart", k_start);
TESSERA_CPU_KERNEL("AllGatherStart", k_start);
TESSERA_CPU_KERNEL("ReduceScatterStart", k_start);
TESSERA_CPU_KERNEL("AllToAllStart", k_start);
TESSERA_CPU_KERNEL("RootGatherStart", k_start);
TESSERA_CPU_KERNEL("RootScatterStart", k_start);
TESSERA_CPU_KERNEL("BroadcastStart", k_start);
TESSERA_CPU_KERNEL("CollectiveWait", k_wait);

}  // namespace tessera::cpu
