#include <iostream>
#include <map>

#include "ir/dump.h"
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
}  // namespace

void add_inspect(CLI::App& app) {
  auto* cmd = app.add_subcommand("inspect", "Show an engine's layers, shapes, weights and dtypes");
  struct Opts {
    std::string engine;
    bool dot = false, weights = false;
  };
  auto o = std::make_shared<Opts>();
  cmd->add_option("engine", o->engine, "engine file (.tsr)")->required();
  cmd->add_flag("--dot", o->dot, "print the graph as Graphviz DOT instead");
  cmd->add_flag("--weights", o->weights, "list every weight tensor");
  cmd->callback([o] {
    Engine e = Engine::load(o->engine);
    if (o->dot) std::cout << dump_dot(e.graph());
    else print_summary(e, o->weights);
  });
}

}  // namespace tessera::cli
