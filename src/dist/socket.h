// Thin POSIX socket helpers for the rendezvous store. Every descriptor is
// close-on-exec, because the launcher spawns ranks while it holds the store's
// sockets and a child must not inherit (and so keep open) a listening port or a
// connection; every send uses MSG_NOSIGNAL so a vanished peer is an error to
// report, not a SIGPIPE that kills the process.
#pragma once
#include <chrono>
#include <string>

namespace tessera::dist::net {

using Clock = std::chrono::steady_clock;

// Owns one file descriptor; movable, closes on destruction.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& other) noexcept : fd_(other.release()) {}
  Fd& operator=(Fd&& other) noexcept;
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { reset(); }

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  int release();
  void reset();

 private:
  int fd_ = -1;
};

// "host:port", or "[v6addr]:port" for IPv6 literals, for error messages.
std::string endpoint(const std::string& host, int port);

// Listens on host:port (port 0 = the kernel picks one); "" means every IPv4
// interface. Throws a Distributed error naming host:port.
Fd listen_tcp(const std::string& host, int port);
// The port a bound socket ended up on.
int local_port(int fd);
// One connection attempt to host:port (every address it resolves to); on
// failure returns an invalid Fd and puts the reason in `error`, so the caller
// can retry while the server is still starting.
Fd try_connect(const std::string& host, int port, std::string& error);

void set_nonblocking(int fd);
// Store messages are small request/reply pairs: Nagle's delay would add
// ~40 ms to each one.
void set_nodelay(int fd);

// Sends every byte of a blocking socket; false if the peer is gone.
bool send_all(int fd, const std::string& bytes);
// Waits for fd to become readable until `deadline`; false on timeout.
bool wait_readable(int fd, Clock::time_point deadline);

// Milliseconds left until `deadline` for poll(), clamped to [0, INT_MAX].
int ms_until(Clock::time_point deadline);

}  // namespace tessera::dist::net
