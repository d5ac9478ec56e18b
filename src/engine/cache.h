// The engine cache behind `tessera run MODEL.onnx`: every rank of a
// data-parallel job may be handed the ONNX file; the first to take the entry's
// lock builds the engine and the others wait for it and load it, so one file
// is never built twice at once. An entry that fails to load (corrupt,
// truncated, written by another tessera) is rebuilt, never trusted.
//
// The key is a SHA-256 over the model's bytes, its external data files, the
// build settings (target included), the tessera version and the engine format
// version. A development build keeps its version string while its passes
// change: clear the cache directory after rebuilding tessera itself.
#pragma once
#include <chrono>
#include <functional>
#include <string>

#include "engine/engine.h"

namespace tessera {

struct EngineCacheOptions {
  std::string dir;                               // default_cache_dir() when empty
  std::chrono::milliseconds timeout{60000};      // longest wait for another process's build
  std::function<void(const std::string&)> log;   // "built engine …", "loaded engine from cache …"
};

// $TESSERA_CACHE, else $HOME/.cache/tessera.
std::string default_cache_dir();
// 64 hex digits; errors name the model or external data file that cannot be read.
std::string engine_cache_key(const std::string& model_path, const Settings& settings);
// Where the entry lives: DIR/<model stem>-<first 32 hex digits of the key>.tsr.
std::string engine_cache_path(const std::string& dir, const std::string& model_path, const std::string& key);

// The cached engine for the model, building it (under the entry's lock) when
// it is missing or does not load.
Engine load_or_build_cached(const std::string& model_path, const Settings& settings, const EngineCacheOptions& opts);

}  // namespace tessera
