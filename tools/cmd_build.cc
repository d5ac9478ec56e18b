#include <chrono>
#include <cstdlib>
#include <iostream>

#include "core/npy.h"
#include "frontend/onnx/importer.h"
#include "parallel/auto_plan.h"
#include "parallel/tp_plan.h"
#include "passes/pass_manager.h"

#include "tools/cli.h"

namespace tessera::cli {

namespace {
std::string default_timing_cache() {
  const char* env = std::getenv("TESSERA_CACHE");
  const char* home = std::getenv("HOME");
  if (env && *env) return std::string(env) + "/gemm_timing.json";
  return std::string(home ? home : "/tmp") + "/.cache/tessera/gemm_timing.json";
}

// --autocast, and Torch-TensorRT's deprecated enabled_precisions mapped onto it.
void apply_precision_flags(Settings& s, const std::string& autocast, const std::vector<std::string>& precisions) {
  auto dtype_of = [](const std::string& p) { return p == "fp16" || p == "float16" || p == "half" ? DType::f16 : DType::bf16; };
  if (!autocast.empty()) s.enable_autocast = true, s.autocast_dtype = dtype_of(autocast);
  for (const std::string& p : precisions) {
    if (p == "fp32" || p == "float32") continue;
    if (p != "fp16" && p != "float16" && p != "half" && p != "bf16" && p != "bfloat16")
      fail(ErrorKind::InvalidArgument, "--enabled-precisions ", p, ": expected fp32, fp16 or bf16");
    std::cerr << "tessera: warning: --enabled-precisions is deprecated; it maps onto --autocast " << p << "\n";
    if (!s.enable_autocast) s.enable_autocast = true, s.autocast_dtype = dtype_of(p);
  }
}

// model.tsr → model.rank1.tsr; "{rank}" in the path is replaced instead when present.
std::string shard_path(const std::string& out, int64_t rank) {
  std::string p = out;
  if (size_t at = p.find("{rank}"); at != std::string::npos) return p.replace(at, 6, std::to_string(rank));
  size_t dot = p.rfind('.'), slash = p.rfind('/');
  if (dot == std::string::npos || (slash != std::string::npos && dot < slash)) return p + ".rank" + std::to_string(rank);
  return p.substr(0, dot) + ".rank" + std::to_string(rank) + p.substr(dot);
}
}  // namespace

// --plan auto: find the plan on the folded, shape-inferred model, write it
// next to the engines (so it can be read and edited), and use it.
std::string write_auto_plan(const std::string& model, const std::string& out, int64_t degree, const Settings& s) {
  Graph g = onnx::import_model(model);
  for (auto& [name, shape] : s.input_shapes)
    for (Value* in : g.inputs)
      if (in->name == name) in->shape = shape, in->rank_known = true;
  fold_constants(g);
  infer_shapes(g);
  std::string plan = parallel::auto_plan(g, int(degree)).to_json();
  std::string path = shard_path(out, -1);
  path = path.substr(0, path.find(".rank-1")) + ".plan.json";
  write_file_atomic(path, plan + "\n");
  std::cout << "plan (auto): " << path << "\n";
  return plan;
}

void add_build(CLI::App& app) {
  auto* cmd = app.add_subcommand("build", "Compile an ONNX model into an engine file (.tsr)");
  struct Opts {
    std::string model, out, dump;
    std::vector<std::string> shapes;
    bool verbose = false, no_fuse = false;
    std::string distributed = "auto", plan;
    int64_t tp = 1;
    std::string target = "cpu", autocast, timing_cache;
    std::vector<std::string> enabled_precisions;
  };
  auto o = std::make_shared<Opts>();
  cmd->add_option("model", o->model, "ONNX model (external data files next to it)")->required();
  cmd->add_option("-o,--output", o->out, "engine file to write")->required();
  cmd->add_option("--shape", o->shapes, "pin an input's symbolic dims, e.g. --shape x=8x128 (repeatable)");
  cmd->add_option("--dump", o->dump, "write the IR after every pass (text and DOT) into this directory");
  cmd->add_flag("-v,--verbose", o->verbose, "log each pass");
  cmd->add_option("--distributed", o->distributed, "use_distributed_mode: compile collective ops as graph nodes")
      ->check(CLI::IsMember({"auto", "on", "off"}))->capture_default_str();
  cmd->add_option("--tp", o->tp, "tensor-parallel degree: write one engine per rank (model.rank<r>.tsr, or {rank} in -o)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--plan", o->plan, "TP plan (JSON: module pattern -> colwise/rowwise/replicate with layouts), or 'auto' (written to <output>.plan.json)");
  cmd->add_option("--target", o->target, "backend to compile for: cpu, or cuda (built and tuned on this machine's GPU)")
      ->check(CLI::IsMember({"cpu", "cuda"}))->capture_default_str();
  cmd->add_option("--autocast", o->autocast, "enable_autocast: run MatMul/Gemm/Conv/attention in this dtype (norms, softmax, reductions stay fp32)")
      ->check(CLI::IsMember({"fp16", "bf16", "float16", "bfloat16"}));
  cmd->add_option("--enabled-precisions", o->enabled_precisions, "deprecated: use --autocast (fp16 or bf16 here maps onto it)");
  cmd->add_option("--timing-cache", o->timing_cache, "target cuda: GEMM timing cache file, read and updated (default ~/.cache/tessera/gemm_timing.json)");
  cmd->add_flag("--no-fuse-distributed-ops", o->no_fuse, "keep collectives as start/wait pairs (fuse_distributed_ops=false)");
  cmd->callback([o] {
    auto t0 = std::chrono::steady_clock::now();
    Settings s;
    s.input_shapes = parse_shape_flags(o->shapes);
    s.dump_dir = o->dump;
    s.verbose = o->verbose;
    s.use_distributed_mode = o->distributed;
    s.fuse_distributed_ops = !o->no_fuse;
    s.target = o->target;
    s.timing_cache = o->timing_cache.empty() ? default_timing_cache() : o->timing_cache;
    apply_precision_flags(s, o->autocast, o->enabled_precisions);
    if (o->tp > 1 && o->plan.empty()) fail(ErrorKind::InvalidArgument, "--tp ", o->tp, " needs --plan plan.json");
    if (o->tp == 1 && !o->plan.empty()) fail(ErrorKind::InvalidArgument, "--plan needs --tp N (N > 1)");
    if (o->plan == "auto") {
      s.plan_json = write_auto_plan(o->model, o->out, o->tp, s);
    } else if (!o->plan.empty()) {
      s.plan_json = read_file(o->plan);
      parallel::Plan::from_json(s.plan_json, o->plan);  // errors name the plan file before any build
    }
    s.tp_degree = o->tp;
    for (int64_t r = 0; r < o->tp; ++r) {
      s.tp_rank = r;
      Engine e = Engine::build_onnx(o->model, s);
      std::string out = o->tp == 1 ? o->out : shard_path(o->out, r);
      e.save(out);
      double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
      std::cout << "built " << out << ": " << e.graph().nodes().size() << " nodes, " << e.graph().constant_bytes()
                << " bytes of weights, target " << s.target << (o->tp > 1 ? str(", TP rank ", r, " of ", o->tp) : "") << " (" << ms << " ms)\n";
    }
  });
}

}  // namespace tessera::cli
