// A rank process as the launcher sees it: started with posix_spawn (safe in
// a process that runs the store's thread, unlike fork + exec with
// allocation in between) in a process group of its own, so that a signal
// reaches the rank's whole tree (a `sh -c` and what it started), with its
// stdout and stderr coming back through pipes and its stdin on /dev/null
// (several ranks reading one terminal would be chaos).
#pragma once
#include <sys/types.h>

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "dist/socket.h"

namespace tessera::dist {

class ChildProcess {
 public:
  // Starts argv[0], searched in PATH, with exactly `env` ("NAME=value"
  // entries). Throws a Distributed error naming the program when it cannot
  // be started (not found, not executable).
  static ChildProcess spawn(const std::vector<std::string>& argv, const std::vector<std::string>& env);

  pid_t pid() const { return pid_; }
  // Read ends of the output pipes; invalid once closed.
  net::Fd& stdout_pipe() { return out_; }
  net::Fd& stderr_pipe() { return err_; }

  // Signals the child's process group, so its own children get it too.
  void signal_group(int sig) const;
  // Reaps the child if it has exited, without blocking; true once it has.
  bool poll_exit();
  bool exited() const { return exited_; }
  // waitpid()'s status, valid once exited().
  int wait_status() const { return status_; }

 private:
  pid_t pid_ = -1;
  net::Fd out_, err_;
  bool exited_ = false;
  int status_ = 0;
};

// "exited with code 3", "killed by signal SIGKILL".
std::string describe_wait_status(int status);
// True for a normal exit with code 0.
bool exited_cleanly(int status);
// "SIGTERM" for SIGTERM.
std::string signal_name(int sig);

// Splits a byte stream into lines for prefixing. A line longer than
// kMaxLine is passed on in pieces rather than buffered without bound.
class LineBuffer {
 public:
  static constexpr size_t kMaxLine = 64 * 1024;
  using Emit = std::function<void(std::string_view line)>;
  // Emits every complete line in `bytes` (without its '\n').
  void feed(std::string_view bytes, const Emit& emit);
  // Emits what is left, a last line without '\n'.
  void finish(const Emit& emit);

 private:
  std::string pending_;
};

}  // namespace tessera::dist
