// The engine cache behind `tessera run MODEL.onnx`: every rank of a
// data-parallel job may be handed the ONNX file; the first to take the entry's
// lock builds the engine and the others wait for it and load it, so one file
// is never built twice at once.
//
// An entry records the key it was built for (CacheKey, in the engine file's
// "cache_key"): the model's hash, the build settings, the target's
// architecture ("cpu", or the GPU's "sm_90") and the tessera and engine format
// versions. An entry that does not load, records no key or records another
// key (a foreign file copied there, a hash-prefix collision) is rebuilt under
// the lock, never trusted. A development build keeps its version string while
// its passes change: clear the cache directory after rebuilding tessera itself.
#pragma once
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>

#include "engine/engine.h"

namespace tessera {

struct EngineCacheOptions {
  std::string dir;                               // default_cache_dir() when empty
  std::chrono::milliseconds timeout{60000};      // longest wait for another process's build
  std::function<void(const std::string&)> log;   // "built engine …", "loaded engine from cache …", "entry … rebuilding"
};

// What an entry is built for; two builds with equal keys give the same engine.
struct CacheKey {
  std::string model;            // SHA-256 of the model and its external data files
  std::string settings;         // settings_json of the build settings (dump_dir, verbose, timing_cache left out)
  std::string arch;             // "cpu", or the GPU's compute capability ("sm_90")
  std::string tessera_version;
  uint32_t format_version = 0;
};

// $TESSERA_CACHE, else $HOME/.cache/tessera.
std::string default_cache_dir();
// The key for building the model with `settings` on `arch` (normally
// target_arch(settings); tests pass another). Errors name the model or
// external data file that cannot be read.
CacheKey make_cache_key(const std::string& model_path, const Settings& settings, const std::string& arch);
// The key as the entry records it (JSON text), and its SHA-256 (64 hex digits).
std::string cache_key_json(const CacheKey& key);
std::string cache_key_digest(const CacheKey& key);
// Why an entry built for `built` does not serve `wanted` ("built for another
// model", ...); empty when it does.
std::string cache_key_mismatch(const CacheKey& built, const CacheKey& wanted);
// cache_key_digest of the key on this machine's target architecture.
std::string engine_cache_key(const std::string& model_path, const Settings& settings);
// Where the entry lives: DIR/<model stem>-<first 32 hex digits of the key>.tsr.
std::string engine_cache_path(const std::string& dir, const std::string& model_path, const std::string& key);

// The cached engine for the model, building it (under the entry's lock) when
// it is missing, does not load or was built for another key. A target that
// cannot be built here (cuda without a GPU) fails before any file is made.
Engine load_or_build_cached(const std::string& model_path, const Settings& settings, const EngineCacheOptions& opts);

}  // namespace tessera
