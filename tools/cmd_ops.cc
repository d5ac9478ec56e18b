#include <iostream>

#include "backend/cpu/kernel_registry.h"
#include "tools/cli.h"

namespace tessera::cli {

void add_ops(CLI::App& app) {
  auto* cmd = app.add_subcommand("ops", "List the ops tessera compiles, one per line");
  cmd->callback([] {
    for (const std::string& op : OpRegistry::names())
      std::cout << op << (cpu::KernelRegistry::find(op) ? "" : "  (no CPU kernel)") << "\n";
  });
}

}  // namespace tessera::cli
