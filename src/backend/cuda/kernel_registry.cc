#include "backend/cuda/kernel_registry.h"

#include <map>

#include "backend/cuda/device_context.h"
#include "backend/cpu/run_context.h"

namespace tessera::cuda {

namespace {
std::map<std::string, KernelInfo>& table() {
  static std::map<std::string, KernelInfo> t;
  return t;
}
}  // namespace

void KernelRegistry::add(const std::string& op, KernelInfo info) {
  if (!table().emplace(op, info).second) fail(ErrorKind::Internal, "CUDA kernel for '", op, "' is registered twice");
}

const KernelInfo* KernelRegistry::find(const std::string& op) {
  auto it = table().find(op);
  return it == table().end() ? nullptr : &it->second;
}

std::vector<std::string> KernelRegistry::names() {
  std::vector<std::string> out;
  for (auto& [k, v] : table()) out.push_back(k);
  return out;
}

const Tensor& KernelContext::input(size_t i) const {
  if (!has_input(i)) error("input ", i, " is required");
  return *inputs_[i].device;
}

const Tensor& KernelContext::require_host(size_t i, const char* what) const {
  const Tensor* t = host_value(i);
  if (!t) error(what, " (input ", i, ") must be known when the plan is made (a constant or computed from shapes)");
  return *t;
}

Tensor& KernelContext::output(size_t i) const {
  if (!has_output(i)) error("output ", i, " is not planned");
  return *outputs_[i];
}

void* KernelContext::scratch(size_t bytes) const {
  // Bump allocation over the device's one buffer: if it grows, the regions handed out
  // earlier stay valid in the retired buffer, which the device context keeps alive.
  const size_t off = (scratch_used_ + 255) / 256 * 256;
  char* base = static_cast<char*>(dev_.scratch(off + bytes));
  scratch_used_ = off + bytes;
  return base + off;
}

dist::Communicator& KernelContext::comm(const std::string& group) const {
  if (!comms_) error("needs a communicator: run it under `tessera launch` (or give the engine one)");
  return static_cast<const cpu::Communicators*>(comms_)->get(group, node_);
}

}  // namespace tessera::cuda
