// Shapes are plain vectors of extents. In the IR a dimension may be unknown
// at build time (a symbolic ONNX dim_param); it is then kUnknownDim.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace tessera {

using Shape = std::vector<int64_t>;
constexpr int64_t kUnknownDim = -1;

int64_t numel(const Shape& s);          // product of extents (1 for a scalar)
bool is_static(const Shape& s);         // no unknown dims
std::string to_string(const Shape& s);  // "[2,3,?]"
Shape contiguous_strides(const Shape& s);
// Strides of `in` read as if broadcast to `out` (right-aligned; 0 along broadcast dims).
std::vector<int64_t> broadcast_strides(const Shape& in, const Shape& out);
// Normalise an axis in [-rank, rank) to [0, rank); throws naming `what` otherwise.
int64_t normalize_axis(int64_t axis, int64_t rank, const std::string& what);
// NumPy broadcasting of two shapes; throws Shape error naming `what`.
Shape broadcast_shapes(const Shape& a, const Shape& b, const std::string& what);

}  // namespace tessera
