#include "engine/engine.h"

#include <algorithm>
#include <chrono>
#include <iostream>

#include "frontend/onnx/importer.h"
#include "parallel/shard.h"
#include "passes/pass_manager.h"
#include "engine/target.h"

namespace tessera {

const char* tessera_version() { return TESSERA_VERSION; }

Engine::Engine(std::unique_ptr<Graph> g, Settings s, std::string version)
    : graph_(std::move(g)), settings_(std::move(s)), version_(std::move(version)),
      exec_(std::make_unique<cpu::Executor>(*graph_)) {}

namespace {
void pin_input_shapes(Graph& g, const std::map<std::string, Shape>& shapes) {
  for (auto& [name, shape] : shapes) {
    Value* in = nullptr;
    for (Value* v : g.inputs)
      if (v->name == name) in = v;
    if (!in) fail(ErrorKind::InvalidArgument, "--shape ", name, ": the model has no input named '", name, "'");
    if (in->rank_known && in->shape.size() != shape.size())
      fail(ErrorKind::InvalidArgument, "--shape ", name, ": rank ", shape.size(), " does not match the model's ", type_string_of(*in));
    for (size_t i = 0; in->rank_known && i < shape.size(); ++i)
      if (in->shape[i] >= 0 && in->shape[i] != shape[i])
        fail(ErrorKind::InvalidArgument, "--shape ", name, ": ", to_string(shape), " conflicts with the model's fixed ", to_string(in->shape));
    in->shape = shape;
    in->rank_known = true;
  }
}
}  // namespace

Engine Engine::build(Graph g, const Settings& settings_in) {
  Settings settings = settings_in;
  prepare_target(settings);
  pin_input_shapes(g, settings.input_shapes);
  if (settings.use_distributed_mode != "auto" && settings.use_distributed_mode != "on" && settings.use_distributed_mode != "off")
    fail(ErrorKind::InvalidArgument, "use_distributed_mode must be auto, on or off, got '", settings.use_distributed_mode, "'");
  if (settings.use_distributed_mode == "off" && has_collectives(g))
    std::cerr << "tessera: warning: the model holds collective ops but use_distributed_mode is off; they are compiled as "
                 "graph nodes anyway and need `tessera launch` to run. Build with --distributed on (use_distributed_mode=on) "
                 "to silence this.\n";
  PassManager pm(settings.dump_dir, settings.verbose);
  // An empty plan with tp_degree > 1: the graph arrives sharded (the Hugging
  // Face builder reads only this rank's weights); only the rank check applies.
  if (settings.tp_degree > 1 && !settings.plan_json.empty()) {
    // Sharding needs the global shapes: fold and infer first, then again on the shards.
    parallel::Plan plan = parallel::Plan::from_json(settings.plan_json, "plan");
    parallel::ShardOptions opt{int(settings.tp_rank), int(settings.tp_degree), settings.tp_group};
    pm.add({"fold_constants", fold_constants});
    pm.add({"infer_shapes", infer_shapes});
    pm.add({"apply_tp_plan", [plan, opt](Graph& graph) { parallel::apply_tp_plan(graph, plan, opt); }});
  }
  for (Pass& p : default_passes(settings)) pm.add(std::move(p));
  pm.run(g);
  finish_target(g, settings);
  return Engine(std::make_unique<Graph>(std::move(g)), settings, tessera_version());
}

Engine Engine::build_onnx(const std::string& model_path, const Settings& settings) {
  return build(onnx::import_model(model_path), settings);
}

namespace {
void check_tp_shard(const Settings& s, const dist::Communicator& c) {
  if (s.tp_degree <= 1) return;
  if (c.size() != s.tp_degree)
    fail(ErrorKind::InvalidArgument, "this engine is a shard of a TP-", s.tp_degree, " build, but the ", s.tp_group.empty() ? "job" : "'" + s.tp_group + "' group",
         " has ", c.size(), " ranks; rebuild with --tp ", c.size());
  if (c.rank() != s.tp_rank)
    fail(ErrorKind::InvalidArgument, "this engine holds TP rank ", s.tp_rank, "'s shard, but it is loaded by rank ", c.rank(),
         "; give each rank its own file (e.g. model.rank{rank}.tsr)");
}
}  // namespace

void Engine::set_communicator(std::shared_ptr<dist::Communicator> world) {
  if (settings_.tp_group.empty() && world) check_tp_shard(settings_, *world);
  comms_.world = std::move(world);
}

void Engine::set_group(const std::string& name, std::shared_ptr<dist::Communicator> c) {
  if (name == settings_.tp_group && c) check_tp_shard(settings_, *c);
  comms_.groups[name] = std::move(c);
}

std::map<std::string, Tensor> Engine::run(const std::map<std::string, Tensor>& inputs, const cpu::NodeTimer& timer) const {
  check_inputs(*graph_, inputs);
  bool has_comms = comms_.world || !comms_.groups.empty();
  if (settings_.target == "cuda") return run_cuda(cuda_executor(), inputs, timer, has_comms ? &comms_ : nullptr);
  return exec_->run(inputs, timer, has_comms ? &comms_ : nullptr);
}

std::map<std::string, Tensor> Engine::run_outputs(const std::map<std::string, Tensor>& inputs,
                                                 const std::set<std::string>& names) const {
  for (const std::string& n : names)
    if (!graph_->find_value(n) || std::find(graph_->outputs.begin(), graph_->outputs.end(), graph_->find_value(n)) == graph_->outputs.end())
      fail(ErrorKind::InvalidArgument, "engine '", graph_->name, "' has no output '", n, "'");
  std::map<std::string, Tensor> out;
  if (settings_.target == "cuda") {
    check_inputs(*graph_, inputs);
    bool has_comms = comms_.world || !comms_.groups.empty();
    out = run_cuda(cuda_executor(), inputs, {}, has_comms ? &comms_ : nullptr, &names);
  } else {
    out = run(inputs);
  }
  std::erase_if(out, [&](const auto& kv) { return !names.count(kv.first); });
  return out;
}

std::map<std::string, Tensor> Engine::run_device(const std::map<std::string, Tensor>& inputs) const {
  check_inputs(*graph_, inputs);
  bool has_comms = comms_.world || !comms_.groups.empty();
  return run_cuda_device(cuda_executor(), inputs, has_comms ? &comms_ : nullptr);
}

cuda::Executor& Engine::cuda_executor() const {
  if (settings_.target != "cuda")
    fail(ErrorKind::InvalidArgument, "this engine was built for target '", settings_.target, "'; rebuild it with --target cuda");
  if (!cuda_) cuda_ = make_cuda_executor(*graph_, settings_, runtime_);
  return *cuda_;
}

void* Engine::cuda_stream() const { return cuda_stream_of(cuda_executor()); }

double Engine::timed_run(const std::map<std::string, Tensor>& inputs) const {
  bool has_comms = comms_.world || !comms_.groups.empty();
  if (settings_.target == "cuda") return timed_cuda_run(cuda_executor(), inputs, has_comms ? &comms_ : nullptr);
  auto t0 = std::chrono::steady_clock::now();
  run(inputs);
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

std::map<std::string, Tensor> Engine::bench_inputs(const std::map<std::string, Tensor>& host_inputs) const {
  check_inputs(*graph_, host_inputs);
  if (settings_.target == "cuda") return upload_to_cuda(cuda_executor(), host_inputs);
  return host_inputs;
}

std::map<std::string, Tensor> Engine::to_device(const std::map<std::string, Tensor>& host) const {
  if (settings_.target == "cuda") return upload_to_cuda(cuda_executor(), host);
  return host;
}

}  // namespace tessera
