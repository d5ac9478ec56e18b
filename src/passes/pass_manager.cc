#include "passes/pass_manager.h"

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>

#include "core/npy.h"
#include "engine/settings.h"
#include "ir/dump.h"
#include "ir/verifier.h"
#include "passes/fuse_attention.h"
#include "passes/fuse_elementwise.h"
#include "passes/fuse_gemm_epilogue.h"
#include "passes/fuse_rmsnorm.h"
#include "passes/fuse_rope.h"
#include "passes/fuse_skip_norm.h"
#include "passes/fuse_split_blocks.h"
#include "passes/merge_matmuls.h"

namespace tessera {

void PassManager::dump(const Graph& g, const std::string& stage) {
  if (dump_dir_.empty()) return;
  std::filesystem::create_directories(dump_dir_);
  char prefix[8];
  std::snprintf(prefix, sizeof prefix, "%02d-", step_++);
  std::string base = dump_dir_ + "/" + prefix + stage;
  write_file_atomic(base + ".txt", dump_text(g));
  write_file_atomic(base + ".dot", dump_dot(g));
}

void PassManager::run(Graph& g) {
  verify(g, "import");
  dump(g, "import");
  for (const Pass& p : passes_) {
    auto t0 = std::chrono::steady_clock::now();
    p.run(g);
    verify(g, p.name);
    if (verbose_) {
      double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
      std::cerr << "tessera: pass " << p.name << ": " << g.nodes().size() << " nodes (" << ms << " ms)\n";
    }
    dump(g, p.name);
  }
}

std::vector<Pass> default_passes(const Settings& s) {
  std::vector<Pass> p = {{"fold_constants", fold_constants}, {"eliminate_dead_code", eliminate_dead_code}, {"infer_shapes", infer_shapes}};
  // Fusions run for every target, so the CPU reference kernels of the fused
  // ops prove them in CI. Pattern passes come before fuse_elementwise, which
  // would otherwise absorb their elementwise ops. Order:
  // fuse_rmsnorm, fuse_rope, fuse_attention, attention_layout, merge_matmuls, rope_blocks, pack_attention_qkv,
  // fuse_gemm_epilogue, [autocast],
  // fuse_gemm_residual, fuse_skip_norm, fuse_elementwise, fuse_split_blocks.
  p.push_back({"fuse_rmsnorm", fuse_rmsnorm});
  p.push_back({"fuse_rope", fuse_rope});
  p.push_back({"fuse_attention", fuse_attention});
  p.push_back({"attention_layout", attention_layout});  // absorbs the head Transposes; before autocast would put Casts between them
  p.push_back({"merge_matmuls", merge_matmuls});
  p.push_back({"rope_blocks", rope_blocks});  // Llama's merged q/k/v Split: the Ropes read their blocks
  p.push_back({"pack_attention_qkv", pack_attention_qkv});  // GPT-2's / BERT's q/k/v Split: Attention reads it packed
  p.push_back({"fuse_gemm_epilogue", fuse_gemm_epilogue});
  if (s.enable_autocast) {
    // After the pattern fusions (which match fp32 graphs), before fuse_elementwise (which absorbs the casts).
    DType dt = s.autocast_dtype;
    p.push_back({"autocast", [dt](Graph& g) { autocast(g, dt); }});
    p.push_back({"fold_constants", fold_constants});  // weights become converted constants
    p.push_back({"infer_shapes", infer_shapes});
  }
  p.push_back({"fuse_gemm_residual", fuse_gemm_residual});
  p.push_back({"fuse_skip_norm", fuse_skip_norm});  // the residual Adds no GEMM took, into the norm after them
  p.push_back({"fuse_elementwise", fuse_elementwise});
  p.push_back({"fuse_split_blocks", fuse_split_blocks});  // merged gate/up: SwiGLU reads the GEMM's column blocks
  p.push_back({"split_collectives", split_collectives});
  if (s.fuse_distributed_ops) p.push_back({"fuse_distributed_ops", fuse_distributed_ops});
  return p;
}

}  // namespace tessera
