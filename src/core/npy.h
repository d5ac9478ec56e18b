// NumPy .npy and .npz files, the exchange format of `tessera run` and of the
// tests. bf16 has no NumPy dtype: it is written as float32 (exact widening).
#pragma once
#include <map>
#include <string>

#include "core/tensor.h"

namespace tessera {

Tensor read_npy(const std::string& path);
Tensor parse_npy(const std::string& bytes, const std::string& what);  // `what` names the source in errors
void write_npy(const std::string& path, const Tensor& t);
std::string format_npy(const Tensor& t);

// Entries keyed by array name (the ".npy" suffix removed). Stored and deflated entries are read.
std::map<std::string, Tensor> read_npz(const std::string& path);
// Written atomically (temporary file, then rename), stored without compression.
void write_npz(const std::string& path, const std::map<std::string, Tensor>& arrays);

// Whole-file helpers used by the readers and the engine: errors name the path.
std::string read_file(const std::string& path);
void write_file_atomic(const std::string& path, const std::string& bytes);

}  // namespace tessera
