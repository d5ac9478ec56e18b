// See gemm_tuning.h.
#include "backend/cuda/gemm_tuning.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "backend/cuda/cuda_check.h"
#include "backend/cuda/device_context.h"
#include "backend/cuda/gemm_lt.h"
#include "core/npy.h"

namespace tessera::cuda {
namespace {

// 2: split-K variants and, for few output tiles, 4x the candidates are timed too, so version-1
// entries were chosen from fewer. 3: timed as graph replays over operands that do not stay in L2,
// so earlier entries were chosen by host launch overhead and L2-resident weights.
constexpr int kCacheVersion = 3;

// Device buffers for one timing session, freed on every path out.
struct Buffers {
  std::vector<void*> ptrs;
  ~Buffers() {
    for (void* p : ptrs) cudaFree(p);
  }
  void* get(size_t bytes) {
    void* p = nullptr;
    if (cudaMalloc(&p, bytes < 256 ? 256 : bytes) != cudaSuccess) {
      cudaGetLastError();
      out_of_memory(bytes, "GEMM tuning buffers", 0);
    }
    ptrs.push_back(p);
    // Small finite values in every dtype (0x3c bytes), so timing sees real data, not zeros.
    TSR_CUDA(cudaMemset(p, 0x3c, bytes));
    return p;
  }
};

struct Events {
  cudaEvent_t start = nullptr, stop = nullptr;
  cudaStream_t stream = nullptr;
  Events() {
    TSR_CUDA(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
    TSR_CUDA(cudaEventCreate(&start));
    TSR_CUDA(cudaEventCreate(&stop));
  }
  ~Events() {
    cudaEventDestroy(start);
    cudaEventDestroy(stop);
    cudaStreamDestroy(stream);
  }
};

// "NVIDIA H200 sm_90 cublasLt 130100": the part of a cache key that says
// where the timings hold.
std::string device_key(DeviceContext& dev) {
  return std::string(dev.props().name) + " " + dev.arch() + " cublasLt " + std::to_string(cublasLtGetVersion());
}

nlohmann::json load_cache(const std::string& path, bool verbose) {
  nlohmann::json empty = {{"version", kCacheVersion}, {"entries", nlohmann::json::object()}};
  if (path.empty() || !std::filesystem::exists(path)) return empty;
  try {
    std::ifstream f(path);
    nlohmann::json j = nlohmann::json::parse(f);
    if (j.value("version", 0) == kCacheVersion && j.contains("entries") && j["entries"].is_object()) return j;
  } catch (const std::exception& e) {
    if (verbose) std::cerr << "tessera: GEMM timing cache " << path << " unreadable (" << e.what() << "): starting anew\n";
    return empty;
  }
  if (verbose) std::cerr << "tessera: GEMM timing cache " << path << " has another format: starting anew\n";
  return empty;
}

void save_cache(const std::string& path, const nlohmann::json& j) {
  std::filesystem::path p(path);
  if (p.has_parent_path()) std::filesystem::create_directories(p.parent_path());
  write_file_atomic(path, j.dump(1) + "\n");
}

bool static_shape(const Value* v) {
  if (!v || !v->rank_known) return false;
  return std::all_of(v->shape.begin(), v->shape.end(), [](int64_t d) { return d >= 0; });
}

// Split-K versions of a heuristic's algorithm (2, 4 or 8 slices of K, each
// reduction scheme it supports) for problems with too few output tiles to
// fill the GPU: a decode step's or a small batch's GEMM reads its weight with
// a few dozen CTAs otherwise. Empty when the algorithm is split already or
// cannot be.
std::vector<cublasLtMatmulAlgo_t> split_k_variants(const cublasLtMatmulAlgo_t& base) {
  std::vector<cublasLtMatmulAlgo_t> out;
  int32_t support = 0, splits = 1;
  uint32_t schemes = 0;
  size_t got = 0;
  if (cublasLtMatmulAlgoCapGetAttribute(&base, CUBLASLT_ALGO_CAP_SPLITK_SUPPORT, &support, sizeof support, &got) !=
          CUBLAS_STATUS_SUCCESS || !support)
    return out;
  cublasLtMatmulAlgoCapGetAttribute(&base, CUBLASLT_ALGO_CAP_REDUCTION_SCHEME_MASK, &schemes, sizeof schemes, &got);
  cublasLtMatmulAlgoConfigGetAttribute(&base, CUBLASLT_ALGO_CONFIG_SPLITK_NUM, &splits, sizeof splits, &got);
  if (splits > 1) return out;
  for (int32_t n : {2, 4, 8})
    for (uint32_t scheme : {CUBLASLT_REDUCTION_SCHEME_INPLACE, CUBLASLT_REDUCTION_SCHEME_COMPUTE_TYPE,
                            CUBLASLT_REDUCTION_SCHEME_OUTPUT_TYPE}) {
      if (!(schemes & scheme)) continue;
      cublasLtMatmulAlgo_t a = base;
      if (cublasLtMatmulAlgoConfigSetAttribute(&a, CUBLASLT_ALGO_CONFIG_SPLITK_NUM, &n, sizeof n) != CUBLAS_STATUS_SUCCESS ||
          cublasLtMatmulAlgoConfigSetAttribute(&a, CUBLASLT_ALGO_CONFIG_REDUCTION_SCHEME, &scheme, sizeof scheme) !=
              CUBLAS_STATUS_SUCCESS)
        continue;
      out.push_back(a);
    }
  return out;
}

// Fewer output tiles of 128 x 128 than two waves of the GPU's SMs.
bool few_tiles(DeviceContext& dev, const GemmProblem& p) {
  int64_t tiles = (p.m + 127) / 128 * ((p.n + 127) / 128) * p.batch;
  return tiles < 2 * int64_t(dev.props().multiProcessorCount);
}

// One set of operands per call in a timed graph: A, B and D (the bias is shared).
struct OperandSet {
  void *a = nullptr, *b = nullptr, *d = nullptr;
};

// How many operand sets the timed calls rotate through: enough that together
// they exceed twice the L2 cache, so each call reads its weight from memory as
// it does inside a model whose weights do not fit in L2 (a decode GEMM timed on
// one L2-resident weight favours algorithms that the real run does not), at
// most 64 sets and 2 GiB.
int operand_sets(DeviceContext& dev, size_t set_bytes) {
  const double l2 = double(std::max(dev.props().l2CacheSize, 1));
  double sets = std::ceil(2.0 * l2 / double(std::max<size_t>(set_bytes, 1)));
  sets = std::min({sets, 64.0, std::floor(double(size_t(2) << 30) / double(std::max<size_t>(set_bytes, 1)))});
  return int(std::max(sets, 1.0));
}

// Calls per timed replay: enough work (~2 GFLOP) that the replay's own start
// does not decide, and at least one call per operand set.
int calls_per_replay(const GemmProblem& p, int sets) {
  double flop = 2.0 * double(p.m) * double(p.n) * double(p.k) * double(p.batch);
  int iters = int(std::clamp(2e9 / std::max(flop, 1.0), 1.0, 64.0));
  return std::max(iters, sets);
}

// `calls` captured into one CUDA graph (the way the engine runs a GEMM: graph
// launches have no per-call host overhead, which for a small GEMM is larger
// than the kernel). Null when capture fails.
cudaGraphExec_t capture(cudaStream_t s, int calls, const std::function<bool(int)>& call) {
  cudaGraph_t graph = nullptr;
  if (cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal) != cudaSuccess) return nullptr;
  bool ok = true;
  for (int i = 0; i < calls && ok; ++i) ok = call(i);
  cudaError_t end = cudaStreamEndCapture(s, &graph);
  cudaGraphExec_t exec = nullptr;
  if (ok && end == cudaSuccess && graph && cudaGraphInstantiate(&exec, graph, 0) != cudaSuccess) exec = nullptr;
  if (graph) cudaGraphDestroy(graph);
  cudaGetLastError();
  return exec;
}

}  // namespace

TunedAlgo tune_gemm(DeviceContext& dev, const GemmProblem& p, int candidates) {
  TunedAlgo out;
  TSR_CUDA(cudaSetDevice(dev.device()));
  cublasLtHandle_t h = dev.cublaslt();
  LtGemm lt;
  lt.init(p);
  size_t es = dtype_size(p.dtype);
  // Strided rows (a row phase) span lda / ldd elements each.
  size_t a_bytes = size_t(p.batch * p.m * (p.lda ? p.lda : p.k)) * es, b_bytes = size_t(p.batch * p.k * p.n) * es;
  size_t d_bytes = size_t(p.batch * p.m * (p.ldd ? p.ldd : p.n)) * es;
  Buffers buf;
  std::vector<OperandSet> sets(size_t(operand_sets(dev, a_bytes + b_bytes + d_bytes)));
  for (OperandSet& o : sets) o = {buf.get(a_bytes), buf.get(b_bytes), buf.get(d_bytes)};
  void* bias = p.bias ? buf.get(size_t(p.n) * es) : nullptr;
  // Few output tiles: the heuristic's ranking is least sure there (the GEMM is bound by how fast
  // a few dozen CTAs stream the weight), so 4x as many candidates, and their split-K versions.
  const bool few = few_tiles(dev, p);
  std::vector<cublasLtMatmulHeuristicResult_t> cands =
      lt.heuristics(h, few ? 4 * candidates : candidates, p.tuned_align(), bias);
  if (cands.empty()) return out;
  if (few) {
    const size_t n = cands.size();
    for (size_t i = 0; i < n; ++i)
      for (const cublasLtMatmulAlgo_t& a : split_k_variants(cands[i].algo)) {
        cublasLtMatmulHeuristicResult_t r{};
        r.algo = a;
        if (lt.check(h, a, &r.workspaceSize)) cands.push_back(r);
      }
  }
  Events ev;
  constexpr int kWarmup = 2, kReps = 5;
  const int calls = calls_per_replay(p, int(sets.size()));
  double best = 0;
  for (auto& c : cands) {
    auto call = [&](int i) {
      const OperandSet& o = sets[size_t(i) % sets.size()];
      return lt.run(h, o.a, o.b, o.d, o.d, bias, 1.0, p.use_c ? 1.0 : 0.0, dev.gemm_workspace(), ev.stream, &c.algo,
                    c.workspaceSize) == CUBLAS_STATUS_SUCCESS;
    };
    // One plain call first: a candidate that fails does so outside a capture.
    if (!call(0) || cudaStreamSynchronize(ev.stream) != cudaSuccess) {
      cudaGetLastError();
      continue;
    }
    cudaGraphExec_t exec = capture(ev.stream, calls, call);
    if (!exec) continue;
    std::vector<double> times;
    bool ok = true;
    for (int r = 0; r < kWarmup + kReps && ok; ++r) {
      ok = cudaEventRecord(ev.start, ev.stream) == cudaSuccess && cudaGraphLaunch(exec, ev.stream) == cudaSuccess &&
           cudaEventRecord(ev.stop, ev.stream) == cudaSuccess && cudaEventSynchronize(ev.stop) == cudaSuccess;
      float ms = 0;
      if (ok && r >= kWarmup && cudaEventElapsedTime(&ms, ev.start, ev.stop) == cudaSuccess)
        times.push_back(double(ms) * 1000.0 / calls);
    }
    cudaGraphExecDestroy(exec);
    if (!ok || times.size() != size_t(kReps)) {
      cudaGetLastError();
      continue;
    }
    std::nth_element(times.begin(), times.begin() + kReps / 2, times.end());
    double med = times[kReps / 2];
    ++out.candidates;
    if (out.algo.empty() || med < best) {
      best = med;
      AlgoBlob blob = to_blob(c.algo);
      out.algo.assign(blob.begin(), blob.end());
    }
  }
  out.us = best;
  return out;
}

void tune_gemms(Graph& g, DeviceContext& dev, const std::string& timing_cache_path, bool verbose) {
  nlohmann::json cache = load_cache(timing_cache_path, verbose);
  nlohmann::json& entries = cache["entries"];
  std::string where = device_key(dev);
  bool changed = false;
  for (auto& up : g.nodes()) {
    Node& n = *up;
    if (n.op != "MatMul" && n.op != "Gemm" && n.op != "FusedMatMul") continue;
    const Value* a = n.input(0);
    const Value* b = n.input(1);
    const Value* c = n.input(2);
    if (!static_shape(a) || !static_shape(b) || (c && !static_shape(c)) || !is_float(a->dtype)) continue;
    GemmPlan plan;
    try {
      plan = plan_gemm(n, a->dtype, a->shape, b->shape, c ? &c->shape : nullptr);
    } catch (const Error&) {
      continue;  // shapes the kernel will reject with its own message
    }
    if (plan.skinny) continue;  // runs gemm_skinny's kernel, not cuBLASLt
    // A padded N is tuned padded, as it runs; a row-phase split by its first phase, whose
    // choice the other phases (a row and a few columns fewer at most) take when it checks.
    const GemmProblem p = plan.phases ? phase_problem(plan, 0) : plan.lt;
    if (p.m == 0 || p.n == 0 || p.k == 0 || p.batch == 0) continue;
    std::string key = where + " | " + p.key();
    std::vector<int64_t> algo;
    if (entries.contains(key)) {
      algo = entries[key].value("algo", std::vector<int64_t>{});
    } else {
      TunedAlgo t = tune_gemm(dev, p);
      algo = t.algo;
      entries[key] = {{"algo", t.algo}, {"us", t.us}, {"candidates", t.candidates}};
      changed = true;
      if (verbose)
        std::cerr << "tessera: tuned " << n.name << " (" << p.key() << "): " << t.candidates << " candidates, best "
                  << t.us << " us\n";
    }
    if (algo.size() == 8) n.attrs.set(kAlgoAttr, algo);
    else n.attrs.erase(kAlgoAttr);
  }
  if (changed && !timing_cache_path.empty()) save_cache(timing_cache_path, cache);
}

}  // namespace tessera::cuda
