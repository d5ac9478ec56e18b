#include "backend/cuda/device_util.cuh"

#include <array>
#include <atomic>
#include "backend/cuda/env_switch.h"
#include "backend/cuda/pdl.cuh"

namespace tessera::cuda {

IndexMap broadcast_map(const Shape& in, const Shape& out) {
  if (out.size() > size_t(kMaxDims)) fail(ErrorKind::Unsupported, "[cuda] tensors of rank ", out.size(), " (more than ", kMaxDims, ")");
  IndexMap m;
  m.rank = int(out.size());
  int64_t stride = 1;
  size_t lead = out.size() - in.size();
  for (int d = int(out.size()) - 1; d >= 0; --d) {
    m.sizes[d] = out[size_t(d)];
    int64_t in_dim = size_t(d) >= lead ? in[size_t(d) - lead] : 1;
    m.strides[d] = in_dim == 1 ? 0 : stride;
    stride *= in_dim;
  }
  return m;
}

IndexMap contiguous_map(const Shape& shape) { return broadcast_map(shape, shape); }

IndexMap block_map(const Shape& in, int64_t width, const Shape& out) {
  Shape block = in;
  block.back() = width;
  IndexMap m = broadcast_map(block, out);
  for (int d = 0; d + 1 < m.rank; ++d) m.strides[d] = m.strides[d] / width * in.back();  // multiples of width
  return m;
}

bool pdl_allowed() {
  static const bool env_on = !env_is("TESSERA_PDL", "0");
  if (!env_on) return false;
  // Per device: 0 unknown, 1 no, 2 yes (launches may come from several threads).
  static std::array<std::atomic<int>, 64> known{};
  int dev = 0;
  if (cudaGetDevice(&dev) != cudaSuccess || dev < 0 || dev >= int(known.size())) return false;
  int k = known[size_t(dev)].load(std::memory_order_relaxed);
  if (k == 0) {
    int major = 0;
    k = cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) == cudaSuccess && major >= 9 ? 2 : 1;
    known[size_t(dev)].store(k, std::memory_order_relaxed);
  }
  return k == 2;
}

void check_launch(const KernelContext& ctx) {
  cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess) ctx.error("kernel launch failed: ", cudaGetErrorString(e));
}

}  // namespace tessera::cuda
