// `tessera batch manifest.json`: build and run many models in one process —
// one CUDA context for hundreds of small parity cases (the GPU op harness).
// Each manifest entry: {"model": "a.onnx", "inputs": "a.npz", "output": "out.npz",
// "target": "cpu"|"cuda", "autocast": ""|"fp16"|"bf16", "cuda_graph": true}.
// A case that fails writes its one-line error to "<output>.err" instead; the
// others still run. The exit status is 0 when the manifest itself was read.
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "core/npy.h"
#include "tools/cli.h"

namespace tessera::cli {

namespace {
void run_case(const nlohmann::json& c) {
  Settings s;
  s.target = c.value("target", "cpu");
  std::string ac = c.value("autocast", "");
  if (!ac.empty()) s.enable_autocast = true, s.autocast_dtype = ac == "bf16" ? DType::bf16 : DType::f16;
  Engine e = Engine::build_onnx(c.at("model"), s);
  RuntimeOptions rt;
  rt.cuda_graph = c.value("cuda_graph", true);
  e.set_runtime(rt);
  auto inputs = read_npz(c.at("inputs"));
  // Twice: the first run of a shape is eager, the second replays the captured graph.
  e.run(inputs);
  write_npz(c.at("output"), e.run(inputs));
}
}  // namespace

void add_batch(CLI::App& app) {
  auto* cmd = app.add_subcommand("batch", "Build and run every model of a JSON manifest in one process (test harnesses)");
  auto manifest = std::make_shared<std::string>();
  cmd->add_option("manifest", *manifest, "JSON list of {model, inputs, output, target, autocast, cuda_graph}")->required();
  cmd->callback([manifest] {
    nlohmann::json cases;
    try {
      cases = nlohmann::json::parse(read_file(*manifest));
    } catch (const nlohmann::json::exception& e) {
      fail(ErrorKind::Parse, *manifest, ": not a JSON manifest (", e.what(), ")");
    }
    int ok = 0, bad = 0;
    for (const auto& c : cases) {
      std::string out = c.at("output");
      try {
        run_case(c);
        ++ok;
      } catch (const std::exception& e) {
        std::ofstream(out + ".err") << e.what() << "\n";
        ++bad;
      }
    }
    std::cout << "batch: " << ok << " ran, " << bad << " failed\n";
  });
}

}  // namespace tessera::cli
