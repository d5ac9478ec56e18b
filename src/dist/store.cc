// Store: the client side of the rendezvous store. Requests go out one at a
// time under the mutex and are answered in order. A Get/Wait that times out
// locally sends Cancel and reads up to the server's Cancelled, discarding an
// answer that crossed the Cancel in flight (or using it: the key did arrive),
// so the stream stays in step and the Store remains usable after a timeout.
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <thread>

#include "core/error.h"
#include "dist/store.h"
#include "dist/wire.h"

namespace tessera::dist {

using wire::Op;
using std::chrono::milliseconds;

namespace {

// How long a Cancel or Goodbye may take to be acknowledged: the server answers
// them at once, so these only bound a server that has hung. A goodbye is
// said on the way out of a process, where waiting long helps nobody.
constexpr milliseconds kAckBound{5000};
constexpr milliseconds kGoodbyeBound{1000};

struct Reply {
  Op op = Op::Error;
  std::string text;  // Value, Error
  int64_t number = 0;  // Int, Bool
  std::vector<int> ranks;
};

// Decodes a whole reply; throws std::runtime_error on anything malformed.
Reply decode(const std::string& payload) {
  wire::Reader r(payload);
  Reply out;
  out.op = r.op();
  switch (r.op()) {
    case Op::Value:
    case Op::Error: out.text = r.str(); break;
    case Op::Int: out.number = r.i64(); break;
    case Op::Bool: out.number = r.u8(); break;
    case Op::Ranks: {
      int32_t n = r.i32();
      for (int32_t i = 0; i < n; ++i) out.ranks.push_back(r.i32());
      break;
    }
    case Op::Ok:
    case Op::Cancelled:
    case Op::Bye: break;
    default: throw std::runtime_error("unknown reply");
  }
  if (!r.done()) throw std::runtime_error("reply longer than expected");
  return out;
}

std::string quoted_list(const std::vector<std::string>& keys) {
  std::string out;
  for (const std::string& k : keys) out += (out.empty() ? "'" : ", '") + k + "'";
  return out;
}

}  // namespace

Store::Store(std::string host, int port, int rank, net::Fd fd)
    : host_(std::move(host)), port_(port), rank_(rank), fd_(std::move(fd)) {}

Store::~Store() { close(); }

std::string Store::where() const { return str("store at ", net::endpoint(host_, port_), " (rank ", rank_, ")"); }

[[noreturn]] void Store::broken_locked(const std::string& why) {
  broken_ = why;
  fd_.reset();
  fail(ErrorKind::Distributed, where(), ": ", why);
}

void Store::send_locked(const std::string& frame) {
  if (!broken_.empty()) fail(ErrorKind::Distributed, where(), ": connection unusable after an earlier error: ", broken_);
  if (!fd_.valid()) fail(ErrorKind::Distributed, where(), ": the store was closed");
  if (!net::send_all(fd_.get(), frame)) broken_locked(str("send failed: ", std::strerror(errno)));
}

bool Store::read_frame_locked(net::Clock::time_point deadline, std::string& payload) {
  for (;;) {
    try {
      if (wire::take_frame(rbuf_, payload)) return true;
    } catch (const std::exception& e) {
      broken_locked(str("garbled reply (", e.what(), "): is this a tessera store?"));
    }
    if (!net::wait_readable(fd_.get(), deadline)) return false;
    char buf[65536];
    ssize_t n = ::recv(fd_.get(), buf, sizeof buf, 0);
    if (n > 0) {
      rbuf_.append(buf, size_t(n));
    } else if (n == 0) {
      broken_locked("the server closed the connection (has the process hosting the store exited?)");
    } else if (errno != EINTR) {
      broken_locked(str("receive failed: ", std::strerror(errno)));
    }
  }
}

// One request whose answer comes at once (it never parks on the server).
std::string Store::call_locked(const std::string& frame, const char* what) {
  send_locked(frame);
  std::string payload;
  if (!read_frame_locked(net::Clock::now() + timeout(), payload))
    broken_locked(str("no reply to ", what, " within ", timeout().count(), " ms (is the server hung?)"));
  return payload;
}

// A Get/Wait: true with the answer in `payload`, false if it timed out (and
// was cancelled on the server).
bool Store::call_parked_locked(const std::string& frame, milliseconds timeout, std::string& payload) {
  send_locked(frame);
  if (read_frame_locked(net::Clock::now() + timeout, payload)) return true;
  send_locked(wire::Writer(Op::Cancel).frame());
  bool answered = false;
  std::string msg;
  for (auto deadline = net::Clock::now() + kAckBound;;) {
    if (!read_frame_locked(deadline, msg)) broken_locked("the server did not acknowledge a cancelled wait");
    try {
      if (decode(msg).op == Op::Cancelled) return answered;
    } catch (const std::exception& e) {
      broken_locked(str("garbled reply: ", e.what()));
    }
    payload = msg;  // the answer crossed our Cancel: the wait did succeed
    answered = true;
  }
}

namespace {

// Checks a reply's kind; a server Error becomes a Distributed error.
Reply expect(const std::string& payload, Op op, const std::string& where, const char* what) {
  Reply r;
  try {
    r = decode(payload);
  } catch (const std::exception& e) {
    fail(ErrorKind::Distributed, where, ": ", what, ": garbled reply (", e.what(), ")");
  }
  if (r.op == Op::Error) fail(ErrorKind::Distributed, where, ": ", what, ": ", r.text);
  if (r.op != op) fail(ErrorKind::Distributed, where, ": ", what, ": unexpected reply from the server");
  return r;
}

}  // namespace

// Hello → Ok. A slow handshake near the connect deadline still gets a second.
void Store::handshake(net::Clock::time_point deadline) {
  std::lock_guard lock(mu_);
  try {
    send_locked(wire::Writer(Op::Hello).str(wire::kMagic).i32(rank_).frame());
    std::string payload;
    if (!read_frame_locked(deadline, payload))
      fail(ErrorKind::Distributed, "the service at ", net::endpoint(host_, port_),
           " accepted a connection but did not answer the store handshake: is it a tessera store?");
    expect(payload, Op::Ok, where(), "handshake");
  } catch (...) {
    fd_.reset();  // no goodbye to a server that never greeted us
    throw;
  }
}

std::unique_ptr<Store> Store::connect(const std::string& host, int port, int rank, milliseconds timeout) {
  auto deadline = net::Clock::now() + timeout;
  auto backoff = milliseconds(10);
  std::string err;
  for (;;) {
    net::Fd fd = net::try_connect(host, port, err);
    if (fd.valid()) {
      std::unique_ptr<Store> s(new Store(host, port, rank, std::move(fd)));
      s->set_timeout(timeout);
      s->handshake(std::max(deadline, net::Clock::now() + milliseconds(1000)));
      return s;
    }
    if (net::Clock::now() >= deadline)
      fail(ErrorKind::Distributed, "could not connect to the store at ", net::endpoint(host, port), " within ",
           timeout.count(), " ms (rank ", rank, "): ", err);
    std::this_thread::sleep_for(std::min<net::Clock::duration>(backoff, deadline - net::Clock::now()));
    backoff = std::min(backoff * 2, milliseconds(200));
  }
}

void Store::set(const std::string& key, const std::string& value) {
  std::lock_guard lock(mu_);
  expect(call_locked(wire::Writer(Op::Set).str(key).str(value).frame(), "set"), Op::Ok, where(), "set");
}

std::string Store::get(const std::string& key) {
  std::lock_guard lock(mu_);
  std::string payload;
  if (!call_parked_locked(wire::Writer(Op::Get).str(key).frame(), timeout(), payload))
    fail(ErrorKind::Distributed, timeout_message_locked("get('" + key + "')", timeout()));
  return expect(payload, Op::Value, where(), "get").text;
}

int64_t Store::add(const std::string& key, int64_t delta) {
  std::lock_guard lock(mu_);
  return expect(call_locked(wire::Writer(Op::Add).str(key).i64(delta).frame(), "add"), Op::Int, where(), "add").number;
}

bool Store::check(const std::vector<std::string>& keys) {
  std::lock_guard lock(mu_);
  return expect(call_locked(wire::Writer(Op::Check).strs(keys).frame(), "check"), Op::Bool, where(), "check").number != 0;
}

bool Store::wait_for(const std::vector<std::string>& keys, milliseconds timeout) {
  std::lock_guard lock(mu_);
  std::string payload;
  if (!call_parked_locked(wire::Writer(Op::Wait).strs(keys).frame(), timeout, payload)) return false;
  expect(payload, Op::Ok, where(), "wait");
  return true;
}

void Store::wait(const std::vector<std::string>& keys) { wait(keys, timeout()); }

void Store::wait(const std::vector<std::string>& keys, milliseconds timeout) {
  if (wait_for(keys, timeout)) return;
  std::vector<std::string> missing;
  for (const std::string& k : keys)
    if (!check({k})) missing.push_back(k);
  std::lock_guard lock(mu_);
  fail(ErrorKind::Distributed, timeout_message_locked("wait for " + quoted_list(missing), timeout));
}

bool Store::delete_key(const std::string& key) {
  std::lock_guard lock(mu_);
  return expect(call_locked(wire::Writer(Op::Delete).str(key).frame(), "delete"), Op::Bool, where(), "delete").number != 0;
}

int64_t Store::num_keys() {
  std::lock_guard lock(mu_);
  return expect(call_locked(wire::Writer(Op::NumKeys).frame(), "num_keys"), Op::Int, where(), "num_keys").number;
}

void Store::set_timeout(milliseconds t) { timeout_ms_.store(t.count()); }

milliseconds Store::timeout() const { return milliseconds(timeout_ms_.load()); }

std::vector<int> Store::dead_ranks_locked() {
  return expect(call_locked(wire::Writer(Op::DeadRanks).frame(), "dead_ranks"), Op::Ranks, where(), "dead_ranks").ranks;
}

std::vector<int> Store::dead_ranks() {
  std::lock_guard lock(mu_);
  return dead_ranks_locked();
}

// "<what> timed out after N ms (store at h:p, rank r); ranks whose connection
// dropped: 3" — the dead ranks are usually the reason a key never came.
std::string Store::timeout_message_locked(const std::string& what, milliseconds timeout) {
  std::string msg = str(where(), ": ", what, " timed out after ", timeout.count(), " ms");
  std::vector<int> dead = dead_ranks_locked();
  if (!dead.empty()) msg += str("; ranks whose connection dropped (killed or crashed?): ", format_ranks(dead));
  return msg;
}

void Store::close() {
  std::lock_guard lock(mu_);
  if (!fd_.valid()) return;
  // The goodbye tells the server this rank left on purpose, so it is not
  // reported dead; waiting for Bye keeps our close from resetting the
  // connection before the server has read it.
  try {
    if (broken_.empty()) {
      send_locked(wire::Writer(Op::Goodbye).frame());
      std::string payload;
      auto deadline = net::Clock::now() + kGoodbyeBound;
      while (read_frame_locked(deadline, payload) && decode(payload).op != Op::Bye) {
      }
    }
  } catch (const std::exception&) {
    // Closing anyway: the server will count this rank as dropped.
  }
  fd_.reset();
}

}  // namespace tessera::dist
