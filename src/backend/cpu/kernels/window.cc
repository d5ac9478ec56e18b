#include "backend/cpu/kernels/window.h"

#include "backend/cpu/kernels/movement.h"

namespace tessera::cpu {

std::vector<int64_t> gather_table(const Shape& image, const Shape& grid, const rules::Window& w) {
  size_t k = grid.size();
  int64_t cells = numel(grid);
  std::vector<int64_t> table(size_t(numel(w.kernel) * cells));
  if (table.empty()) return table;
  Shape st = contiguous_strides(image);
  std::vector<int64_t> tap(k, 0), cell(k, 0);
  size_t at = 0;
  do {
    do {
      int64_t off = 0;
      for (size_t i = 0; i < k && off >= 0; ++i) {
        int64_t x = cell[i] * w.stride[i] - w.pad_begin[i] + tap[i] * w.dilation[i];
        off = (x < 0 || x >= image[i]) ? -1 : off + x * st[i];
      }
      table[at++] = off;
    } while (next_index(cell, grid));
  } while (next_index(tap, w.kernel));
  return table;
}

}  // namespace tessera::cpu
