#include "core/error.h"

namespace tessera {

const char* error_kind_name(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::InvalidArgument: return "invalid argument";
    case ErrorKind::Io: return "io";
    case ErrorKind::Parse: return "parse";
    case ErrorKind::Unsupported: return "unsupported";
    case ErrorKind::Shape: return "shape";
    case ErrorKind::Runtime: return "runtime";
    case ErrorKind::Distributed: return "distributed";
    case ErrorKind::Internal: return "internal";
  }
  return "unknown";
}

}  // namespace tessera
