// Rope's kernels (rope.cu) as a launch other CUDA kernels can call: the
// Attention kernel's scratch pre-pass rotates Q and K with them when its
// kernel cannot rotate them as it loads them (attention.cu).
#pragma once
#include <cstdint>

#include "backend/cuda/kernel_registry.h"

namespace tessera::cuda::rope {

constexpr int kMaxRank = 8;

// The rotated block viewed as [..., heads, D] (Y itself without full) and each
// table's strides along its dims (0 where the table broadcasts). X's rows are
// in_row elements long and the block is their columns [begin, begin + width)
// (without a block attribute in_row = width = D and begin = 0). Element e of
// the block is X's (e / width) · in_row + begin + e % width; without full,
// Y's element i is block element i; with full, Y's element i is X's.
struct Dims {
  int rank;
  int64_t dims[kMaxRank], cos_st[kMaxRank], sin_st[kMaxRank];
  int64_t n;  // Y's elements
  int64_t d, in_row, width, begin;
  bool full, interleaved;
};

// Y = Rope(X) over `r` on ctx's stream, in dtype `dt` (f32, f64, f16, bf16; else an error
// naming ctx's node); x_numel is X's element count (the 32-bit fast path's bound).
void launch(KernelContext& ctx, DType dt, const Dims& r, const void* x, int64_t x_numel, const void* cs, const void* sn,
            void* y);

}  // namespace tessera::cuda::rope
