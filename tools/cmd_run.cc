#include <iostream>

#include "core/npy.h"
#include "tools/cli.h"

namespace tessera::cli {

void add_run(CLI::App& app) {
  auto* cmd = app.add_subcommand("run", "Run an engine on .npy/.npz inputs and write its outputs");
  struct Opts {
    std::string engine, npz, out;
    std::vector<std::string> inputs;
  };
  auto o = std::make_shared<Opts>();
  cmd->add_option("engine", o->engine, "engine file (.tsr)")->required();
  cmd->add_option("-i,--input", o->inputs, "name=file.npy (repeatable)");
  cmd->add_option("--inputs", o->npz, ".npz file holding inputs by name");
  cmd->add_option("-o,--output", o->out, "write outputs: .npz (all, by name) or .npy (single output)")->required();
  cmd->callback([o] {
    Engine e = Engine::load(o->engine);
    std::map<std::string, Tensor> inputs;
    if (!o->npz.empty()) inputs = read_npz(o->npz);
    for (const std::string& f : o->inputs) {
      size_t eq = f.find('=');
      if (eq == std::string::npos || eq == 0) fail(ErrorKind::InvalidArgument, "--input '", f, "': expected name=file.npy");
      inputs[f.substr(0, eq)] = read_npy(f.substr(eq + 1));
    }
    std::map<std::string, Tensor> outs = e.run(inputs);
    if (o->out.ends_with(".npy")) {
      if (outs.size() != 1) fail(ErrorKind::InvalidArgument, "--output ", o->out, ": the engine has ", outs.size(), " outputs; use a .npz file");
      write_npy(o->out, outs.begin()->second);
    } else {
      write_npz(o->out, outs);
    }
    for (auto& [name, t] : outs) std::cout << name << ": " << dtype_name(t.dtype()) << to_string(t.shape()) << "\n";
  });
}

}  // namespace tessera::cli
