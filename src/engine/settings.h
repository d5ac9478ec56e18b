// Compilation settings (DESIGN.md §4). Names follow Torch-TensorRT where the
// idea carries over.
#pragma once
#include <map>
#include <string>

#include "core/shape.h"

namespace tessera {

struct Settings {
  std::string target = "cpu";           // the backend the engine is built for
  bool use_explicit_typing = true;      // keep the model's and inputs' dtypes
  int64_t min_block_size = 1;
  // "auto": compile collective ops as graph nodes when the model holds them;
  // "off" with collectives present warns and says how to fix it.
  std::string use_distributed_mode = "auto";
  bool fuse_distributed_ops = true;     // adjacent start/wait pairs become one fused op
  // Tensor parallelism: this engine is rank `tp_rank` of `tp_degree`, sharded by `plan_json`.
  int64_t tp_degree = 1;
  int64_t tp_rank = 0;
  std::string plan_json;
  std::string tp_group;                 // collective group of the TP axis ("" = world)
  std::map<std::string, Shape> input_shapes;  // --shape: pin symbolic input dims at build time
  std::string dump_dir;                 // write the IR after every pass (text + DOT)
  bool verbose = false;
};

}  // namespace tessera
