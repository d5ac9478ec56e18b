#include "backend/cuda/device_util.cuh"

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

void check_launch(const KernelContext& ctx) {
  cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess) ctx.error("kernel launch failed: ", cudaGetErrorString(e));
}

}  // namespace tessera::cuda
