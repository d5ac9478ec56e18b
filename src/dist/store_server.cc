// StoreServer: one thread, one poll() loop over the listening socket, a wake
// pipe (so the destructor can stop it) and every client. Sockets are
// non-blocking; each client has an input buffer (frames are handled once
// whole) and an output buffer (flushed when the socket is writable). A Get or
// Wait whose keys are missing is parked on its client and answered by the
// Set/Add that completes it, so nothing spins while ranks wait.
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <condition_variable>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <stdexcept>
#include <thread>

#include "core/error.h"
#include "dist/store.h"
#include "dist/wire.h"

namespace tessera::dist {

using wire::Op;

namespace {

// A parked Get or Wait.
struct Parked {
  Op op;
  std::vector<std::string> keys;
};

struct Client {
  net::Fd fd;
  bool introduced = false;  // sent Hello
  int rank = -1;
  bool said_goodbye = false;
  bool closing = false;     // drop once the output is flushed
  bool gone = false;        // drop now
  std::string in, out;
  std::optional<Parked> parked;
};

std::string error_frame(const std::string& message) { return wire::Writer(Op::Error).str(message).frame(); }

}  // namespace

struct StoreServer::Impl {
  net::Fd listener, wake_read, wake_write;
  int port = 0;
  std::thread thread;
  std::map<std::string, std::string> data;
  std::vector<std::unique_ptr<Client>> clients;
  std::set<int> dead;
  // connected_ranks, shared with threads waiting in wait_for_ranks_to_leave().
  mutable std::mutex count_mu;
  mutable std::condition_variable count_cv;
  int ranks_connected = 0;

  void loop();
  void accept_clients();
  void read_client(Client& c);
  void flush(Client& c);
  void send(Client& c, const std::string& frame);
  void handle(Client& c, const std::string& payload);
  void handle_hello(Client& c, wire::Reader& r);
  void handle_add(Client& c, wire::Reader& r);
  bool all_present(const std::vector<std::string>& keys) const;
  void answer_parked(Client& c);
  void wake_parked();
  void drop_finished();
  void count_ranks();
};

void StoreServer::Impl::loop() {
  std::vector<pollfd> fds;
  for (;;) {
    fds.clear();
    fds.push_back({wake_read.get(), POLLIN, 0});
    fds.push_back({listener.get(), POLLIN, 0});
    for (auto& c : clients) fds.push_back({c->fd.get(), short(POLLIN | (c->out.empty() ? 0 : POLLOUT)), 0});
    if (::poll(fds.data(), fds.size(), -1) < 0) {
      if (errno == EINTR) continue;
      return;  // cannot happen with valid fds; stopping beats spinning
    }
    if (fds[0].revents) return;
    size_t n = clients.size();  // accept_clients() below appends
    for (size_t i = 0; i < n; ++i) {
      short ev = fds[i + 2].revents;
      if (ev & (POLLIN | POLLHUP | POLLERR)) read_client(*clients[i]);
      if ((ev & POLLOUT) && !clients[i]->gone) flush(*clients[i]);
    }
    if (fds[1].revents & POLLIN) accept_clients();
    drop_finished();
    count_ranks();
  }
}

void StoreServer::Impl::count_ranks() {
  int n = 0;
  for (auto& c : clients) n += c->introduced && c->rank >= 0 && !c->said_goodbye;
  std::lock_guard lock(count_mu);
  if (n == ranks_connected) return;
  ranks_connected = n;
  count_cv.notify_all();
}

void StoreServer::Impl::accept_clients() {
  for (;;) {
    int fd = ::accept4(listener.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) return;  // EAGAIN: none left; other errors: try again on the next poll
    net::set_nodelay(fd);
    auto c = std::make_unique<Client>();
    c->fd = net::Fd(fd);
    clients.push_back(std::move(c));
  }
}

void StoreServer::Impl::read_client(Client& c) {
  char buf[65536];
  for (;;) {
    ssize_t n = ::recv(c.fd.get(), buf, sizeof buf, 0);
    if (n > 0) {
      c.in.append(buf, size_t(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    c.gone = true;  // EOF or reset; frames already received still count (a Goodbye)
    break;
  }
  try {
    std::string payload;
    while (!c.closing && wire::take_frame(c.in, payload)) handle(c, payload);
  } catch (const std::exception& e) {
    // Garbage from a stranger, or a client that broke the protocol: hang up.
    c.gone = true;
  }
}

void StoreServer::Impl::flush(Client& c) {
  while (!c.out.empty()) {
    ssize_t n = ::send(c.fd.get(), c.out.data(), c.out.size(), MSG_NOSIGNAL);
    if (n > 0) {
      c.out.erase(0, size_t(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    c.gone = true;
    return;
  }
  if (c.closing) c.gone = true;
}

void StoreServer::Impl::send(Client& c, const std::string& frame) {
  c.out += frame;
  flush(c);
}

void StoreServer::Impl::handle_hello(Client& c, wire::Reader& r) {
  std::string magic = r.str();
  int rank = r.i32();
  if (magic != wire::kMagic) {
    send(c, error_frame("protocol mismatch: expected '" + std::string(wire::kMagic) + "'"));
    c.closing = true;
    return;
  }
  c.introduced = true;
  c.rank = rank;
  dead.erase(rank);  // it is back
  send(c, wire::Writer(Op::Ok).frame());
}

void StoreServer::Impl::handle_add(Client& c, wire::Reader& r) {
  std::string key = r.str();
  int64_t delta = r.i64();
  int64_t value = 0;
  auto it = data.find(key);
  if (it != data.end()) {
    const std::string& s = it->second;
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
    if (ec != std::errc() || end != s.data() + s.size()) {
      send(c, error_frame("add('" + key + "'): the key holds a value that is not an integer counter"));
      return;
    }
  }
  value += delta;
  data[key] = std::to_string(value);
  send(c, wire::Writer(Op::Int).i64(value).frame());
  wake_parked();
}

// Dispatches one request. Requests arrive one at a time per client; the only
// thing a client may send while its Get/Wait is parked is Cancel.
void StoreServer::Impl::handle(Client& c, const std::string& payload) {
  wire::Reader r(payload);
  if (!c.introduced && r.op() != Op::Hello) throw std::runtime_error("no hello");
  if (c.parked && r.op() != Op::Cancel) throw std::runtime_error("request while parked");
  switch (r.op()) {
    case Op::Hello: handle_hello(c, r); break;
    case Op::Set: {
      std::string key = r.str();
      data[key] = r.str();
      send(c, wire::Writer(Op::Ok).frame());
      wake_parked();
      break;
    }
    case Op::Get: c.parked = Parked{Op::Get, {r.str()}}; answer_parked(c); break;
    case Op::Wait: c.parked = Parked{Op::Wait, r.strs()}; answer_parked(c); break;
    case Op::Add: handle_add(c, r); break;
    case Op::Check: send(c, wire::Writer(Op::Bool).u8(all_present(r.strs())).frame()); break;
    case Op::Cancel:
      // If the answer already went out, the client discards it before Cancelled.
      c.parked.reset();
      send(c, wire::Writer(Op::Cancelled).frame());
      break;
    case Op::DeadRanks: {
      wire::Writer w(Op::Ranks);
      w.i32(int32_t(dead.size()));
      for (int rank : dead) w.i32(rank);
      send(c, w.frame());
      break;
    }
    case Op::Delete: send(c, wire::Writer(Op::Bool).u8(data.erase(r.str()) > 0).frame()); break;
    case Op::NumKeys: send(c, wire::Writer(Op::Int).i64(int64_t(data.size())).frame()); break;
    case Op::Goodbye:
      c.said_goodbye = true;
      send(c, wire::Writer(Op::Bye).frame());
      c.closing = true;
      break;
    default: throw std::runtime_error("unknown request");
  }
}

bool StoreServer::Impl::all_present(const std::vector<std::string>& keys) const {
  for (const std::string& k : keys)
    if (!data.count(k)) return false;
  return true;
}

void StoreServer::Impl::answer_parked(Client& c) {
  if (!c.parked || !all_present(c.parked->keys)) return;
  if (c.parked->op == Op::Get)
    send(c, wire::Writer(Op::Value).str(data[c.parked->keys[0]]).frame());
  else
    send(c, wire::Writer(Op::Ok).frame());
  c.parked.reset();
}

// Waiters are few (one per connection at most), so scanning them all after a
// write is cheaper than indexing them by key.
void StoreServer::Impl::wake_parked() {
  for (auto& c : clients)
    if (!c->gone) answer_parked(*c);
}

void StoreServer::Impl::drop_finished() {
  std::erase_if(clients, [&](const std::unique_ptr<Client>& c) {
    if (!c->gone && !(c->closing && c->out.empty())) return false;
    if (c->introduced && c->rank >= 0 && !c->said_goodbye) dead.insert(c->rank);
    return true;
  });
}

StoreServer::StoreServer(const std::string& host, int port) : impl_(std::make_unique<Impl>()) {
  impl_->listener = net::listen_tcp(host == "0.0.0.0" ? "" : host, port);
  net::set_nonblocking(impl_->listener.get());
  impl_->port = net::local_port(impl_->listener.get());
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) fail(ErrorKind::Distributed, "store server: pipe2 failed");
  impl_->wake_read = net::Fd(p[0]);
  impl_->wake_write = net::Fd(p[1]);
  impl_->thread = std::thread([impl = impl_.get()] { impl->loop(); });
}

StoreServer::~StoreServer() {
  char byte = 1;
  ssize_t n;
  do n = ::write(impl_->wake_write.get(), &byte, 1);
  while (n < 0 && errno == EINTR);
  impl_->thread.join();
}

int StoreServer::port() const { return impl_->port; }

int StoreServer::connected_ranks() const {
  std::lock_guard lock(impl_->count_mu);
  return impl_->ranks_connected;
}

bool StoreServer::wait_for_ranks_to_leave(std::chrono::milliseconds timeout) const {
  std::unique_lock lock(impl_->count_mu);
  return impl_->count_cv.wait_for(lock, timeout, [&] { return impl_->ranks_connected == 0; });
}

}  // namespace tessera::dist
