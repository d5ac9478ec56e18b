// The `tessera` command line: one file per subcommand (cmd_*.cc), each adding
// itself to the app. Errors become one line "tessera: error: ..." and exit 1.
#pragma once
#include <CLI/CLI.hpp>
#include <map>
#include <memory>
#include <string>

#include "core/tensor.h"
#include "engine/engine.h"

namespace tessera::dist { class Communicator; struct ProcessGroup; }

namespace tessera::cli {

void add_build(CLI::App& app);
void add_run(CLI::App& app);
void add_inspect(CLI::App& app);
void add_bench(CLI::App& app);
void add_demo(CLI::App& app);
void add_ops(CLI::App& app);
void add_bench_comm(CLI::App& app);
void add_launch(CLI::App& app);
void add_batch(CLI::App& app);
void add_tokenize(CLI::App& app);
void add_make_checkpoint(CLI::App& app);  // make-checkpoint and inspect-checkpoint
void add_generate(CLI::App& app);

// "2x3x224" → {2, 3, 224}; throws InvalidArgument naming `what`.
Shape parse_shape(const std::string& text, const std::string& what);
// A floating-point weight/activation dtype flag (f32, f16, bf16 and their long
// names); InvalidArgument naming `flag` otherwise.
DType parse_float_dtype(const std::string& text, const std::string& flag);
// "name=2x3" entries → map.
std::map<std::string, Shape> parse_shape_flags(const std::vector<std::string>& flags);
// Random tensors for every engine input (for bench and demo): floats N(0,1), ints in [0, 100).
std::map<std::string, Tensor> random_inputs(const Graph& g, const std::map<std::string, Shape>& shapes, uint64_t seed);

// The world communicator for an engine's collectives. cpu engines: gloo. cuda
// engines: NCCL on this rank's GPU; gloo (collectives staged through the host,
// one warning, same answer) when `comm` says so or, with "auto", when NCCL
// cannot run the job (two ranks on one GPU). `comm`: auto, nccl or gloo; ""
// reads $TESSERA_COMM (default auto). Every rank calls it.
std::shared_ptr<dist::Communicator> engine_communicator(dist::ProcessGroup& pg, const std::string& target, std::string comm);

}  // namespace tessera::cli
