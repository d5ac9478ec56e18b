// Which rank am I? Read from the environment the launcher left, so one
// program starts correctly under `tessera launch`, torchrun, mpirun and srun.
//
// Forms, first match wins:
//   tessera launch  TESSERA_LAUNCHER=1 and torch's variables (below); the
//                   launcher hosts the store at MASTER_PORT when
//                   TESSERA_STORE_HOSTED=1.
//   torchrun        RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, GROUP_RANK,
//                   MASTER_ADDR, MASTER_PORT (all required when
//                   TORCHELASTIC_RUN_ID says torchrun set them). With
//                   TORCHELASTIC_USE_AGENT_STORE=True torchrun's own store
//                   holds MASTER_PORT, so ours uses MASTER_PORT+1. RANK and
//                   WORLD_SIZE without TORCHELASTIC_RUN_ID (set by hand, or
//                   the old torch.distributed.launch) are read the same way,
//                   the local/node variables defaulting to one node.
//   mpirun          OMPI_COMM_WORLD_RANK/SIZE/LOCAL_RANK/LOCAL_SIZE (Open MPI).
//                   Node rank = rank / LOCAL_SIZE (by-slot mapping). Master:
//                   MASTER_ADDR (required across nodes) or 127.0.0.1.
//   srun            SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID, SLURM_NODEID and
//                   the tasks per node from SLURM_NTASKS_PER_NODE,
//                   SLURM_STEP_TASKS_PER_NODE or SLURM_TASKS_PER_NODE
//                   ("2(x3),1" forms). Master: MASTER_ADDR or the first host
//                   of SLURM_JOB_NODELIST / SLURM_NODELIST ("node[01-04]" →
//                   node01, "a,b" → a).
//   single          none of the above: rank 0 of 1.
//
// Store port: TESSERA_STORE_PORT when set (always wins); else MASTER_PORT as
// above; under mpirun/srun without MASTER_PORT a port derived from the job's
// identity so that every rank of a job computes the same one, and concurrent
// jobs on a host rarely collide: 20000 + id mod 20001 for a numeric id
// (SLURM_JOB_ID), 20000 + FNV-1a(id) mod 20001 otherwise (Open MPI's
// PMIX_NAMESPACE, OMPI_MCA_orte_hnp_uri or OMPI_MCA_ess_base_jobid; 29500,
// torch's default, when Open MPI left none of them).
#pragma once
#include <map>
#include <string>
#include <vector>

namespace tessera::dist {

struct RankInfo {
  int rank = 0, world_size = 1, local_rank = 0, local_world_size = 1, node_rank = 0;
  std::string master_addr = "127.0.0.1";
  int store_port = 0;                     // where the TCP store listens (0: anywhere free; one process only)
  bool store_hosted_by_launcher = false;  // true under `tessera launch`: ranks connect, nobody hosts
  std::string launcher = "single";        // "tessera launch", "torchrun", "mpirun", "srun" or "single"
};

// From the process environment. Throws a Distributed error naming the
// variable that is missing or bad.
RankInfo detect_rank_info();
// The testable form: `env` stands in for the environment.
RankInfo detect_rank_info(const std::map<std::string, std::string>& env);

// The first host of a Slurm node list: "node[01-04,7]" → "node01",
// "a,b" → "a", "rack[1-2]-n[3-4]" → "rack1-n3". Throws naming `variable`.
std::string first_slurm_host(const std::string& nodelist, const std::string& variable);
// Slurm's tasks-per-node list ("2(x3),1") expanded to one count per node.
std::vector<int> expand_slurm_tasks_per_node(const std::string& text, const std::string& variable);
// The derived store port described above, in [20000, 40000].
int port_from_job_id(const std::string& id);

}  // namespace tessera::dist
