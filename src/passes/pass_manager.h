// Passes are small functions Graph& → void, each in its own file. The
// PassManager runs them in order, logs their names, verifies the graph after
// each (always: it is cheap next to the passes), and with a dump directory
// writes NN-<pass>.txt and NN-<pass>.dot after every pass.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "ir/graph.h"

namespace tessera {

struct Pass {
  std::string name;
  std::function<void(Graph&)> run;
};

class PassManager {
 public:
  explicit PassManager(std::string dump_dir = "", bool verbose = false) : dump_dir_(std::move(dump_dir)), verbose_(verbose) {}
  void add(Pass p) { passes_.push_back(std::move(p)); }
  void run(Graph& g);
  void dump(const Graph& g, const std::string& stage);

 private:
  std::string dump_dir_;
  bool verbose_;
  std::vector<Pass> passes_;
  int step_ = 0;
};

// The passes (one file each under src/passes/).
void fold_constants(Graph& g);        // infer node by node, evaluate nodes whose inputs are all known
void eliminate_dead_code(Graph& g);   // drop nodes no output depends on; bypass Identity/Dropout
void infer_shapes(Graph& g);          // propagate dtypes and shapes through every node
void split_collectives(Graph& g);     // X → XStart + CollectiveWait, Wait sunk to the first reader
void fuse_distributed_ops(Graph& g);  // adjacent XStart + Wait → X
bool has_collectives(const Graph& g);
void autocast(Graph& g, DType dt);    // eligible ops (MatMul, Gemm, Conv, attention) compute in dt, the rest in fp32

struct Settings;
// The build pipeline for these settings.
std::vector<Pass> default_passes(const Settings& s);

}  // namespace tessera
