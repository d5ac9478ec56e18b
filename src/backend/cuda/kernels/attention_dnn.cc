// See attention_dnn.h. One cudnn-frontend graph per shape: Q, K, V (strided
// views of the caller's tensors, GQA by the head counts) -> SDPA (scale,
// top-left causal or none, no statistics: inference) -> O, with fp32
// intermediates and compute. The heuristics' first engine that supports the
// shape is built (or, with TESSERA_CUDNN_AUTOTUNE=1, every one, and the fastest
// on the first run's operands is kept); its workspace comes from the kernel's
// scratch.
#include "backend/cuda/kernels/attention_dnn.h"

#include <cudnn_frontend.h>

#include "backend/cuda/env_switch.h"
#include "core/error.h"

#include <cstdlib>
#include <cstring>
#include <unordered_map>
#include <vector>

namespace tessera::cuda::dnn {
namespace fe = cudnn_frontend;
using TensorPtr = std::shared_ptr<fe::graph::Tensor_attributes>;

struct Sdpa::Impl {
  fe::graph::Graph graph;
  TensorPtr q, k, v, o;
  int64_t workspace = 0;
};

namespace {

std::vector<int64_t> strides4(const int64_t (&s)[3]) { return {s[0], s[1], s[2], 1}; }

// "" when `e` is good, else "STEP: message".
std::string failed(fe::error_t e, const char* step) {
  if (e.is_good()) return "";
  return std::string(step) + ": " + e.get_message();
}

}  // namespace

Sdpa::Sdpa(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Sdpa::~Sdpa() = default;

size_t Sdpa::workspace_bytes() const { return size_t(impl_->workspace); }

std::unique_ptr<Sdpa> Sdpa::make(cudnnContext* handle, const SdpaShape& s, std::string& why) {
  auto impl = std::make_unique<Impl>();
  fe::graph::Graph& g = impl->graph;
  g.set_io_data_type(s.bf16 ? fe::DataType_t::BFLOAT16 : fe::DataType_t::HALF)
      .set_intermediate_data_type(fe::DataType_t::FLOAT)
      .set_compute_data_type(fe::DataType_t::FLOAT);
  auto input = [&](const char* name, int heads, int len, const int64_t (&st)[3]) {
    return g.tensor(fe::graph::Tensor_attributes().set_name(name).set_dim({s.b, heads, len, s.d}).set_stride(strides4(st)));
  };
  impl->q = input("Q", s.hq, s.tq, s.q);
  impl->k = input("K", s.hkv, s.tk, s.k);
  impl->v = input("V", s.hkv, s.tk, s.v);
  auto opts = fe::graph::SDPA_attributes().set_name("attention").set_generate_stats(false).set_attn_scale(s.scale);
  if (s.causal) opts.set_causal_mask(true);
  auto outs = g.sdpa(impl->q, impl->k, impl->v, opts);
  impl->o = outs[0];
  impl->o->set_output(true).set_dim({s.b, s.hq, s.tq, s.d}).set_stride(strides4(s.o));
  why = failed(g.validate(), "validate");
  if (why.empty()) why = failed(g.build_operation_graph(handle), "build_operation_graph");
  const bool all = cudnn_autotune();
  if (why.empty()) why = failed(g.create_execution_plans({fe::HeurMode_t::A}), "create_execution_plans");
  if (why.empty()) why = failed(g.check_support(handle), "check_support");
  if (why.empty())
    why = failed(g.build_plans(handle, all ? fe::BuildPlanPolicy_t::ALL : fe::BuildPlanPolicy_t::HEURISTICS_CHOICE),
                 "build_plans");
  if (why.empty()) why = failed(g.get_workspace_size(impl->workspace), "get_workspace_size");
  if (!why.empty()) return nullptr;
  return std::unique_ptr<Sdpa>(new Sdpa(std::move(impl)));
}

int64_t Sdpa::plan_count() const { return impl_->graph.get_execution_plan_count(); }

size_t Sdpa::autotune_workspace_bytes() const { return size_t(impl_->graph.get_autotune_workspace_size()); }

std::string Sdpa::autotune(cudnnContext* handle, cudaStream_t stream, const void* q, const void* k, const void* v,
                           void* o, void* workspace) {
  if (cudnnSetStream(handle, stream) != CUDNN_STATUS_SUCCESS) return "cudnnSetStream failed";
  std::unordered_map<TensorPtr, void*> pack = {{impl_->q, const_cast<void*>(q)},
                                               {impl_->k, const_cast<void*>(k)},
                                               {impl_->v, const_cast<void*>(v)},
                                               {impl_->o, o}};
  std::string why = failed(impl_->graph.autotune(handle, pack, workspace), "autotune");
  if (why.empty()) why = failed(impl_->graph.get_workspace_size(impl_->workspace), "get_workspace_size");
  return why;
}

std::string Sdpa::run(cudnnContext* handle, cudaStream_t stream, const void* q, const void* k, const void* v, void* o,
                      void* workspace) const {
  if (cudnnSetStream(handle, stream) != CUDNN_STATUS_SUCCESS) return "cudnnSetStream failed";
  std::unordered_map<TensorPtr, void*> pack = {{impl_->q, const_cast<void*>(q)},
                                               {impl_->k, const_cast<void*>(k)},
                                               {impl_->v, const_cast<void*>(v)},
                                               {impl_->o, o}};
  return failed(impl_->graph.execute(handle, pack, workspace), "execute");
}

bool cudnn_attention_from(const char* env) {
  if (!env || !*env || std::strcmp(env, "cudnn") == 0) return true;
  if (std::strcmp(env, "flash") == 0) return false;
  fail(ErrorKind::InvalidArgument, "TESSERA_ATTENTION=", env, " is not one of: cudnn (the default), flash");
}

bool cudnn_autotune() {
  static const bool on = env_is("TESSERA_CUDNN_AUTOTUNE", "1");
  return on;
}

bool sdpa_enabled() {
  static const bool on = cudnn_attention_from(std::getenv("TESSERA_ATTENTION"));
  return on;
}

}  // namespace tessera::cuda::dnn
