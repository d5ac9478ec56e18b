// CPU kernel for TensorScatter (ops/kv_cache.cc): row b of the update is
// copied to positions [w[b], w[b] + T) of the cache's axis — in the cache's
// own buffer when the node says inplace=1, else into a copy (ONNX's meaning).
#include <cstring>

#include "backend/cpu/kernel_registry.h"

namespace tessera::cpu {
namespace {

void k_tensor_scatter(KernelContext& c) {
  const Tensor &cache = c.input(0), &upd = c.input(1);
  bool inplace = c.attrs().get_int("inplace", 0) != 0;
  Tensor out = inplace ? cache : cache.clone();
  int64_t rank = cache.rank(), axis = normalize_axis(c.attrs().get_int("axis", -2), rank, c.node().name);
  int64_t B = cache.dim(0), S = cache.dim(axis), T = upd.dim(axis);
  // [B, outer, axis, inner]: inner elements per position are contiguous.
  int64_t outer = 1, inner = 1;
  for (int64_t d = 1; d < axis; ++d) outer *= cache.dim(d);
  for (int64_t d = axis + 1; d < rank; ++d) inner *= cache.dim(d);
  size_t es = dtype_size(cache.dtype()), row = size_t(inner * T) * es;
  const char* src = static_cast<const char*>(upd.raw());
  char* dst = static_cast<char*>(out.raw());
  for (int64_t b = 0; b < B; ++b) {
    int64_t w = c.has_input(2) ? c.input(2).item_i64(b) : 0;
    if (w < 0 || w + T > S) c.error("row ", b, " writes positions [", w, ", ", w + T, ") past the cache length ", S);
    for (int64_t o = 0; o < outer; ++o)
      std::memcpy(dst + size_t(((b * outer + o) * S + w) * inner) * es, src + size_t((b * outer + o) * T * inner) * es, row);
  }
  c.set_output(0, out);
}
TESSERA_CPU_KERNEL("TensorScatter", k_tensor_scatter);

}  // namespace
}  // namespace tessera::cpu
