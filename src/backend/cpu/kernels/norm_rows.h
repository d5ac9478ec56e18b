// The LayerNormalization and RMSNormalization reference arithmetic over rows
// of n elements, shared by their kernels (normalization.cc, rms_norm.cc) and
// the Skip norms (skip_norm.cc), which must give the unfused graph's bits.
// Statistics accumulate in double; scale (and bias) are doubles indexed
// j % their length (a vector spanning the normalised block, or repeating in it).
#pragma once
#include <cmath>
#include <cstdint>

namespace tessera::cpu {

// Y[r] = (X[r] - mean) / sqrt(var + eps) * scale (+ bias); Mean and InvStdDev per row if asked.
template <typename T>
void layer_norm_rows(const T* x, const double* scale, int64_t scale_n, const double* bias, int64_t bias_n, T* y,
                     float* mean_out, float* inv_out, int64_t rows, int64_t n, double eps) {
  for (int64_t r = 0; r < rows; ++r) {
    const T* px = x + r * n;
    double mean = 0, var = 0;
    for (int64_t j = 0; j < n; ++j) mean += double(px[j]);
    mean /= double(n);
    for (int64_t j = 0; j < n; ++j) var += (double(px[j]) - mean) * (double(px[j]) - mean);
    double inv = 1.0 / std::sqrt(var / double(n) + eps);
    for (int64_t j = 0; j < n; ++j) {
      double v = (double(px[j]) - mean) * inv * scale[j % scale_n];
      if (bias) v += bias[j % bias_n];
      y[r * n + j] = T(v);
    }
    if (mean_out) mean_out[r] = float(mean);
    if (inv_out) inv_out[r] = float(inv);
  }
}

// Y[r] = X[r] / sqrt(mean(X[r]^2) + eps) * scale.
template <typename T>
void rms_norm_rows(const T* x, const double* scale, int64_t scale_n, T* y, int64_t rows, int64_t n, double eps) {
  for (int64_t r = 0; r < rows; ++r) {
    const T* px = x + r * n;
    double ss = 0;
    for (int64_t j = 0; j < n; ++j) ss += double(px[j]) * double(px[j]);
    double inv = 1.0 / std::sqrt(ss / double(n) + eps);
    for (int64_t j = 0; j < n; ++j) y[r * n + j] = T(double(px[j]) * inv * scale[j % scale_n]);
  }
}

}  // namespace tessera::cpu
