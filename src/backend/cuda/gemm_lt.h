// The cuBLASLt side of MatMul / Gemm / FusedMatMul, shared by their kernels
// (kernels/gemm.cc) and by build-time tuning (gemm_tuning.cc), so both see
// the very same problem and an algorithm timed at build time is the one the
// kernel can run.
//
// Row-major tensors through the transpose trick: row-major D[m,n] = op(A) op(B)
// is column-major D^T[n,m] = op(B)^T op(A)^T, so cuBLASLt's "A" is our B and
// its "B" our A, each a column-major view of the row-major buffer with the
// same transpose flag. A bias of length n then runs along cuBLASLt's rows,
// which is what its BIAS epilogues broadcast.
#pragma once
#include <cublasLt.h>

#include <array>
#include <string>
#include <vector>

#include "backend/cuda/kernels/gemm_util.h"
#include "ir/graph.h"

namespace tessera::cuda {

// One cuBLASLt call in row-major terms:
// D[b] = act(alpha * op(A[b]) op(B[b]) + beta * C[b] + bias), b < batch.
struct GemmProblem {
  DType dtype = DType::f32;
  bool ta = false, tb = false;
  int64_t m = 0, n = 0, k = 0;
  int64_t batch = 1;        // strided batches of m*k, k*n and m*n elements
  bool bias = false;        // a bias of n elements in the epilogue
  GemmAct act = GemmAct::none;  // none / relu / gelu_tanh run in cuBLASLt; gelu (erf) never does
  bool use_c = false;       // beta * C, with C the output buffer itself (prefilled) or a full [m, n] input
  // Row strides of A and D in elements when they are not dense (k and n):
  // one row phase of a GemmPlan::phases split. Never with a batch.
  int64_t lda = 0, ldd = 0;
  // The pointer alignment a build-time choice is timed for and may run with:
  // 256 (fresh buffers), but 16 for a row phase, whose D starts mid-row.
  uint32_t tuned_align() const { return ldd ? 16 : 256; }
  // Key part of the timing cache: "f16 NT m=.. n=.. k=.. batch=.. epi=.. c=..".
  std::string key() const;
};

// How one node runs: the cuBLASLt problem plus the work around it.
struct GemmPlan {
  GemmProblem lt;
  double alpha = 1.0, beta = 0.0;
  // MatMul batch broadcast: operands with a smaller batch are first expanded
  // to the full one in scratch (cuBLASLt has no zero batch stride).
  bool expand_a = false, expand_b = false;
  Shape a_shape, a_full, b_shape, b_full;  // promoted operand shapes and their expanded forms
  Shape batch, a_batch, b_batch;           // broadcast batch dims (integer path)
  // Gemm's C: none, the full [m, n] matrix (read directly), a length-n bias
  // (beta == 1: cuBLASLt's bias epilogue), or broadcast into the output first.
  enum class CMode { none, full, bias, prefill } c_mode = CMode::none;
  Shape c_shape;
  GemmAct post_act = GemmAct::none;  // applied by gemm_epilogue after cuBLASLt (exact GELU)
  bool integer = false;              // integer dtypes: gemm_integer, no cuBLASLt
  // Few rows (m <= skinny_gemm_max_m()), f16/bf16, one matrix, C none or a
  // bias: gemm_skinny's bandwidth-bound kernel instead of cuBLASLt, with
  // alpha, bias and every activation in its epilogue.
  bool skinny = false;
  // N whose rows are not 16-byte aligned (GPT-2's 50257), B a constant: lt.n
  // is padded up to a multiple of 64 and cuBLASLt runs on a padded copy of B
  // (and of the bias) into a scratch [m, lt.n], copied into the output after.
  // The real N when padded, else 0.
  int64_t real_n = 0;
  int64_t out_n() const { return real_n ? real_n : lt.n; }
  // The other way round an unaligned N, for many rows with B a [N, K]
  // matrix (GPT-2's LM head over a prompt): row r's start is aligned like
  // that of row r + phases, so the rows split into `phases` classes
  // r = j (mod phases), each one cuBLASLt GEMM on every phases-th row of A
  // and D (lda = phases·k, ldd = phases·n) over the 16-byte aligned span of
  // columns (row_phase); the fewer than 2·16 bytes of columns at the two
  // ends of each row are gemm_edge_columns'. No padded copy of anything, but
  // B is read once per phase: chosen, where split_row_phases() allows it,
  // when that costs less than the padded result's write and read
  // (plan_gemm). lt keeps the whole [m, n] problem; 0 when not split.
  int phases = 0;
};

// Phase j of a GemmPlan::phases split: rows row0, row0 + phases, ... (`rows`
// of them) and columns [col0, col0 + cols) of each, 16-byte aligned in D.
struct RowPhase {
  int64_t row0 = 0, rows = 0, col0 = 0, cols = 0;
};
RowPhase row_phase(const GemmPlan& g, int j);
// Its cuBLASLt problem (strided A and D rows).
GemmProblem phase_problem(const GemmPlan& g, int j);

// Rows up to which plan_gemm picks the skinny kernel: 0 (off) by default —
// measured on an H200 (bench/RESULTS.md, 2026-12-02) it is slower than
// cuBLASLt in a replayed graph (mlp B8: 0.119 ms vs 0.083 ms) — or
// TESSERA_SKINNY_GEMM_MAX_M (0..64) to run it (it is tested by the GPU harness).
int64_t skinny_gemm_max_m();

// Whether plan_gemm pads an unaligned N (GemmPlan::real_n): yes by default;
// TESSERA_GEMM_PAD_N=0 hands cuBLASLt the unaligned rows directly instead, so
// the two can be timed against each other. Measured on an H200 (bench/RESULTS.md,
// 2026-12-07 third call), GPT-2's LM head (N = 50257, m = 8192) takes 6.25 ms
// direct against 1.54 ms padded with its copy-out. Build and run with the same setting.
bool pad_unaligned_n();

// Whether plan_gemm may split an unaligned N's rows into phases
// (GemmPlan::phases): only with TESSERA_GEMM_ROW_PHASES=1 for now. The split
// has not yet run on a GPU (no device time in the session that wrote it), so
// the padded path, measured and checked against ONNX Runtime, stays the
// default until bench/run_gpu.sh lmhead_variants has timed and checked it.
bool split_row_phases();

// The plan for a MatMul / Gemm / FusedMatMul node given its operand shapes
// (c_shape null when Gemm has no C). The output shape is the op's inference.
// `row_phases`: whether an unaligned N may split into row phases.
GemmPlan plan_gemm(const Node& node, DType dtype, const Shape& a, const Shape& b, const Shape* c_shape,
                   bool row_phases = split_row_phases());

using AlgoBlob = std::array<uint64_t, 8>;  // cublasLtMatmulAlgo_t's words
AlgoBlob to_blob(const cublasLtMatmulAlgo_t& algo);
cublasLtMatmulAlgo_t from_blob(const AlgoBlob& blob);
// The node attribute holding a build-time choice (8 words as int64).
inline constexpr const char* kAlgoAttr = "cublaslt_algo";

// cuBLASLt descriptors of one GemmProblem and the algorithm chosen for it.
class LtGemm {
 public:
  LtGemm() = default;
  ~LtGemm();
  LtGemm(const LtGemm&) = delete;
  LtGemm& operator=(const LtGemm&) = delete;

  // Creates the descriptors (once; errors naming the cuBLASLt call).
  void init(const GemmProblem& p);
  bool ready() const { return desc_ != nullptr; }
  const GemmProblem& problem() const { return p_; }

  // Up to `count` algorithms from cuBLASLt's heuristics, best first, for
  // operands aligned to `align` bytes (256 for fresh cudaMalloc buffers).
  std::vector<cublasLtMatmulHeuristicResult_t> heuristics(cublasLtHandle_t lt, int count, uint32_t align,
                                                          const void* bias_ptr) const;
  // Whether `algo` runs this problem; its workspace need in *workspace.
  bool check(cublasLtHandle_t lt, const cublasLtMatmulAlgo_t& algo, size_t* workspace) const;

  // Choose the algorithm: `stored` (a build-time blob) when it checks and the
  // operands are aligned as it was timed (GemmProblem::tuned_align),
  // otherwise the heuristic's first for `align`. False when cuBLASLt has none
  // for this problem.
  bool choose(cublasLtHandle_t lt, const std::vector<int64_t>* stored, uint32_t align, const void* bias_ptr);
  uint32_t chosen_align() const { return align_; }

  // Enqueue D = ... on `s` with the chosen algorithm (or `algo` when given).
  cublasStatus_t run(cublasLtHandle_t lt, const void* a, const void* b, const void* c, void* d, const void* bias,
                     double alpha, double beta, void* workspace, cudaStream_t s,
                     const cublasLtMatmulAlgo_t* algo = nullptr, size_t workspace_bytes = 0);

 private:
  GemmProblem p_;
  cublasLtMatmulDesc_t desc_ = nullptr;
  cublasLtMatrixLayout_t a_ = nullptr, b_ = nullptr, d_ = nullptr;  // cuBLASLt's A (our B), B (our A), C = D
  cublasLtMatmulAlgo_t algo_{};
  size_t workspace_ = 0;
  uint32_t align_ = 0;
};

// Largest power of two (<= 256) dividing every non-null pointer.
uint32_t pointer_alignment(std::initializer_list<const void*> ptrs);

}  // namespace tessera::cuda
