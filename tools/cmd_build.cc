#include <chrono>
#include <iostream>

#include "tools/cli.h"

namespace tessera::cli {

void add_build(CLI::App& app) {
  auto* cmd = app.add_subcommand("build", "Compile an ONNX model into an engine file (.tsr)");
  struct Opts {
    std::string model, out, dump;
    std::vector<std::string> shapes;
    bool verbose = false, no_fuse = false;
    std::string distributed = "auto";
  };
  auto o = std::make_shared<Opts>();
  cmd->add_option("model", o->model, "ONNX model (external data files next to it)")->required();
  cmd->add_option("-o,--output", o->out, "engine file to write")->required();
  cmd->add_option("--shape", o->shapes, "pin an input's symbolic dims, e.g. --shape x=8x128 (repeatable)");
  cmd->add_option("--dump", o->dump, "write the IR after every pass (text and DOT) into this directory");
  cmd->add_flag("-v,--verbose", o->verbose, "log each pass");
  cmd->add_option("--distributed", o->distributed, "use_distributed_mode: compile collective ops as graph nodes")
      ->check(CLI::IsMember({"auto", "on", "off"}))->capture_default_str();
  cmd->add_flag("--no-fuse-distributed-ops", o->no_fuse, "keep collectives as start/wait pairs (fuse_distributed_ops=false)");
  cmd->callback([o] {
    auto t0 = std::chrono::steady_clock::now();
    Settings s;
    s.input_shapes = parse_shape_flags(o->shapes);
    s.dump_dir = o->dump;
    s.verbose = o->verbose;
    s.use_distributed_mode = o->distributed;
    s.fuse_distributed_ops = !o->no_fuse;
    Engine e = Engine::build_onnx(o->model, s);
    e.save(o->out);
    double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    std::cout << "built " << o->out << ": " << e.graph().nodes().size() << " nodes, " << e.graph().constant_bytes()
              << " bytes of weights, target " << s.target << " (" << ms << " ms)\n";
  });
}

}  // namespace tessera::cli
