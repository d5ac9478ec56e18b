// One exception type for every tessera failure. The category lets the CLI and
// callers react (exit codes, retries) without parsing messages; the message
// names the thing that was wrong (file, node, input), as STYLE.md asks.
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace tessera {

enum class ErrorKind { InvalidArgument, Io, Parse, Unsupported, Shape, Runtime, Distributed, Internal };

const char* error_kind_name(ErrorKind kind);

class Error : public std::runtime_error {
 public:
  Error(ErrorKind kind, const std::string& message) : std::runtime_error(message), kind_(kind) {}
  ErrorKind kind() const { return kind_; }

 private:
  ErrorKind kind_;
};

// str(a, b, c) concatenates anything that has operator<<.
template <typename... Args>
std::string str(Args&&... args) {
  std::ostringstream os;
  (os << ... << std::forward<Args>(args));
  return os.str();
}

template <typename... Args>
[[noreturn]] void fail(ErrorKind kind, Args&&... args) {
  throw Error(kind, str(std::forward<Args>(args)...));
}

}  // namespace tessera

#define TSR_CHECK(cond, kind, ...)                      \
  do {                                                  \
    if (!(cond)) ::tessera::fail(kind, __VA_ARGS__);    \
  } while (0)
