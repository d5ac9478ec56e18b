// See gemm_tuning.h.
#include "backend/cuda/gemm_tuning.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
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
// entries were chosen from fewer.
constexpr int kCacheVersion = 2;

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

}  // namespace

TunedAlgo tune_gemm(DeviceContext& dev, const GemmProblem& p, int candidates) {
  TunedAlgo out;
  TSR_CUDA(cudaSetDevice(dev.device()));
  cublasLtHandle_t h = dev.cublaslt();
  LtGemm lt;
  lt.init(p);
  size_t es = dtype_size(p.dtype);
  Buffers buf;
  void* a = buf.get(size_t(p.batch * p.m * p.k) * es);
  void* b = buf.get(size_t(p.batch * p.k * p.n) * es);
  void* d = buf.get(size_t(p.batch * p.m * p.n) * es);
  void* bias = p.bias ? buf.get(size_t(p.n) * es) : nullptr;
  // Few output tiles: the heuristic's ranking is least sure there (the GEMM is bound by how fast
  // a few dozen CTAs stream the weight), so 4x as many candidates, and their split-K versions.
  const bool few = few_tiles(dev, p);
  std::vector<cublasLtMatmulHeuristicResult_t> cands = lt.heuristics(h, few ? 4 * candidates : candidates, 256, bias);
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
  constexpr int kWarmup = 3, kReps = 5;
  // Calls per timed rep: enough work (~2 GFLOP) that launch overhead does not decide.
  double flop = 2.0 * double(p.m) * double(p.n) * double(p.k) * double(p.batch);
  int iters = int(std::clamp(2e9 / std::max(flop, 1.0), 1.0, 50.0));
  double best = 0;
  for (auto& c : cands) {
    auto call = [&] {
      return lt.run(h, a, b, d, d, bias, 1.0, p.use_c ? 1.0 : 0.0, dev.gemm_workspace(), ev.stream, &c.algo, c.workspaceSize);
    };
    bool ok = true;
    for (int i = 0; i < kWarmup && ok; ++i) ok = call() == CUBLAS_STATUS_SUCCESS;
    if (!ok || cudaStreamSynchronize(ev.stream) != cudaSuccess) {
      cudaGetLastError();
      continue;
    }
    std::vector<double> times;
    for (int r = 0; r < kReps && ok; ++r) {
      TSR_CUDA(cudaEventRecord(ev.start, ev.stream));
      for (int i = 0; i < iters && ok; ++i) ok = call() == CUBLAS_STATUS_SUCCESS;
      TSR_CUDA(cudaEventRecord(ev.stop, ev.stream));
      TSR_CUDA(cudaEventSynchronize(ev.stop));
      float ms = 0;
      TSR_CUDA(cudaEventElapsedTime(&ms, ev.start, ev.stop));
      times.push_back(double(ms) * 1000.0 / iters);
    }
    if (!ok) continue;
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
    const GemmProblem& p = plan.lt;  // a padded N is tuned padded, as it runs
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
