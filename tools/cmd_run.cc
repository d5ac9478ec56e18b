// `tessera run`: one process, or one rank of a job under `tessera launch`
// (torchrun, mpirun, srun). An engine that holds collectives joins the job's
// process group; "{rank}" in an --input/--output path becomes the rank, and
// without it only rank 0 writes the output.
#include <iostream>

#include "core/npy.h"
#include "dist/process_group.h"
#include "passes/pass_manager.h"
#include "tools/cli.h"

namespace tessera::cli {

namespace {
std::string with_rank(std::string path, int rank) {
  for (size_t p; (p = path.find("{rank}")) != std::string::npos;) path.replace(p, 6, std::to_string(rank));
  return path;
}

std::map<std::string, Tensor> load_inputs(const std::string& npz, const std::vector<std::string>& flags, int rank) {
  std::map<std::string, Tensor> inputs;
  if (!npz.empty()) inputs = read_npz(with_rank(npz, rank));
  for (const std::string& f : flags) {
    size_t eq = f.find('=');
    if (eq == std::string::npos || eq == 0) fail(ErrorKind::InvalidArgument, "--input '", f, "': expected name=file.npy");
    inputs[f.substr(0, eq)] = read_npy(with_rank(f.substr(eq + 1), rank));
  }
  return inputs;
}

void write_outputs(const std::string& path, const std::map<std::string, Tensor>& outs) {
  if (path.ends_with(".npy")) {
    if (outs.size() != 1) fail(ErrorKind::InvalidArgument, "--output ", path, ": the engine has ", outs.size(), " outputs; use a .npz file");
    write_npy(path, outs.begin()->second);
  } else {
    write_npz(path, outs);
  }
}
}  // namespace

void add_run(CLI::App& app) {
  auto* cmd = app.add_subcommand("run", "Run an engine on .npy/.npz inputs and write its outputs");
  struct Opts {
    std::string engine, npz, out;
    std::vector<std::string> inputs;
    double timeout = 60;
  };
  auto o = std::make_shared<Opts>();
  cmd->add_option("engine", o->engine, "engine file (.tsr)")->required();
  cmd->add_option("-i,--input", o->inputs, "name=file.npy (repeatable; {rank} in the path becomes the rank)");
  cmd->add_option("--inputs", o->npz, ".npz file holding inputs by name");
  cmd->add_option("-o,--output", o->out, "write outputs: .npz (all, by name) or .npy (single output)")->required();
  cmd->add_option("--timeout", o->timeout, "seconds before a silent or dead rank fails the job")->capture_default_str();
  cmd->callback([o] {
    Engine e = Engine::load(o->engine);
    dist::RankInfo info = dist::detect_rank_info();
    std::unique_ptr<dist::ProcessGroup> pg;
    if (info.world_size > 1 || has_collectives(e.graph())) {
      pg = dist::init_process_group(info, "gloo", std::chrono::milliseconds(int64_t(o->timeout * 1000)));
      e.set_communicator(pg->world);
    }
    std::map<std::string, Tensor> outs = e.run(load_inputs(o->npz, o->inputs, info.rank));
    bool per_rank = o->out.find("{rank}") != std::string::npos;
    if (per_rank || info.rank == 0) write_outputs(with_rank(o->out, info.rank), outs);
    if (info.rank == 0)
      for (auto& [name, t] : outs) std::cout << name << ": " << dtype_name(t.dtype()) << to_string(t.shape()) << "\n";
    if (pg) pg->finish();  // rank 0 hosts the store: leave together
  });
}

}  // namespace tessera::cli
