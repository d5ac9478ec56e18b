#include <iostream>

#include "tools/cli.h"

int main(int argc, char** argv) {
  CLI::App app{"tessera: compile ONNX models into engines and run them, on one device or many"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("tessera ") + tessera::tessera_version());
  tessera::cli::add_build(app);
  tessera::cli::add_run(app);
  tessera::cli::add_inspect(app);
  tessera::cli::add_bench(app);
  tessera::cli::add_demo(app);
  tessera::cli::add_ops(app);
  tessera::cli::add_bench_comm(app);
  tessera::cli::add_launch(app);
  tessera::cli::add_batch(app);
  tessera::cli::add_tokenize(app);
  tessera::cli::add_make_checkpoint(app);
  tessera::cli::add_generate(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const tessera::Error& e) {
    std::cerr << "tessera: error: " << e.what() << "\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "tessera: error: internal: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
