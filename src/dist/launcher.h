// `tessera launch`: torchrun's job, with torchrun's flags. One launcher per
// node starts --nproc-per-node copies of a program with the rank variables
// set (RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, GROUP_RANK,
// GROUP_WORLD_SIZE, MASTER_ADDR, MASTER_PORT, TESSERA_LAUNCHER=1,
// TESSERA_STORE_HOSTED=1), prints their output line by line as
// "[rank R]: ...", and watches them:
//
//  * The node-0 launcher hosts the rendezvous store at master addr:port for
//    the whole job (ranks connect to it, nobody else hosts); every launcher
//    connects to it as a client with rank -1.
//  * A rank that exits non-zero or dies by a signal fails the job: its
//    launcher SIGTERMs the other local ranks (SIGKILL after a few seconds)
//    and posts the reason under a store key, which makes the launchers of
//    the other nodes stop theirs too. Every launcher then reports
//    "rank R (pid P) exited with code C" (or "killed by signal SIGKILL").
//  * SIGINT/SIGTERM to a launcher are forwarded to its ranks (which run in
//    process groups of their own, so a terminal's Ctrl-C reaches them only
//    this way) and stop the job likewise.
//  * Node 0 keeps the store up until every node has finished, and gives up
//    on a node that never joins, or whose launcher stops sending heartbeats,
//    after --timeout.
#pragma once
#include <chrono>
#include <iostream>
#include <string>
#include <vector>

namespace tessera::dist {

struct LaunchOptions {
  int nproc_per_node = 1;
  int nnodes = 1;
  int node_rank = 0;
  std::string master_addr;   // "" = 127.0.0.1
  int master_port = -1;      // -1 = unset: any free port with one node, 29500 with several
  std::string rdzv_backend = "c10d";
  std::string rdzv_endpoint;  // "host[:port]" (port 29400 if left out, as torchrun)
  std::string log_dir;        // also write each rank's output to DIR/rank<N>.log
  std::chrono::milliseconds timeout{60000};
  std::vector<std::string> program;  // the program and its arguments
  std::ostream* out = &std::cout;    // where "[rank R]: " lines go (stdout / stderr of the ranks)
  std::ostream* err = &std::cerr;
};

// Checks the flags and resolves --rdzv-endpoint / defaults into
// master_addr and master_port. Throws InvalidArgument naming the flag.
LaunchOptions resolve_launch_options(LaunchOptions options);

struct LaunchResult {
  bool ok = true;
  std::string error;  // why the job failed: "rank 1 (pid 4242) exited with code 3"
};

// Runs the job to the end (resolving the options first). Problems before
// any rank runs (bad flags, a program that cannot start, a store port in
// use) throw a tessera::Error; a job that fails once started returns
// ok = false with the reason.
LaunchResult launch(const LaunchOptions& options);

}  // namespace tessera::dist
