#include <unistd.h>

#include <cstdlib>
#include <random>

#include "dist/process_group.h"
#include "engine/target.h"
#include "tools/cli.h"
#ifdef TESSERA_WITH_CUDA
#include <cuda_runtime.h>
#endif

namespace tessera::cli {

Shape parse_shape(const std::string& text, const std::string& what) {
  Shape s;
  size_t pos = 0;
  if (text.empty() || text == "scalar") return s;
  while (pos <= text.size()) {
    size_t x = text.find('x', pos);
    std::string part = text.substr(pos, x == std::string::npos ? std::string::npos : x - pos);
    char* end = nullptr;
    long long v = std::strtoll(part.c_str(), &end, 10);
    if (part.empty() || *end || v < 0) fail(ErrorKind::InvalidArgument, what, ": '", text, "' is not a shape like 2x3x224");
    s.push_back(v);
    if (x == std::string::npos) break;
    pos = x + 1;
  }
  return s;
}

DType parse_float_dtype(const std::string& text, const std::string& flag) {
  for (DType t : {DType::f32, DType::f16, DType::bf16})
    if (text == dtype_name(t)) return t;
  if (text == "f32" || text == "fp32") return DType::f32;
  if (text == "f16" || text == "fp16") return DType::f16;
  if (text == "bf16") return DType::bf16;
  fail(ErrorKind::InvalidArgument, flag, " '", text, "': expected f32, f16 or bf16");
}

std::map<std::string, Shape> parse_shape_flags(const std::vector<std::string>& flags) {
  std::map<std::string, Shape> out;
  for (const std::string& f : flags) {
    size_t eq = f.find('=');
    if (eq == std::string::npos || eq == 0) fail(ErrorKind::InvalidArgument, "--shape '", f, "': expected name=2x3x4");
    out[f.substr(0, eq)] = parse_shape(f.substr(eq + 1), "--shape " + f.substr(0, eq));
  }
  return out;
}

std::map<std::string, Tensor> random_inputs(const Graph& g, const std::map<std::string, Shape>& shapes, uint64_t seed) {
  std::mt19937_64 gen(seed);
  std::normal_distribution<float> normal;
  std::map<std::string, Tensor> out;
  for (Value* in : g.inputs) {
    Shape s = in->shape;
    if (auto it = shapes.find(in->name); it != shapes.end()) s = it->second;
    if (!in->rank_known || !is_static(s))
      fail(ErrorKind::InvalidArgument, "input '", in->name, "' has shape ", type_string_of(*in), ": give it one with --shape ", in->name, "=...");
    Tensor f = Tensor::empty(DType::f32, s);
    for (int64_t i = 0; i < f.numel(); ++i)
      f.data<float>()[i] = is_float(in->dtype) ? normal(gen) : float(gen() % 100);
    out[in->name] = in->dtype == DType::boolean ? f.cast(DType::i64).cast(DType::boolean) : f.cast(in->dtype);
  }
  return out;
}

namespace {
#ifdef TESSERA_WITH_CUDA
// "host/PCI bus id" of a GPU: two ranks with the same one share the GPU.
std::string gpu_identity(int device) {
  char bus[64] = {}, host[256] = {};
  if (cudaDeviceGetPCIBusId(bus, sizeof bus, device) != cudaSuccess) {
    cudaGetLastError();
    return "";
  }
  gethostname(host, sizeof host - 1);
  return std::string(host) + "/" + bus;
}

// "" when every rank has a GPU of its own, else which ranks share one. NCCL
// refuses such a job ("Duplicate GPU detected"); every rank reads the same
// table from the store, so all of them take the same decision.
std::string shared_gpus(dist::ProcessGroup& pg, int device) {
  dist::Store& store = *pg.rendezvous.store;
  int rank = pg.info.rank, world = pg.info.world_size;
  store.set("comm/gpu/" + std::to_string(rank), gpu_identity(device));
  std::vector<std::string> ids;
  for (int r = 0; r < world; ++r) {
    std::string key = "comm/gpu/" + std::to_string(r);
    store.wait({key}, pg.timeout);
    ids.push_back(store.get(key));
  }
  for (int a = 0; a < world; ++a)
    for (int b = a + 1; b < world; ++b)
      if (!ids[size_t(a)].empty() && ids[size_t(a)] == ids[size_t(b)])
        return str("ranks ", a, " and ", b, " share GPU ", ids[size_t(a)]);
  return "";
}
#endif
}  // namespace

std::shared_ptr<dist::Communicator> engine_communicator(dist::ProcessGroup& pg, const std::string& target, std::string comm) {
  if (comm.empty()) comm = std::getenv("TESSERA_COMM") ? std::getenv("TESSERA_COMM") : "auto";
  if (comm != "auto" && comm != "nccl" && comm != "gloo")
    fail(ErrorKind::InvalidArgument, "--comm '", comm, "' (or $TESSERA_COMM): expected auto, nccl or gloo");
  if (target != "cuda") {
    if (comm == "nccl") fail(ErrorKind::InvalidArgument, "--comm nccl needs a cuda engine: a cpu engine's collectives run over gloo");
    return pg.world;
  }
  if (comm == "gloo") return pg.world;  // the kernels stage through the host and warn once
#ifdef TESSERA_WITH_CUDA
  int device = local_device();
  std::string why = shared_gpus(pg, device);
  if (why.empty()) return dist::make_nccl_world(pg, device);
  if (comm == "nccl")
    fail(ErrorKind::InvalidArgument, "--comm nccl: NCCL needs one GPU per rank, but ", why, "; use --comm gloo (host-staged, slower) ",
         "or give each rank its own GPU");
  return pg.world;
#else
  if (comm == "nccl") fail(ErrorKind::Unsupported, "--comm nccl: this tessera was built without CUDA (NCCL)");
  return pg.world;
#endif
}

}  // namespace tessera::cli
