// Rank discovery: every launcher's environment form, and bad values whose
// errors name the variable.
#include <gtest/gtest.h>

#include "core/error.h"
#include "dist/env.h"

using namespace tessera;
using namespace tessera::dist;
using Env = std::map<std::string, std::string>;

namespace {

// The error text of detect_rank_info(env), or "" if it did not throw.
std::string error_of(const Env& env) {
  try {
    detect_rank_info(env);
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Distributed);
    return e.what();
  }
  return "";
}

Env torchrun_env() {
  return {{"RANK", "5"},          {"WORLD_SIZE", "8"},           {"LOCAL_RANK", "1"},
          {"LOCAL_WORLD_SIZE", "4"}, {"GROUP_RANK", "1"},        {"MASTER_ADDR", "node0"},
          {"MASTER_PORT", "29500"}, {"TORCHELASTIC_RUN_ID", "none"}};
}

}  // namespace

TEST(DistEnv, NoVariablesIsSingleProcess) {
  RankInfo info = detect_rank_info(Env{{"HOME", "/root"}});
  EXPECT_EQ(info.rank, 0);
  EXPECT_EQ(info.world_size, 1);
  EXPECT_EQ(info.local_world_size, 1);
  EXPECT_EQ(info.launcher, "single");
  EXPECT_EQ(info.master_addr, "127.0.0.1");
  EXPECT_FALSE(info.store_hosted_by_launcher);
}

TEST(DistEnv, TesseraLaunch) {
  Env env = torchrun_env();
  env.erase("TORCHELASTIC_RUN_ID");
  env["TESSERA_LAUNCHER"] = "1";
  env["TESSERA_STORE_HOSTED"] = "1";
  RankInfo info = detect_rank_info(env);
  EXPECT_EQ(info.launcher, "tessera launch");
  EXPECT_EQ(info.rank, 5);
  EXPECT_EQ(info.world_size, 8);
  EXPECT_EQ(info.local_rank, 1);
  EXPECT_EQ(info.local_world_size, 4);
  EXPECT_EQ(info.node_rank, 1);
  EXPECT_EQ(info.master_addr, "node0");
  EXPECT_EQ(info.store_port, 29500);
  EXPECT_TRUE(info.store_hosted_by_launcher);
}

TEST(DistEnv, Torchrun) {
  RankInfo info = detect_rank_info(torchrun_env());
  EXPECT_EQ(info.launcher, "torchrun");
  EXPECT_EQ(info.rank, 5);
  EXPECT_EQ(info.node_rank, 1);
  EXPECT_EQ(info.store_port, 29500);
  EXPECT_FALSE(info.store_hosted_by_launcher);
}

TEST(DistEnv, TorchrunAgentStoreMovesOurPortUpOne) {
  Env env = torchrun_env();
  env["TORCHELASTIC_USE_AGENT_STORE"] = "True";
  EXPECT_EQ(detect_rank_info(env).store_port, 29501);
  env["TORCHELASTIC_USE_AGENT_STORE"] = "False";
  EXPECT_EQ(detect_rank_info(env).store_port, 29500);
  env["TORCHELASTIC_USE_AGENT_STORE"] = "True";
  env["MASTER_PORT"] = "65535";
  EXPECT_NE(error_of(env).find("MASTER_PORT=65535"), std::string::npos);
}

TEST(DistEnv, TorchrunNeedsEveryVariable) {
  for (const char* name : {"RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "GROUP_RANK", "MASTER_ADDR", "MASTER_PORT"}) {
    Env env = torchrun_env();
    env.erase(name);
    std::string err = error_of(env);
    EXPECT_NE(err.find(std::string(name) + " is not set"), std::string::npos) << err;
    EXPECT_NE(err.find("torchrun"), std::string::npos) << err;
  }
}

TEST(DistEnv, HandSetTorchVariablesDefaultToOneNode) {
  RankInfo info = detect_rank_info(Env{{"RANK", "1"}, {"WORLD_SIZE", "2"}, {"MASTER_PORT", "1234"}});
  EXPECT_EQ(info.launcher, "torchrun");
  EXPECT_EQ(info.local_rank, 1);
  EXPECT_EQ(info.local_world_size, 2);
  EXPECT_EQ(info.node_rank, 0);
  EXPECT_EQ(info.master_addr, "127.0.0.1");
  EXPECT_EQ(info.store_port, 1234);
  EXPECT_NE(error_of({{"RANK", "1"}, {"WORLD_SIZE", "2"}}).find("MASTER_PORT is not set"), std::string::npos);
  EXPECT_EQ(detect_rank_info(Env{{"RANK", "0"}, {"WORLD_SIZE", "1"}}).store_port, 0);
}

TEST(DistEnv, OpenMpi) {
  Env env{{"OMPI_COMM_WORLD_RANK", "3"}, {"OMPI_COMM_WORLD_SIZE", "4"}, {"OMPI_COMM_WORLD_LOCAL_RANK", "3"},
          {"OMPI_COMM_WORLD_LOCAL_SIZE", "4"}, {"PMIX_NAMESPACE", "prterun-host-4242@1"}};
  RankInfo info = detect_rank_info(env);
  EXPECT_EQ(info.launcher, "mpirun");
  EXPECT_EQ(info.rank, 3);
  EXPECT_EQ(info.world_size, 4);
  EXPECT_EQ(info.local_rank, 3);
  EXPECT_EQ(info.node_rank, 0);
  EXPECT_EQ(info.master_addr, "127.0.0.1");
  // Every rank of the job derives the same port from the namespace, in range.
  EXPECT_EQ(info.store_port, port_from_job_id("prterun-host-4242@1"));
  EXPECT_GE(info.store_port, 20000);
  EXPECT_LE(info.store_port, 40000);
  env["PMIX_NAMESPACE"] = "prterun-host-4243@1";
  EXPECT_NE(detect_rank_info(env).store_port, info.store_port);
  env["MASTER_ADDR"] = "head";
  env["MASTER_PORT"] = "4000";
  info = detect_rank_info(env);
  EXPECT_EQ(info.master_addr, "head");
  EXPECT_EQ(info.store_port, 4000);
}

TEST(DistEnv, OpenMpiAcrossNodesNeedsMasterAddr) {
  Env env{{"OMPI_COMM_WORLD_RANK", "5"}, {"OMPI_COMM_WORLD_SIZE", "8"}, {"OMPI_COMM_WORLD_LOCAL_RANK", "1"},
          {"OMPI_COMM_WORLD_LOCAL_SIZE", "4"}, {"OMPI_MCA_orte_hnp_uri", "1234.0;tcp://10.0.0.1:4567"}};
  EXPECT_NE(error_of(env).find("MASTER_ADDR is not set"), std::string::npos);
  env["MASTER_ADDR"] = "node0";
  RankInfo info = detect_rank_info(env);
  EXPECT_EQ(info.node_rank, 1);
  EXPECT_EQ(info.store_port, port_from_job_id("1234.0;tcp://10.0.0.1:4567"));
}

TEST(DistEnv, Slurm) {
  Env env{{"SLURM_PROCID", "6"}, {"SLURM_NTASKS", "8"}, {"SLURM_LOCALID", "2"}, {"SLURM_NODEID", "1"},
          {"SLURM_TASKS_PER_NODE", "4(x2)"}, {"SLURM_JOB_NODELIST", "gpu[07-10]"}, {"SLURM_JOB_ID", "123456"}};
  RankInfo info = detect_rank_info(env);
  EXPECT_EQ(info.launcher, "srun");
  EXPECT_EQ(info.rank, 6);
  EXPECT_EQ(info.world_size, 8);
  EXPECT_EQ(info.local_rank, 2);
  EXPECT_EQ(info.local_world_size, 4);
  EXPECT_EQ(info.node_rank, 1);
  EXPECT_EQ(info.master_addr, "gpu07");
  EXPECT_EQ(info.store_port, 20000 + 123456 % 20001);
  env["SLURM_JOB_NODELIST"] = "alpha,beta";
  env["SLURM_NTASKS_PER_NODE"] = "4";
  env["MASTER_PORT"] = "31000";
  info = detect_rank_info(env);
  EXPECT_EQ(info.master_addr, "alpha");
  EXPECT_EQ(info.store_port, 31000);
  env["MASTER_ADDR"] = "10.1.2.3";
  EXPECT_EQ(detect_rank_info(env).master_addr, "10.1.2.3");
}

TEST(DistEnv, SlurmNodeLists) {
  EXPECT_EQ(first_slurm_host("node[1-4]", "L"), "node1");
  EXPECT_EQ(first_slurm_host("node[01-04,7],other5", "L"), "node01");
  EXPECT_EQ(first_slurm_host("a,b", "L"), "a");
  EXPECT_EQ(first_slurm_host("single", "L"), "single");
  EXPECT_EQ(first_slurm_host("n[3,5]-ib", "L"), "n3-ib");
  EXPECT_EQ(first_slurm_host("rack[1-2]-n[3-4]", "L"), "rack1-n3");
  EXPECT_THROW(first_slurm_host("node[1-4", "L"), Error);
  EXPECT_THROW(first_slurm_host("", "L"), Error);
  EXPECT_EQ(expand_slurm_tasks_per_node("2(x3),1", "T"), (std::vector<int>{2, 2, 2, 1}));
  EXPECT_EQ(expand_slurm_tasks_per_node("4", "T"), (std::vector<int>{4}));
  EXPECT_THROW(expand_slurm_tasks_per_node("2(3)", "T"), Error);
}

TEST(DistEnv, SlurmErrorsNameTheVariable) {
  Env env{{"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "2"}, {"SLURM_LOCALID", "0"}, {"SLURM_NODEID", "0"},
          {"SLURM_TASKS_PER_NODE", "2"}, {"SLURM_JOB_NODELIST", "node[1-4"}, {"SLURM_JOB_ID", "7"}};
  EXPECT_NE(error_of(env).find("SLURM_JOB_NODELIST='node[1-4'"), std::string::npos);
  env["SLURM_JOB_NODELIST"] = "n1";
  env.erase("SLURM_JOB_ID");
  EXPECT_NE(error_of(env).find("SLURM_JOB_ID is not set"), std::string::npos);
  env["SLURM_JOB_ID"] = "7";
  env["SLURM_NODEID"] = "3";
  EXPECT_NE(error_of(env).find("SLURM_NODEID=3"), std::string::npos);
  env["SLURM_NODEID"] = "0";
  env["SLURM_TASKS_PER_NODE"] = "x";
  EXPECT_NE(error_of(env).find("SLURM_TASKS_PER_NODE='x'"), std::string::npos);
}

TEST(DistEnv, BadValuesNameTheVariable) {
  Env env = torchrun_env();
  env["RANK"] = "abc";
  EXPECT_NE(error_of(env).find("RANK='abc' is not an integer"), std::string::npos);
  env["RANK"] = "-1";
  EXPECT_NE(error_of(env).find("RANK='-1'"), std::string::npos);
  env["RANK"] = "8";
  EXPECT_NE(error_of(env).find("RANK=8 must be less than WORLD_SIZE=8"), std::string::npos);
  env["RANK"] = "2 ";
  EXPECT_NE(error_of(env).find("RANK='2 '"), std::string::npos);
  env = torchrun_env();
  env["LOCAL_RANK"] = "4";
  EXPECT_NE(error_of(env).find("LOCAL_RANK=4 must be less than LOCAL_WORLD_SIZE=4"), std::string::npos);
  env = torchrun_env();
  env["WORLD_SIZE"] = "0";
  EXPECT_NE(error_of(env).find("WORLD_SIZE=0 must be at least 1"), std::string::npos);
  env = torchrun_env();
  env["MASTER_PORT"] = "70000";
  EXPECT_NE(error_of(env).find("MASTER_PORT='70000'"), std::string::npos);
  env = torchrun_env();
  env["MASTER_ADDR"] = "";
  EXPECT_NE(error_of(env).find("MASTER_ADDR is empty"), std::string::npos);
  env = {{"OMPI_COMM_WORLD_RANK", "0"}, {"OMPI_COMM_WORLD_SIZE", "two"}};
  EXPECT_NE(error_of(env).find("OMPI_COMM_WORLD_SIZE='two'"), std::string::npos);
}

TEST(DistEnv, StorePortOverrideAlwaysWins) {
  Env env = torchrun_env();
  env["TORCHELASTIC_USE_AGENT_STORE"] = "True";
  env["TESSERA_STORE_PORT"] = "41000";
  EXPECT_EQ(detect_rank_info(env).store_port, 41000);
  EXPECT_EQ(detect_rank_info(Env{{"TESSERA_STORE_PORT", "41001"}}).store_port, 41001);
  env["TESSERA_STORE_PORT"] = "0x10";
  EXPECT_NE(error_of(env).find("TESSERA_STORE_PORT='0x10'"), std::string::npos);
}

TEST(DistEnv, PortFromJobId) {
  EXPECT_EQ(port_from_job_id("0"), 20000);
  EXPECT_EQ(port_from_job_id("20000"), 40000);
  EXPECT_EQ(port_from_job_id("20001"), 20000);
  EXPECT_EQ(port_from_job_id("99999999999999999999999"), port_from_job_id("99999999999999999999999"));
  int p = port_from_job_id("abc");
  EXPECT_GE(p, 20000);
  EXPECT_LE(p, 40000);
}
