// How the CUDA GEMM handles an output row that is not 16-byte aligned
// (backend/cuda/gemm_lt.h): split into row phases or padded. The plan is host
// arithmetic, so CI checks it where the CUDA backend is built; the kernels run
// in the GPU parity harness (tests/python/test_cuda_parity.py, linear_unaligned_n).
#ifdef TESSERA_WITH_CUDA
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "backend/cuda/gemm_lt.h"

using namespace tessera;
using namespace tessera::cuda;

namespace {

// Gemm(A [m, k], B, transB): B [n, k] (trans_b) or [k, n], a constant or a graph input.
struct Linear {
  Graph g;
  Node* node = nullptr;
  Shape a, b;
  Linear(DType t, int64_t m, int64_t n, int64_t k, bool const_b, bool trans_b = true) {
    a = {m, k};
    b = trans_b ? Shape{n, k} : Shape{k, n};
    Value* va = g.add_value("a", t, a);
    Value* vb = const_b ? g.add_constant("w", Tensor::zeros(t, b)) : g.add_value("w", t, b);
    Value* y = g.add_value("y", t, {m, n});
    Attributes at;
    at.set("transB", int64_t(trans_b));
    node = g.add_node("Gemm", "linear", {va, vb}, {y}, at);
  }
  // With row phases allowed (TESSERA_GEMM_ROW_PHASES=1) unless told otherwise.
  GemmPlan plan(bool row_phases = true) const {
    return plan_gemm(*node, node->inputs[0]->dtype, a, b, nullptr, row_phases);
  }
};

// Every element of the [m, n] output is written once: by its row's phase GEMM inside
// the phase's aligned span, or as an edge column outside it (gemm_edge_columns' rule).
void expect_phases_cover(const GemmPlan& g) {
  const int64_t m = g.lt.m, n = g.lt.n, per16 = 16 / int64_t(dtype_size(g.lt.dtype));
  int64_t rows = 0;
  for (int j = 0; j < g.phases; ++j) {
    RowPhase r = row_phase(g, j);
    rows += r.rows;
    EXPECT_EQ(r.row0, j);
    EXPECT_EQ((j * n + r.col0) % per16, 0) << "phase " << j << ": the span's first element is not 16-byte aligned";
    EXPECT_LT(r.col0, per16);
    EXPECT_EQ(r.cols % per16, 0);
    EXPECT_LT(n - (r.col0 + r.cols), per16) << "phase " << j << " leaves a whole aligned chunk to the edge kernel";
    EXPECT_EQ(r.row0 + (r.rows - 1) * g.phases, (m - 1 - j) / g.phases * g.phases + j) << "phase " << j << "'s last row";
    // Every row of this phase starts at the same alignment.
    for (int64_t q = 0; q < r.rows; ++q) EXPECT_EQ(((j + q * g.phases) * n) % per16, (j * n) % per16);
    GemmProblem p = phase_problem(g, j);
    EXPECT_EQ(p.m, r.rows);
    EXPECT_EQ(p.n, r.cols);
    EXPECT_EQ(p.lda, g.phases * g.lt.k);
    EXPECT_EQ(p.ldd, g.phases * n);
    EXPECT_EQ((p.ldd * int64_t(dtype_size(p.dtype))) % 16, 0) << "D's row stride must be 16-byte aligned";
    EXPECT_EQ(p.tuned_align(), 16u);
  }
  EXPECT_EQ(rows, m);
}

}  // namespace

TEST(GemmPlan, Gpt2LmHeadOverAPromptSplitsIntoEightRowPhases) {
  // [8·1024, 768] · wteᵀ, wte [50257, 768] f16: rows start at 8 different alignments.
  Linear l(DType::f16, 8192, 50257, 768, /*const_b=*/false);
  GemmPlan g = l.plan();
  EXPECT_EQ(g.phases, 8);
  EXPECT_EQ(g.real_n, 0);
  EXPECT_EQ(g.lt.n, 50257);
  expect_phases_cover(g);
  std::string key = phase_problem(g, 0).key();
  EXPECT_NE(key.find("m=1024 n=50256 k=768"), std::string::npos) << key;
  EXPECT_NE(key.find("lda=6144 ldd=402056"), std::string::npos) << key;
  EXPECT_EQ(g.lt.key().find("lda="), std::string::npos) << "the whole problem keeps dense rows";
}

TEST(GemmPlan, WithoutRowPhasesAConstantWeightIsPadded) {
  // The default until the split has run on a GPU (split_row_phases).
  Linear l(DType::f16, 4096, 1001, 64, true);
  EXPECT_EQ(l.plan(true).phases, 8);
  GemmPlan g = l.plan(false);
  EXPECT_EQ(g.phases, 0);
  EXPECT_EQ(g.real_n, 1001);
  EXPECT_EQ(g.lt.n, 1024);
}

TEST(GemmPlan, PhasesFollowNsResidue) {
  // f16: N mod 8 = 6 repeats every 4 rows; f32: N mod 4 = 2 every 2 rows.
  Linear f16(DType::f16, 300, 1006, 64, true);
  EXPECT_EQ(f16.plan().phases, 4);
  expect_phases_cover(f16.plan());
  Linear f32(DType::f32, 258, 1002, 32, true);
  EXPECT_EQ(f32.plan().phases, 2);
  expect_phases_cover(f32.plan());
  Linear odd(DType::f16, 301, 1001, 64, true);  // rows not a multiple of the phases
  EXPECT_EQ(odd.plan().phases, 8);
  expect_phases_cover(odd.plan());
}

TEST(GemmPlan, FewRowsPadNInstead) {
  // A decode step's LM head: re-reading the weight 8 times costs more than the padded copy-out.
  Linear l(DType::f16, 128, 1001, 768, true);
  GemmPlan g = l.plan();
  EXPECT_EQ(g.phases, 0);
  EXPECT_EQ(g.real_n, 1001);
  EXPECT_EQ(g.lt.n, 1024);
}

TEST(GemmPlan, AWeightStoredKByNOrUnalignedKIsPadded) {
  Linear kn(DType::f16, 4096, 1001, 64, true, /*trans_b=*/false);
  EXPECT_EQ(kn.plan().phases, 0);
  EXPECT_EQ(kn.plan().real_n, 1001);
  Linear odd_k(DType::f16, 4096, 1001, 60, true);  // B's rows of 120 bytes
  EXPECT_EQ(odd_k.plan().phases, 0);
  EXPECT_EQ(odd_k.plan().real_n, 1001);
}

TEST(GemmPlan, AnAlignedNNeedsNeither) {
  Linear l(DType::f16, 8192, 50304, 768, false);
  GemmPlan g = l.plan();
  EXPECT_EQ(g.phases, 0);
  EXPECT_EQ(g.real_n, 0);
}
#endif
