// `tessera launch`: torchrun's flags (both spellings, --nproc-per-node and
// --nproc_per_node), then the program. The work is in src/dist/launcher.cc.
#include "dist/launcher.h"
#include "tools/cli.h"

namespace tessera::cli {

void add_launch(CLI::App& app) {
  auto* cmd = app.add_subcommand("launch", "Run a program as N ranks per node with the rank variables set (torchrun's flags)");
  auto o = std::make_shared<dist::LaunchOptions>();
  auto timeout_s = std::make_shared<double>(60);
  auto standalone = std::make_shared<bool>(false);
  cmd->add_option("--nproc-per-node,--nproc_per_node", o->nproc_per_node, "processes (ranks) on this node")->capture_default_str();
  cmd->add_option("--nnodes", o->nnodes, "number of nodes")->capture_default_str();
  cmd->add_option("--node-rank,--node_rank", o->node_rank, "this node's index in [0, nnodes)")->capture_default_str();
  cmd->add_option("--master-addr,--master_addr", o->master_addr, "node 0's address (default 127.0.0.1)");
  cmd->add_option("--master-port,--master_port", o->master_port,
                  "port of the store node 0 hosts (default: any free port with one node, 29500 with several)");
  cmd->add_option("--rdzv-backend,--rdzv_backend", o->rdzv_backend, "rendezvous backend: only c10d")->capture_default_str();
  cmd->add_option("--rdzv-endpoint,--rdzv_endpoint", o->rdzv_endpoint, "host[:port] of the store, instead of --master-addr/--master-port");
  cmd->add_flag("--standalone", *standalone, "one node, store on a free port (the default with --nnodes 1)");
  cmd->add_option("--log-dir,--log_dir", o->log_dir, "also write each rank's output to DIR/rank<N>.log");
  cmd->add_option("--timeout", *timeout_s, "seconds to wait for rendezvous and for a silent node before giving up")
      ->capture_default_str();
  cmd->add_option("program", o->program, "the program and its arguments (after --)");
  // Everything from the program on is the program's: `launch -n 2 prog -x` works as with torchrun.
  cmd->positionals_at_end();
  cmd->callback([o, timeout_s, standalone] {
    if (*standalone) {
      if (o->nnodes != 1) fail(ErrorKind::InvalidArgument, "--standalone means one node, but --nnodes is ", o->nnodes);
      if (o->master_port < 0) o->master_port = 0;
    }
    if (!(*timeout_s > 0)) fail(ErrorKind::InvalidArgument, "--timeout ", *timeout_s, ": must be a positive number of seconds");
    o->timeout = std::chrono::milliseconds(int64_t(*timeout_s * 1000));
    dist::LaunchResult result = dist::launch(*o);
    if (!result.ok) fail(ErrorKind::Distributed, result.error);
  });
}

}  // namespace tessera::cli
