// Checking `tessera launch`'s flags, torchrun's semantics where they carry
// over; every error names the flag.
#include <charconv>

#include "core/error.h"
#include "dist/launcher.h"

namespace tessera::dist {

namespace {

// torchrun's port for a --rdzv-endpoint given without one.
constexpr int kDefaultRdzvPort = 29400;
// torchrun's --master-port default, used when several nodes must agree on it.
constexpr int kDefaultMasterPort = 29500;

int parse_port(const std::string& text, const std::string& flag_value) {
  int port = -1;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), port);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() || port < 0 || port > 65535)
    fail(ErrorKind::InvalidArgument, "--rdzv-endpoint '", flag_value, "': '", text, "' is not a port number");
  return port;
}

// "host:port", "host", "[v6]:port", "[v6]" → master_addr / master_port.
void apply_endpoint(LaunchOptions& o) {
  const std::string& ep = o.rdzv_endpoint;
  std::string host = ep;
  int port = kDefaultRdzvPort;
  if (ep.starts_with("[")) {
    size_t close = ep.find(']');
    if (close == std::string::npos) fail(ErrorKind::InvalidArgument, "--rdzv-endpoint '", ep, "': unmatched '['");
    host = ep.substr(1, close - 1);
    std::string rest = ep.substr(close + 1);
    if (!rest.empty()) {
      if (rest[0] != ':') fail(ErrorKind::InvalidArgument, "--rdzv-endpoint '", ep, "': expected ':port' after ']'");
      port = parse_port(rest.substr(1), ep);
    }
  } else if (size_t colon = ep.rfind(':'); colon != std::string::npos && ep.find(':') == colon) {
    // One colon: host:port. Several and no brackets: a bare IPv6 address.
    host = ep.substr(0, colon);
    port = parse_port(ep.substr(colon + 1), ep);
  }
  if (host.empty()) fail(ErrorKind::InvalidArgument, "--rdzv-endpoint '", ep, "': no host");
  o.master_addr = host;
  o.master_port = port;
}

}  // namespace

LaunchOptions resolve_launch_options(LaunchOptions o) {
  if (o.program.empty())
    fail(ErrorKind::InvalidArgument,
         "no program to launch: put it after '--', e.g. tessera launch --nproc-per-node 2 -- ./my_program args");
  if (o.rdzv_backend != "c10d")
    fail(ErrorKind::InvalidArgument, "--rdzv-backend '", o.rdzv_backend,
         "' is not supported: tessera launch rendezvous through its own TCP store, as torchrun's c10d backend does; "
         "use --rdzv-backend c10d or leave the flag out");
  if (o.nproc_per_node < 1) fail(ErrorKind::InvalidArgument, "--nproc-per-node ", o.nproc_per_node, ": must be at least 1");
  if (o.nnodes < 1) fail(ErrorKind::InvalidArgument, "--nnodes ", o.nnodes, ": must be at least 1");
  if (o.node_rank < 0 || o.node_rank >= o.nnodes)
    fail(ErrorKind::InvalidArgument, "--node-rank ", o.node_rank, " is not in [0, ", o.nnodes, ") (--nnodes ", o.nnodes, ")");
  if (o.timeout.count() <= 0) fail(ErrorKind::InvalidArgument, "--timeout must be positive");
  if (!o.rdzv_endpoint.empty()) {
    if (!o.master_addr.empty() || o.master_port >= 0)
      fail(ErrorKind::InvalidArgument, "give --rdzv-endpoint or --master-addr/--master-port, not both");
    apply_endpoint(o);
  }
  if (o.master_addr.empty()) o.master_addr = "127.0.0.1";
  // One node picks any free port, so that two jobs on a machine never collide
  // (torchrun --standalone); several nodes must agree on a fixed one.
  if (o.master_port < 0) o.master_port = o.nnodes == 1 ? 0 : kDefaultMasterPort;
  if (o.master_port > 65535) fail(ErrorKind::InvalidArgument, "--master-port ", o.master_port, " is not a port number");
  if (o.master_port == 0 && o.nnodes > 1)
    fail(ErrorKind::InvalidArgument, "--master-port 0 (any free port) works only with one node: the other nodes must know the port");
  if (int64_t(o.nproc_per_node) * o.nnodes > 1'000'000)
    fail(ErrorKind::InvalidArgument, "--nnodes ", o.nnodes, " x --nproc-per-node ", o.nproc_per_node, " is not a sensible world size");
  return o;
}

}  // namespace tessera::dist
