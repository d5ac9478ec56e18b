// `tessera run`: one process, or one rank of a job under `tessera launch`
// (torchrun, mpirun, srun). An engine that holds collectives joins the job's
// process group; "{rank}" in an --input/--output path becomes the rank, and
// without it only rank 0 writes the output.
//
// --dp (data parallelism): every rank loads the full batch, runs its part and
// rank 0 writes the gathered outputs, in the original order, to one file —
// only once the gather has succeeded, so a failed job leaves no output. An
// .onnx model instead of an engine is built once through the engine cache,
// for --target (cpu, or cuda on this machine's GPU).
#include <cstdlib>
#include <iostream>

#include "core/npy.h"
#include "dist/device_mesh.h"
#include "dist/process_group.h"
#include "engine/cache.h"
#include "engine/data_parallel.h"
#include "engine/target.h"
#include "passes/pass_manager.h"
#include "tools/cli.h"

namespace tessera::cli {

namespace {
struct RunOpts {
  std::string engine, npz, out, cache_dir;
  std::string target;   // --target: what an .onnx model is built for ("" = cpu); a .tsr must match it
  std::vector<std::string> inputs;
  double timeout = 60;
  std::string dp_size;  // --dp=N: N must be the world size ("all": any)
  bool dp = false, apply_padding = false, verbose = false, no_cuda_graph = false;
  int tp = 1;           // --tp B with --dp: a dp x tp mesh, TP inside each group of B ranks
  std::string comm;     // --comm: what a cuda engine's collectives run on (engine_communicator)
  std::chrono::milliseconds timeout_ms() const { return std::chrono::milliseconds(int64_t(timeout * 1000)); }
};

std::string replace_all(std::string path, const std::string& key, int value) {
  for (size_t p; (p = path.find(key)) != std::string::npos;) path.replace(p, key.size(), std::to_string(value));
  return path;
}

std::string with_rank(std::string path, int rank) { return replace_all(path, "{rank}", rank); }

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

void print_outputs(const std::map<std::string, Tensor>& outs) {
  for (auto& [name, t] : outs) std::cout << name << ": " << dtype_name(t.dtype()) << to_string(t.shape()) << "\n";
}

// A .tsr is loaded; an .onnx goes through the engine cache (built once per job).
// "{rank}" in the engine path becomes the rank, "{tp_rank}" its place in its TP group.
Engine open_engine(const RunOpts& o, const dist::RankInfo& info) {
  std::string path = replace_all(with_rank(o.engine, info.rank), "{tp_rank}", info.rank % std::max(o.tp, 1));
  if (!path.ends_with(".onnx")) {
    Engine e = Engine::load(path);
    if (!o.target.empty() && e.settings().target != o.target)
      fail(ErrorKind::InvalidArgument, path, ": the engine was built for target ", e.settings().target, ", not --target ", o.target,
           "; rebuild it with tessera build --target ", o.target, ", or pass the .onnx model");
    return e;
  }
  EngineCacheOptions c;
  c.dir = o.cache_dir;
  c.timeout = o.timeout_ms();
  if (o.verbose) c.log = [](const std::string& line) { std::cerr << "[cache] " << line << "\n"; };
  Settings s;
  if (!o.target.empty()) s.target = o.target;
  return load_or_build_cached(path, s, c);
}

void check_dp(const RunOpts& o, const dist::RankInfo& info, const Engine& e) {
  TSR_CHECK(o.dp || !o.apply_padding, ErrorKind::InvalidArgument, "--apply-padding only applies with --dp");
  if (!o.dp) return;
  if (o.dp_size != "all") {
    char* end = nullptr;
    long n = std::strtol(o.dp_size.c_str(), &end, 10);
    TSR_CHECK(!o.dp_size.empty() && !*end && n > 0, ErrorKind::InvalidArgument, "--dp=", o.dp_size,
              ": expected a positive rank count");
    TSR_CHECK(n * o.tp == info.world_size, ErrorKind::InvalidArgument, "--dp=", n, o.tp > 1 ? str(" x --tp ", o.tp) : "",
              " needs ", n * o.tp, " ranks, but the job has ", info.world_size, " (", info.launcher, ")");
  }
  TSR_CHECK(info.world_size % o.tp == 0, ErrorKind::InvalidArgument, "--tp ", o.tp, " does not divide the job's ",
            info.world_size, " ranks");
  TSR_CHECK(o.out.find("{rank}") == std::string::npos, ErrorKind::InvalidArgument, "--output ", o.out,
            ": with --dp rank 0 writes the gathered outputs to one file; drop {rank}");
  TSR_CHECK(o.tp > 1 || !has_collectives(e.graph()), ErrorKind::InvalidArgument, o.engine,
            ": the engine holds collective ops (tensor parallel); with --dp say how many ranks each TP group has (--tp B)");
}

// With --tp B the world is a (dp, tp) mesh: the engine's collectives use the
// tp group, the batch is split and gathered over the dp group.
void run_dp(const RunOpts& o, Engine& e, const dist::RankInfo& info, dist::ProcessGroup* pg) {
  DataParallelOptions d;
  d.apply_padding = o.apply_padding;
  if (info.rank == 0) d.progress = [](int64_t k, int64_t n) { std::cerr << "[dp] " << k << "/" << n << " micro-batches\n"; };
  dist::Communicator* dp_comm = pg ? pg->world.get() : nullptr;
  std::map<std::string, std::shared_ptr<dist::Communicator>> axes;
  if (o.tp > 1 && pg) {
    axes = dist::DeviceMesh(info.world_size, {info.world_size / o.tp, o.tp}, {"dp", "tp"}).split(*pg->world);
    e.set_communicator(axes["tp"]);
    dp_comm = axes["dp"].get();
  }
  auto outs = run_data_parallel(e, load_inputs(o.npz, o.inputs, info.rank), dp_comm, d);
  if (info.rank != 0) return;
  write_outputs(o.out, outs);  // after the gather: a failed rank leaves no output file
  print_outputs(outs);
}

void run_plain(const RunOpts& o, const Engine& e, const dist::RankInfo& info) {
  std::map<std::string, Tensor> outs = e.run(load_inputs(o.npz, o.inputs, info.rank));
  bool per_rank = o.out.find("{rank}") != std::string::npos;
  if (per_rank || info.rank == 0) write_outputs(with_rank(o.out, info.rank), outs);
  if (info.rank == 0) print_outputs(outs);
}
}  // namespace

void add_run(CLI::App& app) {
  auto* cmd = app.add_subcommand("run", "Run an engine on .npy/.npz inputs and write its outputs");
  auto o = std::make_shared<RunOpts>();
  cmd->add_option("engine", o->engine, "engine file (.tsr), or an ONNX model (.onnx) built once through the engine cache")
      ->required();
  cmd->add_option("-i,--input", o->inputs, "name=file.npy (repeatable; {rank} in the path becomes the rank)");
  cmd->add_option("--inputs", o->npz, ".npz file holding inputs by name");
  cmd->add_option("-o,--output", o->out, "write outputs: .npz (all, by name) or .npy (single output)")->required();
  cmd->add_option("--timeout", o->timeout, "seconds before a silent or dead rank fails the job (also the longest wait "
                  "for another rank's engine build)")->capture_default_str();
  auto* dp = cmd->add_flag("--dp{all}", o->dp_size,
                           "data parallel over all ranks: every rank loads the full batch, runs its part (split along dim 0), rank 0 "
                           "writes the gathered outputs in order to one file; --dp=N checks that the job has N ranks "
                           "(with --tp B: a dp x tp mesh)");
  cmd->add_option("--tp", o->tp, "with --dp: ranks per tensor-parallel group (a dp x tp mesh; engine path may use {tp_rank})")
      ->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_flag("--apply-padding", o->apply_padding, "with --dp: every rank runs as many rows, repeating its last item "
                "(the repeats are dropped from the output)");
  cmd->add_option("--target", o->target, "backend an .onnx model is built for: cpu (default), or cuda (this machine's GPU); "
                  "with a .tsr, the target it must have been built for")->check(CLI::IsMember({"cpu", "cuda"}));
  cmd->add_option("--cache-dir", o->cache_dir, "engine cache for .onnx models (default $TESSERA_CACHE or ~/.cache/tessera)");
  cmd->add_flag("-v,--verbose", o->verbose, "say whether the engine was built or loaded from the cache");
  cmd->add_option("--comm", o->comm, "collectives of a cuda engine: nccl, gloo (host-staged, slower) or auto (nccl unless "
                  "ranks share a GPU; default, or $TESSERA_COMM)")->check(CLI::IsMember({"auto", "nccl", "gloo"}));
  cmd->add_flag("--no-cuda-graph", o->no_cuda_graph, "cuda engines: run op by op instead of replaying a captured CUDA graph");
  cmd->callback([o, dp] {
    o->dp = dp->count() > 0;
    TSR_CHECK(o->dp || o->tp == 1, ErrorKind::InvalidArgument, "--tp applies with --dp (a dp x tp mesh); a TP-only run needs no flag");
    dist::RankInfo info = dist::detect_rank_info();
    Engine e = open_engine(*o, info);
    RuntimeOptions rt;
    rt.cuda_graph = !o->no_cuda_graph;
    e.set_runtime(rt);
    check_dp(*o, info, e);
    std::unique_ptr<dist::ProcessGroup> pg;
    if (info.world_size > 1 || has_collectives(e.graph())) {
      pg = dist::init_process_group(info, "gloo", o->timeout_ms());
      // A cuda engine's collectives run on NCCL, on the engine's stream (or host-staged over gloo: --comm).
      if (o->tp == 1)
        e.set_communicator(has_collectives(e.graph()) ? engine_communicator(*pg, e.settings().target, o->comm) : pg->world);
    }
    if (o->dp) run_dp(*o, e, info, pg.get());
    else run_plain(*o, e, info);
    if (pg) pg->finish();  // rank 0 hosts the store: leave together
  });
}

}  // namespace tessera::cli
