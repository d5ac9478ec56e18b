// Device helpers for the cuDNN conv kernels (kernels/conv.cc), which is host
// code: the element loops cuDNN's legacy API cannot do for us, launched from
// kernels/conv_util.cu. cuDNN pads symmetrically, so an asymmetric Conv pads
// its input into scratch first, and a ConvTranspose whose extents cuDNN
// cannot express is computed uncropped and cropped afterwards.
#pragma once
#include <cstdint>

#include "backend/cuda/kernel_registry.h"

namespace tessera::cuda::conv {

constexpr int kMaxSpatial = 6;

// A shifted copy between two stacks of planes with the same plane count:
// dst[p, o] = src[p, o + shift] where that lies inside src, else 0, plus
// bias[p % channels] when a bias is given. Padding is shift = -pad_begin,
// cropping is shift = +pad_begin.
struct Box {
  int rank = 0;
  int64_t src[kMaxSpatial] = {}, dst[kMaxSpatial] = {}, shift[kMaxSpatial] = {};
};

// `t` is the element type of src, dst and bias (a float type).
void copy_box(const KernelContext& ctx, DType t, const void* src, void* dst, int64_t planes, const Box& box,
              const void* bias, int64_t channels);

// y[n, c, cell] += bias[c] over y = [batch, channels, cells].
void add_bias(const KernelContext& ctx, DType t, void* y, const void* bias, int64_t batch, int64_t channels,
              int64_t cells);

}  // namespace tessera::cuda::conv
