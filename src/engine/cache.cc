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

#include "core/sha256.h"
#include "frontend/onnx/external_data.h"

namespace tessera {

namespace fs = std::filesystem;

std::string default_cache_dir() {
  if (const char* d = std::getenv("TESSERA_CACHE"); d && *d) return d;
  const char* home = std::getenv("HOME");
  TSR_CHECK(home && *home, ErrorKind::InvalidArgument, "no cache directory: set TESSERA_CACHE or HOME, or pass --cache-dir");
  return (fs::path(home) / ".cache" / "tessera").string();
}

namespace {
// name, length, bytes: no two different field lists hash the same stream.
void add_field(Sha256& h, const std::string& name, const std::string& value) {
  h.update(name + '\0' + std::to_string(value.size()) + '\0');
  h.update(value);
}

void add_file(Sha256& h, const std::string& name, const std::string& path) {
  std::error_code ec;
  auto size = fs::file_size(path, ec);
  if (ec) fail(ErrorKind::Io, path, ": cannot read (", ec.message(), ")");
  h.update(name + '\0' + std::to_string(size) + '\0');
  hash_file(h, path);
}
}  // namespace

std::string engine_cache_key(const std::string& model_path, const Settings& settings) {
  Sha256 h;
  add_field(h, "tessera engine cache", "1");
  add_field(h, "tessera_version", tessera_version());
  add_field(h, "format_version", std::to_string(engine_format_version()));
  add_field(h, "settings", settings_json(settings));
  add_file(h, "model", model_path);
  fs::path dir = fs::path(model_path).parent_path();
  for (const std::string& file : onnx::external_data_files(model_path))
    add_file(h, "external:" + fs::path(file).lexically_relative(dir).string(), file);
  return h.hex_digest();
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

// The entry, if it exists and loads; `warn` says why an existing one does not.
std::optional<Engine> try_load(const std::string& path, bool warn) {
  if (!fs::exists(path)) return std::nullopt;
  try {
    return Engine::load(path);
  } catch (const Error& e) {
    if (warn) std::cerr << "tessera: warning: cache entry " << path << " does not load (" << e.what() << "); rebuilding it\n";
    return std::nullopt;
  }
}
}  // namespace

Engine load_or_build_cached(const std::string& model_path, const Settings& settings, const EngineCacheOptions& opts) {
  std::string dir = opts.dir.empty() ? default_cache_dir() : opts.dir;
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) fail(ErrorKind::Io, dir, ": cannot create the cache directory (", ec.message(), ")");
  std::string key = engine_cache_key(model_path, settings);
  std::string path = engine_cache_path(dir, model_path, key);
  // Without the lock first: a finished entry is read by everyone at once.
  if (auto e = try_load(path, false)) {
    log(opts, "loaded engine from cache " + path);
    return std::move(*e);
  }
  FileLock lock(path + ".lock", opts.timeout);
  if (auto e = try_load(path, true)) {  // built by whoever held the lock before us
    log(opts, "loaded engine from cache " + path);
    return std::move(*e);
  }
  Engine e = Engine::build_onnx(model_path, settings);
  e.save(path);  // atomic: readers without the lock see the old entry or the whole new one
  log(opts, "built engine " + path + " from " + model_path);
  return e;
}

}  // namespace tessera
