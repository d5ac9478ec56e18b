// See gemm_lt.h.
#include "backend/cuda/gemm_lt.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <numeric>

#include "backend/cuda/device_context.h"
#include "backend/cuda/env_switch.h"
#include "backend/cuda/kernels/gemm_skinny.h"
#include "core/error.h"

namespace tessera::cuda {
namespace {

void lt_check(cublasStatus_t s, const char* what) {
  if (s != CUBLAS_STATUS_SUCCESS) fail(ErrorKind::Runtime, "[cublasLt] ", what, ": ", cublasLtGetStatusString(s));
}
#define TSR_LT(call) lt_check((call), #call)

cudaDataType_t lt_type(DType t) {
  switch (t) {
    case DType::f32: return CUDA_R_32F;
    case DType::f16: return CUDA_R_16F;
    case DType::bf16: return CUDA_R_16BF;
    case DType::f64: return CUDA_R_64F;
    default: fail(ErrorKind::Unsupported, "[cublasLt] no GEMM for dtype ", dtype_name(t));
  }
}

cublasLtEpilogue_t lt_epilogue(const GemmProblem& p) {
  switch (p.act) {
    case GemmAct::relu: return p.bias ? CUBLASLT_EPILOGUE_RELU_BIAS : CUBLASLT_EPILOGUE_RELU;
    case GemmAct::gelu_tanh: return p.bias ? CUBLASLT_EPILOGUE_GELU_BIAS : CUBLASLT_EPILOGUE_GELU;
    default: return p.bias ? CUBLASLT_EPILOGUE_BIAS : CUBLASLT_EPILOGUE_DEFAULT;
  }
}

// Column-major view of a row-major [rows, cols] buffer, batched; rows `ld`
// elements apart (0: dense).
cublasLtMatrixLayout_t make_layout(DType t, int64_t rows, int64_t cols, int64_t batch, int64_t ld = 0) {
  cublasLtMatrixLayout_t l = nullptr;
  if (ld == 0) ld = cols < 1 ? 1 : cols;
  TSR_LT(cublasLtMatrixLayoutCreate(&l, lt_type(t), uint64_t(cols), uint64_t(rows), ld));
  if (batch > 1) {
    int32_t count = int32_t(batch);
    int64_t stride = rows * cols;
    TSR_LT(cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &count, sizeof count));
    TSR_LT(cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &stride, sizeof stride));
  }
  return l;
}

const char* act_name(GemmAct a) {
  switch (a) {
    case GemmAct::relu: return "relu";
    case GemmAct::gelu_tanh: return "gelu_tanh";
    case GemmAct::gelu: return "gelu";
    default: return "none";
  }
}

GemmAct act_from(const std::string& s) {
  if (s == "relu") return GemmAct::relu;
  if (s == "gelu") return GemmAct::gelu;
  if (s == "gelu_tanh") return GemmAct::gelu_tanh;
  return GemmAct::none;
}

// MatMul and FusedMatMul: 1-D promotion, batch broadcast; B's batch of one
// matrix folds A's batch into m (one GEMM), equal batches run strided, and a
// smaller batch is expanded first.
void plan_matmul(GemmPlan& g, const Shape& a, const Shape& b, const std::string& name) {
  Shape sa = a.size() == 1 ? Shape{1, a[0]} : a, sb = b.size() == 1 ? Shape{b[0], 1} : b;
  int64_t m = sa[sa.size() - 2], k = sa.back(), n = sb.back();
  g.a_batch = Shape(sa.begin(), sa.end() - 2);
  g.b_batch = Shape(sb.begin(), sb.end() - 2);
  g.batch = broadcast_shapes(g.a_batch, g.b_batch, name);
  g.lt.k = k;
  g.lt.n = n;
  g.a_shape = sa;
  g.b_shape = sb;
  int64_t total = numel(g.batch);
  if (numel(g.b_batch) == 1) {
    g.lt.m = numel(g.a_batch) * m;
    g.lt.batch = 1;
    return;
  }
  g.lt.m = m;
  g.lt.batch = total;
  g.expand_a = numel(g.a_batch) != total;
  g.expand_b = numel(g.b_batch) != total;
  g.a_full = g.batch;
  g.a_full.insert(g.a_full.end(), {m, k});
  g.b_full = g.batch;
  g.b_full.insert(g.b_full.end(), {k, n});
}

void plan_gemm_op(GemmPlan& g, const Node& node, const Shape& a, const Shape& b, const Shape* c) {
  g.lt.ta = node.attrs.get_int("transA", 0);
  g.lt.tb = node.attrs.get_int("transB", 0);
  g.alpha = node.attrs.get_float("alpha", 1.0f);
  float beta = node.attrs.get_float("beta", 1.0f);
  g.lt.m = g.lt.ta ? a[1] : a[0];
  g.lt.k = g.lt.ta ? a[0] : a[1];
  g.lt.n = g.lt.tb ? b[0] : b[1];
  g.a_shape = a;
  g.b_shape = b;
  if (!c || beta == 0.0f) return;
  g.beta = beta;
  g.c_shape = *c;
  int64_t m = g.lt.m, n = g.lt.n;
  bool row_vector = (c->size() == 1 && (*c)[0] == n) || (c->size() == 2 && (*c)[0] == 1 && (*c)[1] == n);
  if (c->size() == 2 && (*c)[0] == m && (*c)[1] == n) {
    g.c_mode = GemmPlan::CMode::full;
    g.lt.use_c = true;
  } else if (row_vector && beta == 1.0f && !g.integer) {
    g.c_mode = GemmPlan::CMode::bias;
    g.lt.bias = true;
  } else {
    g.c_mode = GemmPlan::CMode::prefill;
    g.lt.use_c = true;
  }
}

bool is_constant_input(const Node& node, size_t i) {
  return i < node.inputs.size() && node.inputs[i] && node.inputs[i]->is_constant();
}

// An unaligned N split into row phases (GemmPlan::phases) when B is [N, K]
// with 16-byte rows and re-reading it once a phase costs less memory traffic
// than writing and reading back the padded result: (phases - 1)·n·k against
// 2·m·n elements.
bool plan_row_phases(GemmPlan& g) {
  const GemmProblem& p = g.lt;
  const int64_t per16 = 16 / int64_t(dtype_size(p.dtype));
  if (!p.tb || p.k % per16 != 0 || p.n < 4 * per16) return false;
  const int64_t phases = per16 / std::gcd(p.n % per16, per16);
  if ((phases - 1) * p.k >= 2 * p.m) return false;
  g.phases = int(phases);
  return true;
}

// The float paths around cuBLASLt: the skinny kernel, or an unaligned N split
// into row phases or padded.
void plan_layout(GemmPlan& g, const Node& node, bool row_phases) {
  GemmProblem& p = g.lt;
  bool one_matrix = p.batch == 1 && !g.expand_a && !g.expand_b && !p.ta;
  bool c_ok = (g.c_mode == GemmPlan::CMode::none || g.c_mode == GemmPlan::CMode::bias) && !p.use_c;
  if (!one_matrix || !c_ok || p.m == 0 || p.n == 0 || p.k == 0) return;
  if (p.m <= skinny_gemm_max_m() && skinny_gemm_supports(p.dtype, p.m, p.n, p.k, p.tb)) {
    g.skinny = true;
    return;
  }
  int64_t per16 = 16 / int64_t(dtype_size(p.dtype));
  bool has_bias = node.op != "MatMul" && node.inputs.size() > 2 && node.inputs[2];
  if (p.dtype == DType::f64 || p.n % per16 == 0) return;
  if (row_phases && plan_row_phases(g)) return;
  if (!is_constant_input(node, 1)) return;
  if (has_bias && !is_constant_input(node, 2)) return;
  if (!pad_unaligned_n()) return;
  g.real_n = p.n;
  p.n = (p.n + 63) / 64 * 64;
}

}  // namespace

bool pad_unaligned_n() {
  static const bool v = !env_is("TESSERA_GEMM_PAD_N", "0");
  return v;
}

bool split_row_phases() {
  static const bool v = env_is("TESSERA_GEMM_ROW_PHASES", "1");
  return v;
}

RowPhase row_phase(const GemmPlan& g, int j) {
  const int64_t p = g.phases, n = g.lt.n, per16 = 16 / int64_t(dtype_size(g.lt.dtype));
  RowPhase r;
  r.row0 = j;
  r.rows = g.lt.m > j ? (g.lt.m - j + p - 1) / p : 0;
  r.col0 = (per16 - (j * n) % per16) % per16;  // the first column whose element is 16-byte aligned
  r.cols = (n - r.col0) / per16 * per16;
  return r;
}

GemmProblem phase_problem(const GemmPlan& g, int j) {
  RowPhase r = row_phase(g, j);
  GemmProblem p = g.lt;
  p.m = r.rows;
  p.n = r.cols;
  p.lda = g.phases * g.lt.k;
  p.ldd = g.phases * g.lt.n;
  return p;
}

int64_t skinny_gemm_max_m() {
  static const int64_t v = [] {
    const char* e = std::getenv("TESSERA_SKINNY_GEMM_MAX_M");
    return e && *e ? std::clamp<int64_t>(std::atoll(e), 0, 64) : int64_t(0);
  }();
  return v;
}

std::string GemmProblem::key() const {
  std::string s = std::string(dtype_name(dtype)) + " " + (ta ? "T" : "N") + (tb ? "T" : "N");
  s += " m=" + std::to_string(m) + " n=" + std::to_string(n) + " k=" + std::to_string(k);
  s += " batch=" + std::to_string(batch) + " epi=" + act_name(act) + (bias ? "+bias" : "") + (use_c ? " c" : "");
  if (lda || ldd) s += " lda=" + std::to_string(lda) + " ldd=" + std::to_string(ldd);
  return s;
}

GemmPlan plan_gemm(const Node& node, DType dtype, const Shape& a, const Shape& b, const Shape* c_shape,
                   bool row_phases) {
  GemmPlan g;
  g.lt.dtype = dtype;
  g.integer = !is_float(dtype);
  if (node.op == "Gemm") {
    plan_gemm_op(g, node, a, b, c_shape);
  } else {
    // FusedMatMul's trans_b: B is one [N, K] matrix, MatMul's rules on its [K, N] view.
    bool trans_b = node.op == "FusedMatMul" && node.attrs.get_int("trans_b", 0) != 0;
    if (trans_b && b.size() != 2) fail(ErrorKind::Shape, "node '", node.name, "': trans_b needs a 2-D B, got ", to_string(b));
    plan_matmul(g, a, trans_b ? Shape{b[1], b[0]} : b, node.name);
    g.lt.tb = trans_b;
    if (node.op == "FusedMatMul") {
      g.lt.bias = c_shape != nullptr;
      GemmAct act = act_from(node.attrs.get_string("activation", ""));
      // cuBLASLt's GELU is the tanh form; the exact one runs after it.
      if (act == GemmAct::gelu) g.post_act = act;
      else g.lt.act = act;
      if (node.inputs.size() > 3 && node.inputs[3]) {  // the residual: C of the output's shape, beta = 1
        g.lt.use_c = true;
        g.beta = 1.0;
      }
    }
  }
  if (!g.integer) plan_layout(g, node, row_phases);
  return g;
}

AlgoBlob to_blob(const cublasLtMatmulAlgo_t& algo) {
  static_assert(sizeof(cublasLtMatmulAlgo_t) == sizeof(AlgoBlob), "cublasLtMatmulAlgo_t is 8 words");
  AlgoBlob b;
  std::memcpy(b.data(), &algo, sizeof b);
  return b;
}

cublasLtMatmulAlgo_t from_blob(const AlgoBlob& blob) {
  cublasLtMatmulAlgo_t a;
  std::memcpy(&a, blob.data(), sizeof a);
  return a;
}

uint32_t pointer_alignment(std::initializer_list<const void*> ptrs) {
  uint32_t align = 256;
  for (const void* p : ptrs) {
    if (!p) continue;
    auto v = reinterpret_cast<uintptr_t>(p);
    while (align > 1 && v % align != 0) align /= 2;
  }
  return align;
}

LtGemm::~LtGemm() {
  if (a_) cublasLtMatrixLayoutDestroy(a_);
  if (b_) cublasLtMatrixLayoutDestroy(b_);
  if (d_) cublasLtMatrixLayoutDestroy(d_);
  if (desc_) cublasLtMatmulDescDestroy(desc_);
}

void LtGemm::init(const GemmProblem& p) {
  if (desc_) return;
  p_ = p;
  if (p.batch > INT32_MAX) fail(ErrorKind::Unsupported, "[cublasLt] batch of ", p.batch, " matrices (more than 2^31)");
  bool f64 = p.dtype == DType::f64;
  // fp32 results must match the reference to 1e-5: CUBLAS_COMPUTE_32F, not TF32;
  // f16/bf16 accumulate in fp32 too.
  cublasComputeType_t compute = f64 ? CUBLAS_COMPUTE_64F : CUBLAS_COMPUTE_32F;
  cudaDataType_t scale = f64 ? CUDA_R_64F : CUDA_R_32F;
  TSR_LT(cublasLtMatmulDescCreate(&desc_, compute, scale));
  // cuBLASLt's A is our B and its B our A (see the header), with the same flags.
  cublasOperation_t op_a = p.tb ? CUBLAS_OP_T : CUBLAS_OP_N, op_b = p.ta ? CUBLAS_OP_T : CUBLAS_OP_N;
  TSR_LT(cublasLtMatmulDescSetAttribute(desc_, CUBLASLT_MATMUL_DESC_TRANSA, &op_a, sizeof op_a));
  TSR_LT(cublasLtMatmulDescSetAttribute(desc_, CUBLASLT_MATMUL_DESC_TRANSB, &op_b, sizeof op_b));
  cublasLtEpilogue_t epi = lt_epilogue(p);
  TSR_LT(cublasLtMatmulDescSetAttribute(desc_, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi));
  // Row-major buffers: B is [k, n] (tb: [n, k]), A is [m, k] (ta: [k, m]), D is [m, n].
  if ((p.lda || p.ldd) && (p.batch != 1 || p.ta))
    fail(ErrorKind::Internal, "[cublasLt] strided rows with a batch or a transposed A: ", p.key());
  b_ = make_layout(p.dtype, p.ta ? p.k : p.m, p.ta ? p.m : p.k, p.batch, p.lda);
  a_ = make_layout(p.dtype, p.tb ? p.n : p.k, p.tb ? p.k : p.n, p.batch);
  d_ = make_layout(p.dtype, p.m, p.n, p.batch, p.ldd);
}

std::vector<cublasLtMatmulHeuristicResult_t> LtGemm::heuristics(cublasLtHandle_t lt, int count, uint32_t align,
                                                                const void* bias_ptr) const {
  if (p_.bias)
    TSR_LT(cublasLtMatmulDescSetAttribute(desc_, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias_ptr, sizeof bias_ptr));
  cublasLtMatmulPreference_t pref = nullptr;
  TSR_LT(cublasLtMatmulPreferenceCreate(&pref));
  uint64_t ws = DeviceContext::kGemmWorkspaceBytes;
  cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws);
  for (auto attr : {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
                    CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES})
    cublasLtMatmulPreferenceSetAttribute(pref, attr, &align, sizeof align);
  std::vector<cublasLtMatmulHeuristicResult_t> res(size_t(count < 1 ? 1 : count));
  int got = 0;
  cublasStatus_t s = cublasLtMatmulAlgoGetHeuristic(lt, desc_, a_, b_, d_, d_, pref, int(res.size()), res.data(), &got);
  cublasLtMatmulPreferenceDestroy(pref);
  if (s != CUBLAS_STATUS_SUCCESS) got = 0;  // NOT_SUPPORTED: no algorithm for this problem
  res.resize(size_t(got));
  std::erase_if(res, [](const cublasLtMatmulHeuristicResult_t& r) { return r.state != CUBLAS_STATUS_SUCCESS; });
  return res;
}

bool LtGemm::check(cublasLtHandle_t lt, const cublasLtMatmulAlgo_t& algo, size_t* workspace) const {
  cublasLtMatmulHeuristicResult_t r{};
  if (cublasLtMatmulAlgoCheck(lt, desc_, a_, b_, d_, d_, &algo, &r) != CUBLAS_STATUS_SUCCESS) return false;
  if (r.workspaceSize > DeviceContext::kGemmWorkspaceBytes) return false;
  *workspace = r.workspaceSize;
  return true;
}

bool LtGemm::choose(cublasLtHandle_t lt, const std::vector<int64_t>* stored, uint32_t align, const void* bias_ptr) {
  if (p_.bias)
    TSR_LT(cublasLtMatmulDescSetAttribute(desc_, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias_ptr, sizeof bias_ptr));
  // A build-time choice was timed for operands aligned to tuned_align().
  if (stored && stored->size() == 8 && align >= p_.tuned_align()) {
    AlgoBlob blob;
    for (size_t i = 0; i < 8; ++i) blob[i] = uint64_t((*stored)[i]);
    cublasLtMatmulAlgo_t algo = from_blob(blob);
    if (check(lt, algo, &workspace_)) {
      algo_ = algo;
      align_ = align;
      return true;
    }
  }
  std::vector<cublasLtMatmulHeuristicResult_t> res = heuristics(lt, 1, align, bias_ptr);
  if (res.empty()) return false;
  algo_ = res[0].algo;
  workspace_ = res[0].workspaceSize;
  align_ = align;
  return true;
}

cublasStatus_t LtGemm::run(cublasLtHandle_t lt, const void* a, const void* b, const void* c, void* d, const void* bias,
                           double alpha, double beta, void* workspace, cudaStream_t s, const cublasLtMatmulAlgo_t* algo,
                           size_t workspace_bytes) {
  if (p_.bias) {
    cublasStatus_t st = cublasLtMatmulDescSetAttribute(desc_, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof bias);
    if (st != CUBLAS_STATUS_SUCCESS) return st;
  }
  if (!p_.use_c) {
    c = d;
    beta = 0.0;
  }
  float alpha_f = float(alpha), beta_f = float(beta);
  const void* pa = &alpha_f;
  const void* pb = &beta_f;
  if (p_.dtype == DType::f64) {
    pa = &alpha;
    pb = &beta;
  }
  // cuBLASLt's A is our B, its B our A.
  return cublasLtMatmul(lt, desc_, pa, b, a_, a, b_, pb, c, d_, d, d_, algo ? algo : &algo_, workspace,
                        algo ? workspace_bytes : workspace_, s);
}

}  // namespace tessera::cuda
