#include <iostream>
#include <map>

#include "ir/dump.h"
#include "engine/target.h"
#include "tools/cli.h"

namespace tessera::cli {

namespace {
void print_summary(const Engine& e, bool weights) {
  const Graph& g = e.graph();
  std::cout << "engine: tessera " << e.version() << ", target " << e.settings().target << ", opset " << g.opset << "\n";
  if (e.settings().tp_degree > 1)
    std::cout << "tensor parallel: shard of rank " << e.settings().tp_rank << " of " << e.settings().tp_degree
              << (e.settings().tp_group.empty() ? "" : " (group '" + e.settings().tp_group + "')") << ", plan " << e.settings().plan_json << "\n";
  for (Value* in : g.inputs) std::cout << "input  " << in->name << ": " << type_string(*in) << "\n";
  for (Value* o : g.outputs) std::cout << "output " << o->name << ": " << type_string(*o) << "\n";
  std::map<std::string, int> ops;
  for (auto& n : g.nodes()) ++ops[n->op];
  std::cout << "layers: " << g.nodes().size() << " (";
  bool first = true;
  for (auto& [op, count] : ops) std::cout << (first ? "" : ", ") << op << " x" << count, first = false;
  std::cout << ")\n";
  size_t count = 0;
  for (auto& v : g.values()) count += v->constant ? 1 : 0;
  std::cout << "weights: " << count << " tensors, " << g.constant_bytes() << " bytes\n";
  if (weights)
    for (auto& v : g.values())
      if (v->constant) std::cout << "  " << v->name << ": " << type_string(*v) << " (" << v->constant->nbytes() << " bytes)\n";
  std::cout << "\n" << dump_text(g);
}
// The plan needs the GPU; without one, say so instead of failing the whole inspect.
std::string cuda_plan_line(const Engine& e, std::map<std::string, Shape> shapes) {
  for (Value* in : e.graph().inputs)
    if (!shapes.count(in->name)) {
      for (int64_t d : in->shape)
        if (d < 0) return "memory plan: input '" + in->name + "' has symbolic dims; give --shape " + in->name + "=...\n";
      shapes[in->name] = in->shape;
    }
  try {
    return describe_cuda_plan(e.cuda_executor(), shapes);
  } catch (const Error& err) {
    return std::string("memory plan: not available here (") + err.what() + ")\n";
  }
}
}  // namespace

void add_inspect(CLI::App& app) {
  auto* cmd = app.add_subcommand("inspect", "Show an engine's layers, shapes, weights and dtypes");
  struct Opts {
    std::string engine;
    bool dot = false, weights = false;
    std::vector<std::string> shapes;
  };
  auto o = std::make_shared<Opts>();
  cmd->add_option("engine", o->engine, "engine file (.tsr)")->required();
  cmd->add_flag("--dot", o->dot, "print the graph as Graphviz DOT instead");
  cmd->add_flag("--weights", o->weights, "list every weight tensor");
  cmd->add_option("--shape", o->shapes, "cuda engines: input shapes for the memory plan where dims are symbolic, e.g. x=8x128");
  cmd->callback([o] {
    Engine e = Engine::load(o->engine);
    if (o->dot) std::cout << dump_dot(e.graph());
    else print_summary(e, o->weights);
    if (!o->dot && e.settings().target == "cuda") std::cout << "\n" << cuda_plan_line(e, parse_shape_flags(o->shapes));
  });
}

}  // namespace tessera::cli
