// `tessera run`: one process, or one rank of a job under `tessera launch`
// (torchrun, mpirun, srun). An engine that holds collectives joins the job's
// process group; "{rank}" in an --input/--output path becomes the rank, and
// without it only rank 0 writes the output.
//
// --dp (data parallelism): every rank loads the full batch, runs its part and
// rank 0 writes the gathered outputs, in the original order, to one file —
// only once the gather has succeeded, so a failed job leaves no output. An
// .onnx model instead of an engine is built once through the engine cache.
#include <cstdlib>
#include <iostream>

#include "core/npy.h"
#include "dist/process_group.h"
#include "engine/cache.h"
#include "engine/data_parallel.h"
#include "passes/pass_manager.h"
#include "tools/cli.h"

namespace tessera::cli {

namespace {
struct RunOpts {
  std::string engine, npz, out, cache_dir;
  std::vector<std::string> inputs;
  double timeout = 60;
  std::string dp_size;  // --dp=N: N must be the world size ("all": any)
  bool dp = false, apply_padding = false, verbose = false;
  std::chrono::milliseconds timeout_ms() const { return std::chrono::milliseconds(int64_t(timeout * 1000)); }
};

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

void print_outputs(const std::map<std::string, Tensor>& outs) {
  for (auto& [name, t] : outs) std::cout << name << ": " << dtype_name(t.dtype()) << to_string(t.shape()) << "\n";
}

// A .tsr is loaded; an .onnx goes through the engine cache (built once per job).
Engine open_engine(const RunOpts& o) {
  if (!o.engine.ends_with(".onnx")) return Engine::load(o.engine);
  EngineCacheOptions c;
  c.dir = o.cache_dir;
  c.timeout = o.timeout_ms();
  if (o.verbose) c.log = [](const std::string& line) { std::cerr << "[cache] " << line << "\n"; };
  return load_or_build_cached(o.engine, Settings{}, c);
}

void check_dp(const RunOpts& o, const dist::RankInfo& info, const Engine& e) {
  TSR_CHECK(o.dp || !o.apply_padding, ErrorKind::InvalidArgument, "--apply-padding only applies with --dp");
  if (!o.dp) return;
  if (o.dp_size != "all") {
    char* end = nullptr;
    long n = std::strtol(o.dp_size.c_str(), &end, 10);
    TSR_CHECK(!o.dp_size.empty() && !*end && n > 0, ErrorKind::InvalidArgument, "--dp=", o.dp_size,
              ": expected a positive rank count");
    TSR_CHECK(n == info.world_size, ErrorKind::InvalidArgument, "--dp=", n, " but the job has ", info.world_size,
              " ranks (", info.launcher, "); a dp x tp mesh is not supported yet");
  }
  TSR_CHECK(o.out.find("{rank}") == std::string::npos, ErrorKind::InvalidArgument, "--output ", o.out,
            ": with --dp rank 0 writes the gathered outputs to one file; drop {rank}");
  TSR_CHECK(!has_collectives(e.graph()), ErrorKind::Unsupported, o.engine,
            ": the engine holds collective ops (tensor parallel); --dp with them (a dp x tp mesh) is not supported yet");
}

void run_dp(const RunOpts& o, const Engine& e, const dist::RankInfo& info, dist::ProcessGroup* pg) {
  DataParallelOptions d;
  d.apply_padding = o.apply_padding;
  if (info.rank == 0) d.progress = [](int64_t k, int64_t n) { std::cerr << "[dp] " << k << "/" << n << " micro-batches\n"; };
  auto outs = run_data_parallel(e, load_inputs(o.npz, o.inputs, info.rank), pg ? pg->world.get() : nullptr, d);
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
                           "(a dp x tp mesh is not supported yet)");
  cmd->add_flag("--apply-padding", o->apply_padding, "with --dp: every rank runs as many rows, repeating its last item "
                "(the repeats are dropped from the output)");
  cmd->add_option("--cache-dir", o->cache_dir, "engine cache for .onnx models (default $TESSERA_CACHE or ~/.cache/tessera)");
  cmd->add_flag("-v,--verbose", o->verbose, "say whether the engine was built or loaded from the cache");
  cmd->callback([o, dp] {
    o->dp = dp->count() > 0;
    Engine e = open_engine(*o);
    dist::RankInfo info = dist::detect_rank_info();
    check_dp(*o, info, e);
    std::unique_ptr<dist::ProcessGroup> pg;
    if (info.world_size > 1 || has_collectives(e.graph())) {
      pg = dist::init_process_group(info, "gloo", o->timeout_ms());
      e.set_communicator(pg->world);
    }
    if (o->dp) run_dp(*o, e, info, pg.get());
    else run_plain(*o, e, info);
    if (pg) pg->finish();  // rank 0 hosts the store: leave together
  });
}

}  // namespace tessera::cli
