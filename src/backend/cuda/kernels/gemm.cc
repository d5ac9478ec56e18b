// MatMul, Gemm and FusedMatMul on the CUDA backend: cuBLASLt for float
// dtypes (fp32 in exact fp32 — CUBLAS_COMPUTE_32F, no TF32 — f16/bf16 with
// fp32 accumulation, f64), a plain kernel for integers. The semantics are
// the CPU kernels' (backend/cpu/kernels/linalg.cc, fused_matmul.cc).
//
// The first, uncaptured run of a shape plans the call (gemm_lt.h: how the
// batch folds, how Gemm's C joins, whether the skinny kernel, a row-phase
// split or a padded N applies) and builds the cuBLASLt descriptors and
// algorithm — the node's build-time choice (`cublaslt_algo`) when it has one,
// else the heuristic's first — and, for a padded N, the padded copies of the constant weight and
// bias (the only allocations, freed with the state); later runs only enqueue.
#include <algorithm>
#include <memory>
#include <vector>

#include "backend/cuda/device_context.h"
#include "backend/cuda/gemm_lt.h"
#include "backend/cuda/kernel_registry.h"
#include "backend/cuda/kernels/gemm_skinny.h"
#include "backend/cuda/kernels/gemm_util.h"

namespace tessera::cuda {
namespace {

struct GemmState {
  bool planned = false;
  GemmPlan plan;
  std::unique_ptr<LtGemm> lt;
  std::vector<int64_t> stored;  // the node's cublaslt_algo, if any
  // When cuBLASLt has no algorithm with the epilogue, it runs without one
  // and these are applied by gemm_epilogue afterwards.
  bool unfused = false;
  bool post_bias = false;
  GemmAct post_act = GemmAct::none;
  SkinnyGemm skinny;  // plan.skinny: the launch
  // plan.real_n: B (and the bias) padded to plan.lt.n columns, zeros beyond N.
  void* w_pad = nullptr;
  void* bias_pad = nullptr;
  // plan.phases: one GEMM per row phase (null for a phase without rows), chosen for phase_align.
  std::vector<std::unique_ptr<LtGemm>> phase_lt;
  uint32_t phase_align = 0;

  GemmState() = default;
  GemmState(const GemmState&) = delete;
  GemmState& operator=(const GemmState&) = delete;
  ~GemmState() {
    if (w_pad) cudaFree(w_pad);
    if (bias_pad) cudaFree(bias_pad);
  }
};

void cuda_ok(const KernelContext& ctx, cudaError_t e, const char* what) {
  if (e != cudaSuccess) ctx.error(what, ": ", cudaGetErrorString(e));
}

size_t align_up(size_t v) { return (v + 255) / 256 * 256; }

// The Gemm C or FusedMatMul bias input, if present.
const Tensor* third_input(const KernelContext& ctx) {
  return ctx.node().op != "MatMul" && ctx.has_input(2) ? &ctx.input(2) : nullptr;
}

// FusedMatMul's residual (cuBLASLt's C, beta = 1), if present.
const Tensor* residual_input(const KernelContext& ctx) {
  return ctx.node().op == "FusedMatMul" && ctx.has_input(3) ? &ctx.input(3) : nullptr;
}

// Zero-padded device copies of the constant B ([K, N] gains columns, [N, K]
// rows) and bias, enqueued on the stream before the first GEMM reads them.
// This first run is never captured, so allocating here is allowed.
void pad_constants(KernelContext& ctx, GemmState& st, const Tensor* c) {
  const GemmPlan& g = st.plan;
  size_t es = dtype_size(g.lt.dtype);
  size_t n = size_t(g.real_n), np = size_t(g.lt.n), k = size_t(g.lt.k);
  cudaStream_t s = ctx.stream();
  cuda_ok(ctx, cudaMalloc(&st.w_pad, np * k * es), "allocating the N-padded weight");
  cuda_ok(ctx, cudaMemsetAsync(st.w_pad, 0, np * k * es, s), "zeroing the N-padded weight");
  const void* w = ctx.input(1).raw();
  if (g.lt.tb)
    cuda_ok(ctx, cudaMemcpyAsync(st.w_pad, w, n * k * es, cudaMemcpyDeviceToDevice, s), "padding the weight");
  else
    cuda_ok(ctx, cudaMemcpy2DAsync(st.w_pad, np * es, w, n * es, n * es, k, cudaMemcpyDeviceToDevice, s),
            "padding the weight");
  bool bias = g.c_mode == GemmPlan::CMode::bias || (ctx.node().op == "FusedMatMul" && c);
  if (!bias) return;
  cuda_ok(ctx, cudaMalloc(&st.bias_pad, np * es), "allocating the N-padded bias");
  cuda_ok(ctx, cudaMemsetAsync(st.bias_pad, 0, np * es, s), "zeroing the N-padded bias");
  cuda_ok(ctx, cudaMemcpyAsync(st.bias_pad, c->raw(), n * es, cudaMemcpyDeviceToDevice, s), "padding the bias");
}

void plan(KernelContext& ctx, GemmState& st) {
  const Tensor &a = ctx.input(0), &b = ctx.input(1);
  const Tensor* c = third_input(ctx);
  if (a.dtype() == DType::boolean) ctx.error(ctx.node().op, " on bool is not supported");
  if (b.dtype() != a.dtype()) ctx.error("operand dtypes differ: ", dtype_name(a.dtype()), " and ", dtype_name(b.dtype()));
  if (c && c->dtype() != a.dtype())
    ctx.error(ctx.node().op == "Gemm" ? "C" : "bias", " dtype ", dtype_name(c->dtype()), " differs from A's ",
              dtype_name(a.dtype()));
  st.plan = plan_gemm(ctx.node(), a.dtype(), a.shape(), b.shape(), c ? &c->shape() : nullptr);
  st.post_act = st.plan.post_act;
  st.stored = ctx.attrs().get_ints(kAlgoAttr, {});
  const GemmProblem& p = st.plan.lt;
  if (st.plan.skinny)
    st.skinny = skinny_gemm_plan(p.dtype, p.m, p.n, p.k, p.tb, ctx.device().props().multiProcessorCount);
  if (st.plan.real_n) pad_constants(ctx, st, c);
  st.planned = true;
}

// A cuBLASLt GEMM for `p` on operands aligned to `align` (without the
// epilogue once st.unfused), or null when cuBLASLt has no algorithm for it.
std::unique_ptr<LtGemm> make_lt(KernelContext& ctx, const GemmState& st, GemmProblem p, uint32_t align,
                                const void* bias) {
  if (st.unfused) {  // an earlier choice already moved the epilogue out
    p.bias = false;
    p.act = GemmAct::none;
  }
  auto lt = std::make_unique<LtGemm>();
  lt->init(p);
  // The build-time choice was timed with the epilogue.
  const std::vector<int64_t>* stored = st.stored.size() == 8 && !st.unfused ? &st.stored : nullptr;
  if (lt->choose(ctx.device().cublaslt(), stored, align, st.unfused ? nullptr : bias)) return lt;
  return nullptr;
}

// No algorithm with the epilogue (f64, say): plain GEMMs from now on, the bias
// and activation by gemm_epilogue after them. False when already so or there
// is no epilogue to move.
bool unfuse(GemmState& st) {
  const GemmProblem& p = st.plan.lt;
  if (st.unfused || (!p.bias && p.act == GemmAct::none)) return false;
  st.unfused = true;
  st.post_bias = p.bias;
  if (p.act != GemmAct::none) st.post_act = p.act;
  return true;
}

// cuBLASLt descriptors and algorithm for operands aligned to `align`.
void choose(KernelContext& ctx, GemmState& st, uint32_t align, const void* bias) {
  st.lt = make_lt(ctx, st, st.plan.lt, align, bias);
  if (!st.lt && unfuse(st)) st.lt = make_lt(ctx, st, st.plan.lt, align, bias);
  if (!st.lt) ctx.error("cuBLASLt has no algorithm for ", st.plan.lt.key());
}

// The same for every row phase (plan.phases), all with the epilogue or all without.
void choose_phases(KernelContext& ctx, GemmState& st, uint32_t align, const void* bias) {
  for (;;) {
    st.phase_lt.clear();
    bool ok = true;
    for (int j = 0; j < st.plan.phases && ok; ++j) {
      GemmProblem p = phase_problem(st.plan, j);
      st.phase_lt.push_back(p.m ? make_lt(ctx, st, p, align, bias) : nullptr);
      ok = !p.m || st.phase_lt.back();
    }
    if (ok) {
      st.phase_align = align;
      return;
    }
    if (!unfuse(st)) ctx.error("cuBLASLt has no algorithm for ", phase_problem(st.plan, 0).key());
  }
}

void run_integer(KernelContext& ctx, const GemmPlan& g, const Tensor* c) {
  const Tensor &a = ctx.input(0), &b = ctx.input(1);
  Tensor& out = ctx.output(0);
  bool gemm = ctx.node().op == "Gemm";
  if (gemm && g.c_mode != GemmPlan::CMode::none)
    cuda_ok(ctx, gemm_broadcast_copy(c->raw(), c->shape(), out.raw(), {g.lt.m, g.lt.n}, dtype_size(out.dtype()), ctx.stream()),
            "broadcasting C");
  Shape none;
  int64_t m = gemm ? g.lt.m : g.a_shape[g.a_shape.size() - 2];
  cuda_ok(ctx,
          gemm_integer(out.dtype(), gemm ? none : g.batch, gemm ? none : g.a_batch, gemm ? none : g.b_batch, m, g.lt.n,
                       g.lt.k, g.lt.ta, g.lt.tb, a.raw(), b.raw(), int64_t(g.alpha), gemm ? int64_t(g.beta) : 0,
                       out.raw(), ctx.stream()),
          "integer GEMM");
}

// k == 0: the product is zero, leaving beta * C or act(bias).
void run_empty_k(KernelContext& ctx, const GemmPlan& g, const Tensor* c) {
  Tensor& out = ctx.output(0);
  bool gemm = ctx.node().op == "Gemm";
  if (gemm && g.c_mode != GemmPlan::CMode::none) {
    cuda_ok(ctx, gemm_broadcast_copy(c->raw(), c->shape(), out.raw(), {g.lt.m, g.lt.n}, dtype_size(out.dtype()), ctx.stream()),
            "broadcasting C");
    cuda_ok(ctx, gemm_epilogue(out.raw(), out.dtype(), out.numel(), g.lt.n, g.beta, nullptr, GemmAct::none, ctx.stream()),
            "scaling C");
    return;
  }
  if (const Tensor* r = residual_input(ctx))
    cuda_ok(ctx, cudaMemcpyAsync(out.raw(), r->raw(), out.nbytes(), cudaMemcpyDeviceToDevice, ctx.stream()), "copying the residual");
  else
    cuda_ok(ctx, cudaMemsetAsync(out.raw(), 0, out.nbytes(), ctx.stream()), "zeroing the output");
  GemmAct act = g.post_act != GemmAct::none ? g.post_act : g.lt.act;
  if (c || act != GemmAct::none)
    cuda_ok(ctx, gemm_epilogue(out.raw(), out.dtype(), out.numel(), g.lt.n, 1.0, c ? c->raw() : nullptr, act, ctx.stream()),
            "bias/activation");
}

// Few rows: gemm_skinny with bias, alpha and the activation in its epilogue.
void run_skinny(KernelContext& ctx, const GemmState& st, const Tensor* c) {
  const GemmPlan& g = st.plan;
  const void* bias = g.c_mode == GemmPlan::CMode::bias || (ctx.node().op == "FusedMatMul" && c) ? c->raw() : nullptr;
  GemmAct act = g.post_act != GemmAct::none ? g.post_act : g.lt.act;
  size_t bytes = skinny_gemm_scratch_bytes(st.skinny);
  void* scratch = bytes ? ctx.scratch(bytes) : nullptr;
  cuda_ok(ctx,
          skinny_gemm(st.skinny, ctx.input(0).raw(), ctx.input(1).raw(), bias, float(g.alpha), act, ctx.output(0).raw(),
                      scratch, ctx.stream()),
          "skinny GEMM");
}

// The bias and activation cuBLASLt did not apply, over the whole output.
void post_epilogue(KernelContext& ctx, const GemmState& st, const void* bias) {
  if (!st.post_bias && st.post_act == GemmAct::none) return;
  Tensor& out = ctx.output(0);
  cuda_ok(ctx,
          gemm_epilogue(out.raw(), out.dtype(), out.numel(), st.plan.out_n(), 1.0, st.post_bias ? bias : nullptr,
                        st.post_act, ctx.stream()),
          "bias/activation");
}

// plan.phases: a cuBLASLt GEMM per row phase straight into the output's
// aligned column span, then gemm_edge_columns for the columns around it.
// Each phase's bias starts at its first column, so it is copied to a 256-byte
// aligned scratch row first.
void run_phases(KernelContext& ctx, GemmState& st, const void* a, const void* bias) {
  const GemmPlan& g = st.plan;
  Tensor& out = ctx.output(0);
  const size_t es = dtype_size(out.dtype());
  const int64_t k = g.lt.k, n = g.lt.n;
  const size_t bias_row = align_up(size_t(n) * es);
  char* biases = bias ? static_cast<char*>(ctx.scratch(bias_row * size_t(g.phases))) : nullptr;
  struct Ptrs {
    const void *a, *b, *bias;
    void* d;
  };
  std::vector<Ptrs> ptrs;
  PhaseSpans spans;  // what the GEMMs write; the edge kernel does the rest
  if (g.phases > PhaseSpans::kMax) ctx.error("internal: ", g.phases, " row phases");
  spans.phases = g.phases;
  uint32_t align = 256;
  for (int j = 0; j < g.phases; ++j) {
    RowPhase r = row_phase(g, j);
    spans.col0[j] = r.col0;
    spans.cols[j] = r.cols;
    Ptrs p{static_cast<const char*>(a) + size_t(j * k) * es,
           static_cast<const char*>(ctx.input(1).raw()) + size_t(r.col0 * k) * es, nullptr,
           static_cast<char*>(out.raw()) + size_t(j * n + r.col0) * es};
    if (bias && r.rows) {
      char* row = biases + size_t(j) * bias_row;
      p.bias = row;
      cuda_ok(ctx,
              cudaMemcpyAsync(row, static_cast<const char*>(bias) + size_t(r.col0) * es, size_t(r.cols) * es,
                              cudaMemcpyDeviceToDevice, ctx.stream()),
              "copying a row phase's bias");
    }
    if (r.rows) align = std::min(align, pointer_alignment({p.a, p.b, p.d}));
    ptrs.push_back(p);
  }
  if (st.phase_lt.empty() || align < st.phase_align) choose_phases(ctx, st, align, biases);
  const LtGemm* any = nullptr;
  for (int j = 0; j < g.phases; ++j) {
    LtGemm* lt = st.phase_lt[size_t(j)].get();
    if (!lt) continue;
    any = lt;
    const Ptrs& p = ptrs[size_t(j)];
    cublasStatus_t s = lt->run(ctx.device().cublaslt(), p.a, p.b, nullptr, p.d, st.unfused ? nullptr : p.bias, g.alpha,
                               0.0, ctx.device().gemm_workspace(), ctx.stream());
    if (s != CUBLAS_STATUS_SUCCESS)
      ctx.error("cublasLtMatmul (", lt->problem().key(), "): ", cublasLtGetStatusString(s));
  }
  // The edges get what the GEMMs' epilogue applied; the rest follows in k_gemm.
  const bool fused_bias = any && any->problem().bias;
  const GemmAct act = any ? any->problem().act : GemmAct::none;
  cuda_ok(ctx,
          gemm_edge_columns(out.dtype(), a, ctx.input(1).raw(), fused_bias ? bias : nullptr, out.raw(), g.lt.m, n, k,
                            spans, float(g.alpha), act, ctx.stream()),
          "the row phases' edge columns");
}

void k_gemm(KernelContext& ctx) {
  GemmState& st = ctx.state<GemmState>();
  if (!st.planned) plan(ctx, st);
  const GemmPlan& g = st.plan;
  Tensor& out = ctx.output(0);
  if (out.numel() == 0) return;
  const Tensor* c = third_input(ctx);
  if (g.integer) return run_integer(ctx, g, c);
  if (g.lt.k == 0) return run_empty_k(ctx, g, c);
  if (g.skinny && pointer_alignment({ctx.input(0).raw(), ctx.input(1).raw()}) >= 16) return run_skinny(ctx, st, c);

  // Operands with a smaller batch are expanded to the full one in scratch.
  const void* a = ctx.input(0).raw();
  const void* b = ctx.input(1).raw();
  if (g.expand_a || g.expand_b) {
    size_t es = dtype_size(out.dtype());
    size_t a_bytes = g.expand_a ? align_up(size_t(numel(g.a_full)) * es) : 0;
    size_t b_bytes = g.expand_b ? size_t(numel(g.b_full)) * es : 0;
    char* s = static_cast<char*>(ctx.scratch(a_bytes + b_bytes));
    if (g.expand_a) {
      cuda_ok(ctx, gemm_broadcast_copy(a, g.a_shape, s, g.a_full, es, ctx.stream()), "expanding A's batch");
      a = s;
    }
    if (g.expand_b) {
      cuda_ok(ctx, gemm_broadcast_copy(b, g.b_shape, s + a_bytes, g.b_full, es, ctx.stream()), "expanding B's batch");
      b = s + a_bytes;
    }
  }
  void* d = out.raw();
  const void* cm = nullptr;    // cuBLASLt's C
  const void* bias = nullptr;
  size_t es = dtype_size(out.dtype());
  switch (g.c_mode) {
    case GemmPlan::CMode::full: cm = c->raw(); break;
    case GemmPlan::CMode::bias: bias = c->raw(); break;
    case GemmPlan::CMode::prefill:
      cuda_ok(ctx, gemm_broadcast_copy(c->raw(), c->shape(), d, {g.lt.m, g.lt.n}, dtype_size(out.dtype()), ctx.stream()),
              "broadcasting C");
      cm = d;
      break;
    case GemmPlan::CMode::none:
      if (ctx.node().op == "FusedMatMul" && c) bias = c->raw();
      break;
  }
  if (const Tensor* r = residual_input(ctx)) {
    if (r->numel() != out.numel()) ctx.error("residual ", to_string(r->shape()), " is not the output's shape ", to_string(out.shape()));
    cm = r->raw();
  }
  if (g.phases) {
    run_phases(ctx, st, a, bias);
    return post_epilogue(ctx, st, bias);
  }
  // Padded N (c_mode is none or bias there): the padded constants, into scratch.
  const void* lt_bias = bias;
  if (g.real_n) {
    b = st.w_pad;
    if (bias) lt_bias = st.bias_pad;
    d = ctx.scratch(size_t(g.lt.m * g.lt.n) * es);
  }
  // Heuristics depend on pointer alignment: choose again if it got weaker.
  uint32_t align = pointer_alignment({a, b, cm, d, lt_bias});
  if (!st.lt || align < st.lt->chosen_align()) choose(ctx, st, align, lt_bias);
  cublasStatus_t s = st.lt->run(ctx.device().cublaslt(), a, b, cm, d, st.post_bias ? nullptr : lt_bias, g.alpha,
                                g.beta, ctx.device().gemm_workspace(), ctx.stream());
  if (s != CUBLAS_STATUS_SUCCESS) ctx.error("cublasLtMatmul (", st.lt->problem().key(), "): ", cublasLtGetStatusString(s));
  if (g.real_n)
    cuda_ok(ctx, gemm_unpad_rows(d, g.lt.n, out.raw(), g.lt.m, g.real_n, es, ctx.stream()), "copying the N-padded result out");
  post_epilogue(ctx, st, bias);
}

TESSERA_CUDA_KERNEL("MatMul", k_gemm);
TESSERA_CUDA_KERNEL("Gemm", k_gemm);
TESSERA_CUDA_KERNEL("FusedMatMul", k_gemm);

}  // namespace
}  // namespace tessera::cuda
