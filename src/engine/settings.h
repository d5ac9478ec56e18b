// Compilation settings (DESIGN.md §4). Names follow Torch-TensorRT where the
// idea carries over.
#pragma once
#include <map>
#include <string>

#include "core/dtype.h"
#include "core/shape.h"

namespace tessera {

struct Settings {
  std::string target = "cpu";           // the backend the engine is built for: "cpu" or "cuda"
  std::string cuda_arch;                // target "cuda": the GPU architecture it was built on ("sm_90")
  bool use_explicit_typing = true;      // keep the model's and inputs' dtypes
  // Lower eligible ops (MatMul, Gemm, Conv, attention) to autocast_dtype;
  // norms, softmax and reductions stay in fp32.
  bool enable_autocast = false;
  DType autocast_dtype = DType::f16;
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
  std::string timing_cache;             // target "cuda": GEMM timing cache file ("" = none)
};

// How an engine runs (not stored in the file).
struct RuntimeOptions {
  bool cuda_graph = true;  // replay a captured CUDA graph per input shape; false runs op by op
  int device = -1;         // -1: LOCAL_RANK modulo the visible GPUs
};

}  // namespace tessera
