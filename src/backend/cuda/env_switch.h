// The CUDA backend's TESSERA_* switches (TESSERA_PDL, TESSERA_GEMM_PAD_N,
// TESSERA_GEMM_ROW_PHASES, TESSERA_CUDNN_AUTOTUNE, ...): each is on or off by
// default and one exact value flips it; its reader keeps the answer in a
// function-local static, so the environment is read once per process.
#pragma once
#include <cstdlib>
#include <cstring>

namespace tessera::cuda {

// Whether environment variable `name` is set to exactly `value`.
inline bool env_is(const char* name, const char* value) {
  const char* e = std::getenv(name);
  return e && std::strcmp(e, value) == 0;
}

}  // namespace tessera::cuda
