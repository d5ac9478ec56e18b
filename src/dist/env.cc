#include "dist/env.h"

#include <charconv>
#include <climits>
#include <cstdint>

#include "core/error.h"

extern char** environ;

namespace tessera::dist {

using Env = std::map<std::string, std::string>;

namespace {

// Reads one launcher's variables; every error names the variable and the
// launcher whose environment was being read, since a stray variable from
// another launcher is a common cause.
struct Vars {
  const Env& env;
  std::string launcher;

  const std::string* find(const std::string& name) const {
    auto it = env.find(name);
    return it == env.end() ? nullptr : &it->second;
  }
  bool has(const std::string& name) const { return find(name) != nullptr; }

  [[noreturn]] void missing(const std::string& name) const {
    fail(ErrorKind::Distributed, "environment variable ", name, " is not set (reading the ", launcher, " environment)");
  }

  int integer(const std::string& name, int max = INT_MAX) const {
    const std::string* v = find(name);
    if (!v) missing(name);
    int out = 0;
    auto [end, ec] = std::from_chars(v->data(), v->data() + v->size(), out);
    if (v->empty() || ec != std::errc() || end != v->data() + v->size() || out < 0 || out > max)
      fail(ErrorKind::Distributed, "environment variable ", name, "='", *v, "' is not an integer in [0, ", max,
           "] (reading the ", launcher, " environment)");
    return out;
  }
  int integer_or(const std::string& name, int fallback) const { return has(name) ? integer(name) : fallback; }

  std::string text(const std::string& name) const {
    const std::string* v = find(name);
    if (!v) missing(name);
    if (v->empty()) fail(ErrorKind::Distributed, "environment variable ", name, " is empty (reading the ", launcher, " environment)");
    return *v;
  }
  std::string text_or(const std::string& name, const std::string& fallback) const {
    return has(name) ? text(name) : fallback;
  }

  int port(const std::string& name) const {
    int p = integer(name, 65535);
    if (p == 0) fail(ErrorKind::Distributed, "environment variable ", name, "=0 is not a usable port (reading the ", launcher, " environment)");
    return p;
  }
};

// The variable names a launcher uses, for range errors.
struct Names {
  const char *rank, *world, *local_rank, *local_world;
};

void validate(const RankInfo& info, const Names& n) {
  auto below = [&](int v, const char* name, int bound, const char* bound_name) {
    if (v >= bound)
      fail(ErrorKind::Distributed, "environment variable ", name, "=", v, " must be less than ", bound_name, "=", bound,
           " (reading the ", info.launcher, " environment)");
  };
  if (info.world_size < 1) fail(ErrorKind::Distributed, "environment variable ", n.world, "=0 must be at least 1 (reading the ", info.launcher, " environment)");
  if (info.local_world_size < 1)
    fail(ErrorKind::Distributed, "environment variable ", n.local_world, "=0 must be at least 1 (reading the ", info.launcher, " environment)");
  below(info.rank, n.rank, info.world_size, n.world);
  below(info.local_rank, n.local_rank, info.local_world_size, n.local_world);
  if (info.local_world_size > info.world_size)
    fail(ErrorKind::Distributed, "environment variable ", n.local_world, "=", info.local_world_size, " exceeds ", n.world, "=",
         info.world_size, " (reading the ", info.launcher, " environment)");
}

// tessera launch, torchrun, and hand-set torch variables (strict=false: only
// RANK and WORLD_SIZE are needed; the rest default to one node).
RankInfo torch_form(const Vars& v, bool strict) {
  RankInfo info;
  info.launcher = v.launcher;
  info.rank = v.integer("RANK");
  info.world_size = v.integer("WORLD_SIZE");
  info.local_rank = strict ? v.integer("LOCAL_RANK") : v.integer_or("LOCAL_RANK", info.rank);
  info.local_world_size = strict ? v.integer("LOCAL_WORLD_SIZE") : v.integer_or("LOCAL_WORLD_SIZE", info.world_size);
  info.node_rank = strict ? v.integer("GROUP_RANK") : v.integer_or("GROUP_RANK", 0);
  info.master_addr = strict ? v.text("MASTER_ADDR") : v.text_or("MASTER_ADDR", "127.0.0.1");
  // One process needs no agreed port: it can host anywhere free.
  info.store_port = (strict || info.world_size > 1 || v.has("MASTER_PORT")) ? v.port("MASTER_PORT") : 0;
  validate(info, {"RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE"});
  return info;
}

RankInfo openmpi_form(const Vars& v) {
  RankInfo info;
  info.launcher = v.launcher;
  info.rank = v.integer("OMPI_COMM_WORLD_RANK");
  info.world_size = v.integer("OMPI_COMM_WORLD_SIZE");
  info.local_rank = v.integer("OMPI_COMM_WORLD_LOCAL_RANK");
  info.local_world_size = v.integer("OMPI_COMM_WORLD_LOCAL_SIZE");
  validate(info, {"OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK", "OMPI_COMM_WORLD_LOCAL_SIZE"});
  // Open MPI exports no node index; by-slot mapping (its default) fills nodes in rank order.
  info.node_rank = info.rank / info.local_world_size;
  // 127.0.0.1 is only right when every rank shares this host.
  if (!v.has("MASTER_ADDR") && info.local_world_size < info.world_size)
    fail(ErrorKind::Distributed, "environment variable MASTER_ADDR is not set, and this mpirun job spans several nodes (",
         "OMPI_COMM_WORLD_LOCAL_SIZE=", info.local_world_size, " < OMPI_COMM_WORLD_SIZE=", info.world_size,
         "): pass the first node's address, e.g. mpirun -x MASTER_ADDR=<host>");
  info.master_addr = v.text_or("MASTER_ADDR", "127.0.0.1");
  if (v.has("MASTER_PORT")) {
    info.store_port = v.port("MASTER_PORT");
  } else {
    info.store_port = 29500;
    for (const char* id : {"PMIX_NAMESPACE", "OMPI_MCA_orte_hnp_uri", "OMPI_MCA_ess_base_jobid"})
      if (v.has(id)) {
        info.store_port = port_from_job_id(v.text(id));
        break;
      }
  }
  return info;
}

int slurm_local_world_size(const Vars& v, int node_id) {
  if (v.has("SLURM_NTASKS_PER_NODE")) return v.integer("SLURM_NTASKS_PER_NODE");
  for (const char* name : {"SLURM_STEP_TASKS_PER_NODE", "SLURM_TASKS_PER_NODE"}) {
    if (!v.has(name)) continue;
    std::vector<int> per_node = expand_slurm_tasks_per_node(v.text(name), name);
    if (size_t(node_id) >= per_node.size())
      fail(ErrorKind::Distributed, "environment variable SLURM_NODEID=", node_id, " but ", name, "='", v.text(name),
           "' lists ", per_node.size(), " node(s)");
    return per_node[size_t(node_id)];
  }
  fail(ErrorKind::Distributed, "environment variables SLURM_NTASKS_PER_NODE and SLURM_TASKS_PER_NODE are not set (reading the srun environment)");
}

RankInfo slurm_form(const Vars& v) {
  RankInfo info;
  info.launcher = v.launcher;
  info.rank = v.integer("SLURM_PROCID");
  info.world_size = v.integer("SLURM_NTASKS");
  info.local_rank = v.integer("SLURM_LOCALID");
  info.node_rank = v.integer("SLURM_NODEID");
  info.local_world_size = slurm_local_world_size(v, info.node_rank);
  validate(info, {"SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID", "SLURM_NTASKS_PER_NODE"});
  if (v.has("MASTER_ADDR")) {
    info.master_addr = v.text("MASTER_ADDR");
  } else {
    const char* list = v.has("SLURM_JOB_NODELIST") ? "SLURM_JOB_NODELIST" : "SLURM_NODELIST";
    info.master_addr = first_slurm_host(v.text(list), list);
  }
  info.store_port = v.has("MASTER_PORT") ? v.port("MASTER_PORT") : port_from_job_id(v.text("SLURM_JOB_ID"));
  return info;
}

RankInfo detect_form(const Env& env) {
  auto is = [&](const char* name, const char* value) {
    auto it = env.find(name);
    return it != env.end() && it->second == value;
  };
  if (is("TESSERA_LAUNCHER", "1")) {
    RankInfo info = torch_form(Vars{env, "tessera launch"}, true);
    info.store_hosted_by_launcher = is("TESSERA_STORE_HOSTED", "1");
    return info;
  }
  if (env.count("TORCHELASTIC_RUN_ID")) {
    Vars v{env, "torchrun"};
    RankInfo info = torch_form(v, true);
    // torchrun's agent already serves its own TCPStore on MASTER_PORT.
    if (is("TORCHELASTIC_USE_AGENT_STORE", "True")) {
      if (info.store_port == 65535)
        fail(ErrorKind::Distributed, "environment variable MASTER_PORT=65535 leaves no port for tessera's store next to torchrun's (it uses MASTER_PORT+1); set TESSERA_STORE_PORT");
      info.store_port += 1;
    }
    return info;
  }
  if (env.count("OMPI_COMM_WORLD_RANK") || env.count("OMPI_COMM_WORLD_SIZE")) return openmpi_form(Vars{env, "mpirun"});
  if (env.count("SLURM_PROCID")) return slurm_form(Vars{env, "srun"});
  if (env.count("RANK") || env.count("WORLD_SIZE")) return torch_form(Vars{env, "torchrun"}, false);
  return RankInfo{};
}

}  // namespace

RankInfo detect_rank_info(const Env& env) {
  RankInfo info = detect_form(env);
  if (env.count("TESSERA_STORE_PORT")) info.store_port = Vars{env, info.launcher}.port("TESSERA_STORE_PORT");
  return info;
}

RankInfo detect_rank_info() {
  Env env;
  for (char** e = environ; e && *e; ++e) {
    std::string kv(*e);
    size_t eq = kv.find('=');
    if (eq != std::string::npos) env.emplace(kv.substr(0, eq), kv.substr(eq + 1));
  }
  return detect_rank_info(env);
}

std::string first_slurm_host(const std::string& nodelist, const std::string& variable) {
  auto bad = [&](const char* why) -> std::string {
    fail(ErrorKind::Distributed, "environment variable ", variable, "='", nodelist, "': ", why);
  };
  std::string host;
  for (size_t i = 0; i < nodelist.size(); ++i) {
    char c = nodelist[i];
    if (c == ',') break;  // end of the first item
    if (c == ']') return bad("unmatched ']'");
    if (c != '[') {
      host.push_back(c);
      continue;
    }
    // "[01-04,7]": the first value is everything before the first '-' or ','.
    size_t close = nodelist.find(']', i);
    if (close == std::string::npos) return bad("unmatched '['");
    std::string inner = nodelist.substr(i + 1, close - i - 1);
    std::string first = inner.substr(0, inner.find_first_of("-,"));
    if (first.empty()) return bad("empty range in brackets");
    host += first;
    i = close;
  }
  if (host.empty()) return bad("no host in the node list");
  return host;
}

std::vector<int> expand_slurm_tasks_per_node(const std::string& text, const std::string& variable) {
  std::vector<int> out;
  size_t pos = 0;
  auto bad = [&]() { fail(ErrorKind::Distributed, "environment variable ", variable, "='", text, "' is not a list like '2(x3),1'"); };
  while (pos < text.size()) {
    size_t end = text.find(',', pos);
    std::string item = text.substr(pos, end == std::string::npos ? std::string::npos : end - pos);
    int count = 0, repeat = 1;
    const char* p = item.data();
    const char* stop = item.data() + item.size();
    auto [after, ec] = std::from_chars(p, stop, count);
    if (ec != std::errc() || after == p) bad();
    if (after != stop) {
      // "(xN)" repeats the count for N nodes.
      if (stop - after < 4 || after[0] != '(' || after[1] != 'x' || stop[-1] != ')') bad();
      auto [rend, rec] = std::from_chars(after + 2, stop - 1, repeat);
      if (rec != std::errc() || rend != stop - 1 || repeat < 1) bad();
    }
    out.insert(out.end(), size_t(repeat), count);
    if (end == std::string::npos) break;
    pos = end + 1;
  }
  if (out.empty()) bad();
  return out;
}

int port_from_job_id(const std::string& id) {
  constexpr uint64_t span = 20001;  // ports 20000..40000
  bool numeric = !id.empty() && id.find_first_not_of("0123456789") == std::string::npos;
  uint64_t h = 0;
  if (numeric) {
    // Consecutive job ids get consecutive ports: no collisions between
    // nearby jobs, which are the ones likely to share a host.
    for (char c : id) h = (h * 10 + uint64_t(c - '0')) % span;
    return int(20000 + h);
  }
  h = 1469598103934665603ull;  // FNV-1a: stable across processes, unlike std::hash
  for (unsigned char c : id) h = (h ^ c) * 1099511628211ull;
  return int(20000 + h % span);
}

}  // namespace tessera::dist
