#include "engine/cache.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <optional>
#include <thread>

#include <nlohmann/json.hpp>

#include "core/sha256.h"
#include "engine/target.h"
#include "frontend/onnx/external_data.h"

namespace tessera {

namespace fs = std::filesystem;
using json = nlohmann::json;

std::string default_cache_dir() {
  if (const char* d = std::getenv("TESSERA_CACHE"); d && *d) return d;
  const char* home = std::getenv("HOME");
  TSR_CHECK(home && *home, ErrorKind::InvalidArgument, "no cache directory: set TESSERA_CACHE or HOME, or pass --cache-dir");
  return (fs::path(home) / ".cache" / "tessera").string();
}

namespace {
void add_file(Sha256& h, const std::string& name, const std::string& path) {
  std::error_code ec;
  auto size = fs::file_size(path, ec);
  if (ec) fail(ErrorKind::Io, path, ": cannot read (", ec.message(), ")");
  h.update(name + '\0' + std::to_string(size) + '\0');
  hash_file(h, path);
}

// The model and its external data files, by their names relative to the model.
std::string model_hash(const std::string& model_path) {
  Sha256 h;
  add_file(h, "model", model_path);
  fs::path dir = fs::path(model_path).parent_path();
  for (const std::string& file : onnx::external_data_files(model_path))
    add_file(h, "external:" + fs::path(file).lexically_relative(dir).string(), file);
  return h.hex_digest();
}

// The recorded key; nullopt when there is none or it is not a key.
std::optional<CacheKey> parse_cache_key(const std::string& text) {
  if (text.empty()) return std::nullopt;
  try {
    json j = json::parse(text);
    return CacheKey{j.at("model").get<std::string>(), j.at("settings").get<std::string>(), j.at("arch").get<std::string>(),
                    j.at("tessera_version").get<std::string>(), j.at("format_version").get<uint32_t>()};
  } catch (const json::exception&) {
    return std::nullopt;
  }
}
}  // namespace

CacheKey make_cache_key(const std::string& model_path, const Settings& settings, const std::string& arch) {
  return CacheKey{model_hash(model_path), settings_json(settings), arch, tessera_version(), engine_format_version()};
}

std::string cache_key_json(const CacheKey& k) {
  return json{{"model", k.model}, {"settings", k.settings}, {"arch", k.arch}, {"tessera_version", k.tessera_version},
              {"format_version", k.format_version}}.dump();
}

std::string cache_key_digest(const CacheKey& k) {
  Sha256 h;
  h.update(std::string("tessera engine cache 2") + '\0');
  h.update(cache_key_json(k));  // keys sorted: the same key always hashes the same
  return h.hex_digest();
}

std::string cache_key_mismatch(const CacheKey& built, const CacheKey& wanted) {
  if (built.model != wanted.model) return "built for another model";
  if (built.arch != wanted.arch) return str("built for ", built.arch, ", not ", wanted.arch);
  if (built.settings != wanted.settings) return "built with other settings";
  if (built.tessera_version != wanted.tessera_version) return str("built by tessera ", built.tessera_version);
  if (built.format_version != wanted.format_version) return str("built in engine format ", built.format_version);
  return "";
}

std::string engine_cache_key(const std::string& model_path, const Settings& settings) {
  return cache_key_digest(make_cache_key(model_path, settings, target_arch(settings)));
}

std::string engine_cache_path(const std::string& dir, const std::string& model_path, const std::string& key) {
  std::string stem = fs::path(model_path).stem().string();
  for (char& c : stem)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' && c != '-') c = '_';
  return (fs::path(dir) / (stem + "-" + key.substr(0, 32) + ".tsr")).string();
}

namespace {
// An exclusive flock, released when the descriptor closes, or by the kernel
// when the holder dies: a crashed builder never leaves a stale lock.
class FileLock {
 public:
  FileLock(const std::string& path, std::chrono::milliseconds timeout) {
    fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd_ < 0) fail(ErrorKind::Io, path, ": cannot open the cache lock (", std::strerror(errno), ")");
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
      int err = errno;
      if (err != EWOULDBLOCK && err != EINTR) {
        ::close(fd_);
        fail(ErrorKind::Io, path, ": cannot lock (", std::strerror(err), ")");
      }
      if (std::chrono::steady_clock::now() >= deadline) {
        ::close(fd_);
        fail(ErrorKind::Runtime, path, ": another process has been building this engine for more than ",
             timeout.count() / 1000.0, " s (raise --timeout, or remove the lock if no tessera is running)");
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
  ~FileLock() { ::close(fd_); }
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;

 private:
  int fd_ = -1;
};

void log(const EngineCacheOptions& o, const std::string& line) {
  if (o.log) o.log(line);
}

// The entry, if it exists, loads and was built for `key`. With `report` set
// (the second look, under the lock) it says why an existing entry is rebuilt.
std::optional<Engine> try_load(const std::string& path, const CacheKey& key, const EngineCacheOptions* report) {
  if (!fs::exists(path)) return std::nullopt;
  std::optional<Engine> e;
  try {
    e = Engine::load(path);
  } catch (const Error& err) {
    if (report) std::cerr << "tessera: warning: cache entry " << path << " does not load (" << err.what() << "); rebuilding it\n";
    return std::nullopt;
  }
  std::optional<CacheKey> built = parse_cache_key(e->cache_key());
  std::string why = built ? cache_key_mismatch(*built, key) : "not built by the engine cache (it records no key)";
  if (why.empty()) return e;
  if (report) log(*report, "entry " + path + " was " + why + "; rebuilding");
  return std::nullopt;
}

std::string make_cache_dir(const EngineCacheOptions& opts) {
  std::string dir = opts.dir.empty() ? default_cache_dir() : opts.dir;
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) fail(ErrorKind::Io, dir, ": cannot create the cache directory (", ec.message(), ")");
  return dir;
}
}  // namespace

Engine load_or_build_cached(const std::string& model_path, const Settings& settings, const EngineCacheOptions& opts) {
  // The key first: a model that cannot be read or a target that cannot be
  // built here (cuda without a GPU) fails before anything is written.
  CacheKey key = make_cache_key(model_path, settings, target_arch(settings));
  std::string path = engine_cache_path(make_cache_dir(opts), model_path, cache_key_digest(key));
  // Without the lock first: a finished entry is read by everyone at once.
  if (auto e = try_load(path, key, nullptr)) {
    log(opts, "loaded engine from cache " + path);
    return std::move(*e);
  }
  FileLock lock(path + ".lock", opts.timeout);
  if (auto e = try_load(path, key, &opts)) {  // built by whoever held the lock before us
    log(opts, "loaded engine from cache " + path);
    return std::move(*e);
  }
  Engine e = Engine::build_onnx(model_path, settings);
  e.set_cache_key(cache_key_json(key));
  e.save(path);  // atomic: readers without the lock see the old entry or the whole new one
  log(opts, "built engine " + path + " from " + model_path);
  return e;
}

}  // namespace tessera
