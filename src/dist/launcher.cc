// The launcher's run: host/join the store, spawn the local ranks, then one
// poll() loop that relays their output, reaps them, forwards signals, and
// every kStoreEvery exchanges news with the other nodes' launchers through
// the store (heartbeats, "done", and the abort key that stops everyone).
#include "dist/launcher.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <thread>

#include "core/error.h"
#include "dist/child_process.h"
#include "dist/store.h"

extern char** environ;

namespace tessera::dist {

using Clock = net::Clock;
using namespace std::chrono_literals;

namespace {

constexpr auto kTick = 50ms;          // the loop wakes at least this often
constexpr auto kStoreEvery = 200ms;   // how often launchers read each other's news
// Heartbeats every second, or 4 per --timeout when it is shorter, so that a
// live launcher is never mistaken for a silent one.
constexpr auto kHeartbeatEvery = 1000ms;
constexpr auto kKillGrace = 3s;       // SIGTERM, then SIGKILL after this
// A rank's pipes can outlive it (a background grandchild holds them); once
// every rank has exited, output is read for this long more, then dropped.
constexpr auto kDrainGrace = 500ms;
// After a failure, how long node 0 keeps the store up so that the other
// launchers can read why and report the same culprit.
constexpr auto kPeerStopGrace = 5s;

// Keys the launchers of one job share in the store.
const std::string kAbortKey = "tessera/launch/abort";
std::string node_key(const char* what, int node) { return str("tessera/launch/", what, "/", node); }

// A signal handler can safely do little more than write(): it puts the
// signal number into a pipe that the loop polls. The descriptor is global
// because a handler gets no context; one launch runs at a time.
int g_signal_fd = -1;

extern "C" void write_signal_to_pipe(int sig) {
  int saved = errno;
  unsigned char byte = static_cast<unsigned char>(sig);
  if (::write(g_signal_fd, &byte, 1) < 0) {
    // A full pipe already holds a pending signal; nothing to add.
  }
  errno = saved;
}

// Catches SIGINT and SIGTERM for its lifetime, restoring the old handlers after.
class SignalPipe {
 public:
  SignalPipe() {
    int p[2];
    if (::pipe2(p, O_CLOEXEC | O_NONBLOCK) != 0) fail(ErrorKind::Distributed, "launcher: pipe2 failed: ", std::strerror(errno));
    read_ = net::Fd(p[0]);
    write_ = net::Fd(p[1]);
    g_signal_fd = write_.get();
    struct sigaction sa {};
    sa.sa_handler = write_signal_to_pipe;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    ::sigaction(SIGINT, &sa, &old_int_);
    ::sigaction(SIGTERM, &sa, &old_term_);
  }
  ~SignalPipe() {
    ::sigaction(SIGINT, &old_int_, nullptr);
    ::sigaction(SIGTERM, &old_term_, nullptr);
    g_signal_fd = -1;
  }
  SignalPipe(const SignalPipe&) = delete;
  SignalPipe& operator=(const SignalPipe&) = delete;

  int fd() const { return read_.get(); }
  std::vector<int> take() {
    std::vector<int> sigs;
    unsigned char buf[64];
    ssize_t n;
    while ((n = ::read(read_.get(), buf, sizeof buf)) > 0) sigs.insert(sigs.end(), buf, buf + n);
    return sigs;
  }

 private:
  net::Fd read_, write_;
  struct sigaction old_int_ {}, old_term_ {};
};

struct RankProc {
  int rank = 0;
  ChildProcess proc;
  LineBuffer out_lines, err_lines;
  std::ofstream log;
};

// What node 0 knows about another node's launcher.
struct Peer {
  bool joined = false, done = false, silent = false;
  int64_t beat = -1;
  Clock::time_point seen;  // when its heartbeat last moved
};

class Launch {
 public:
  explicit Launch(const LaunchOptions& o) : o_(o), start_(Clock::now()) {}
  LaunchResult run();

 private:
  void open_store();
  void join_job();
  std::vector<std::string> child_env(int local_rank) const;
  void spawn_ranks();
  [[noreturn]] void abandon_spawned(const std::string& why);
  [[noreturn]] void give_up(const std::string& why);
  void loop();
  bool finished(Clock::time_point now);
  void read_output(RankProc& r, bool is_err);
  void emit(RankProc& r, bool is_err, std::string_view line);
  void reap(Clock::time_point now);
  void on_signals();
  void stop(const std::string& why, bool post, int sig = SIGTERM);
  void escalate(Clock::time_point now);
  void watch_store(Clock::time_point now);
  void watch_peers(Clock::time_point now);
  void post_done();
  std::string store_endpoint() const { return net::endpoint(o_.master_addr, o_.master_port); }
  double timeout_s() const { return double(o_.timeout.count()) / 1000; }

  LaunchOptions o_;
  Clock::time_point start_;
  std::optional<SignalPipe> signals_;
  std::unique_ptr<StoreServer> server_;  // node 0 only; outlives store_ (declared first)
  std::unique_ptr<Store> store_;
  bool store_lost_ = false;
  std::vector<RankProc> ranks_;
  std::map<int, Peer> peers_;  // node 0 only
  Clock::time_point next_store_check_, next_beat_, kill_at_, stopped_at_, all_exited_at_;
  bool all_exited_ = false, stopping_ = false, killed_ = false, done_posted_ = false;
  std::string error_;
};

LaunchResult Launch::run() {
  open_store();
  join_job();
  spawn_ranks();
  loop();
  return LaunchResult{error_.empty(), error_};
}

void Launch::open_store() {
  if (o_.node_rank == 0) {
    try {
      server_ = std::make_unique<StoreServer>(listen_host_for(o_.master_addr), o_.master_port);
    } catch (const Error& e) {
      fail(ErrorKind::Distributed, e.what(), " (pick another --master-port)");
    }
    o_.master_port = server_->port();
  }
  store_ = Store::connect(o_.master_addr, o_.master_port, -1, o_.timeout);
  store_->set_timeout(o_.timeout);
}

// Registers this node; refuses a second launcher with the same --node-rank
// and a node whose shape differs from node 0's (rank numbers would clash).
void Launch::join_job() {
  if (store_->add(node_key("joined", o_.node_rank), 1) > 1)
    fail(ErrorKind::InvalidArgument, "another launcher already joined this job as --node-rank ", o_.node_rank,
         " (store at ", store_endpoint(), ")");
  std::string shape = str(o_.nnodes, " node(s) x ", o_.nproc_per_node, " process(es)");
  if (o_.node_rank == 0) {
    store_->set(node_key("shape", 0), shape);
  } else {
    std::string theirs = store_->get(node_key("shape", 0));
    if (theirs != shape)
      give_up(str("--nnodes/--nproc-per-node differ between launchers: ", shape, " here, ", theirs, " on node 0"));
  }
  for (int k = 1; k < o_.nnodes && o_.node_rank == 0; ++k) peers_[k].seen = start_;
}

std::vector<std::string> Launch::child_env(int local_rank) const {
  int world = o_.nnodes * o_.nproc_per_node;
  std::vector<std::pair<std::string, std::string>> ours = {
      {"RANK", std::to_string(o_.node_rank * o_.nproc_per_node + local_rank)},
      {"WORLD_SIZE", std::to_string(world)},
      {"LOCAL_RANK", std::to_string(local_rank)},
      {"LOCAL_WORLD_SIZE", std::to_string(o_.nproc_per_node)},
      {"GROUP_RANK", std::to_string(o_.node_rank)},
      {"GROUP_WORLD_SIZE", std::to_string(o_.nnodes)},
      {"MASTER_ADDR", o_.master_addr},
      {"MASTER_PORT", std::to_string(o_.master_port)},
      {"TESSERA_LAUNCHER", "1"},
      {"TESSERA_STORE_HOSTED", "1"},
  };
  // Ours replace inherited ones; an inherited TESSERA_STORE_PORT would point
  // the ranks away from the store this launcher serves.
  std::set<std::string> drop = {"TESSERA_STORE_PORT"};
  for (auto& [k, v] : ours) drop.insert(k);
  std::vector<std::string> env;
  for (char** e = environ; e && *e; ++e) {
    std::string_view kv(*e);
    if (!drop.count(std::string(kv.substr(0, kv.find('='))))) env.emplace_back(kv);
  }
  for (auto& [k, v] : ours) env.push_back(k + "=" + v);
  return env;
}

void Launch::spawn_ranks() {
  std::filesystem::path dir(o_.log_dir);
  if (!o_.log_dir.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec) give_up(str("--log-dir ", o_.log_dir, ": ", ec.message()));
  }
  signals_.emplace();
  ranks_.reserve(size_t(o_.nproc_per_node));
  for (int local = 0; local < o_.nproc_per_node; ++local) {
    RankProc r;
    r.rank = o_.node_rank * o_.nproc_per_node + local;
    if (!o_.log_dir.empty()) {
      std::filesystem::path file = dir / str("rank", r.rank, ".log");
      r.log.open(file, std::ios::trunc);
      if (!r.log) abandon_spawned(str("--log-dir: cannot write ", file.string()));
    }
    try {
      r.proc = ChildProcess::spawn(o_.program, child_env(local));
    } catch (const Error& e) {
      abandon_spawned(e.what());
    }
    ranks_.push_back(std::move(r));
  }
}

// A rank could not start: end those that did, then give up.
void Launch::abandon_spawned(const std::string& why) {
  for (RankProc& r : ranks_) r.proc.signal_group(SIGKILL);
  for (RankProc& r : ranks_)
    while (!r.proc.poll_exit()) std::this_thread::sleep_for(1ms);
  give_up(why);
}

// Fails before the job ran, telling the other launchers so they stop too
// (their ranks would wait in rendezvous for ours).
void Launch::give_up(const std::string& why) {
  error_ = o_.nnodes > 1 ? str("node ", o_.node_rank, ": ", why) : why;
  try {
    store_->set(kAbortKey, error_);
  } catch (const Error&) {
    store_lost_ = true;  // they will notice our missing heartbeat instead
  }
  post_done();
  fail(ErrorKind::Distributed, error_);
}

void Launch::loop() {
  std::vector<pollfd> fds;
  std::vector<std::pair<RankProc*, bool>> owners;  // fds[i + 1] belongs to owners[i]
  for (;;) {
    Clock::time_point now = Clock::now();
    if (finished(now)) return;
    fds.assign(1, pollfd{signals_->fd(), POLLIN, 0});
    owners.clear();
    for (RankProc& r : ranks_)
      for (bool is_err : {false, true})
        if (net::Fd& fd = is_err ? r.proc.stderr_pipe() : r.proc.stdout_pipe(); fd.valid()) {
          fds.push_back({fd.get(), POLLIN, 0});
          owners.emplace_back(&r, is_err);
        }
    if (::poll(fds.data(), fds.size(), int(kTick.count())) > 0) {
      if (fds[0].revents) on_signals();
      for (size_t i = 0; i < owners.size(); ++i)
        if (fds[i + 1].revents) read_output(*owners[i].first, owners[i].second);
    }
    now = Clock::now();
    reap(now);
    escalate(now);
    if (now >= next_store_check_) {
      watch_store(now);
      next_store_check_ = now + kStoreEvery;
    }
  }
}

bool Launch::finished(Clock::time_point now) {
  if (!all_exited_) return false;
  bool pipes_open = false;
  for (RankProc& r : ranks_) pipes_open |= r.proc.stdout_pipe().valid() || r.proc.stderr_pipe().valid();
  if (pipes_open && now < all_exited_at_ + kDrainGrace) return false;
  for (RankProc& r : ranks_)
    for (bool is_err : {false, true}) {
      net::Fd& fd = is_err ? r.proc.stderr_pipe() : r.proc.stdout_pipe();
      if (!fd.valid()) continue;
      (is_err ? r.err_lines : r.out_lines).finish([&](std::string_view l) { emit(r, is_err, l); });
      fd.reset();
    }
  post_done();
  // Node 0 serves the store: it stays until the other nodes are done with it.
  if (o_.node_rank != 0 || store_lost_) return true;
  // Once stopping, a node that never joined or went silent will never be done either.
  bool peers_done = true;
  for (auto& [k, p] : peers_) peers_done &= p.done || p.silent || (stopping_ && !p.joined);
  return peers_done || (stopping_ && now >= stopped_at_ + kPeerStopGrace);
}

void Launch::read_output(RankProc& r, bool is_err) {
  net::Fd& fd = is_err ? r.proc.stderr_pipe() : r.proc.stdout_pipe();
  LineBuffer& lines = is_err ? r.err_lines : r.out_lines;
  auto sink = [&](std::string_view l) { emit(r, is_err, l); };
  char buf[65536];
  ssize_t n = ::read(fd.get(), buf, sizeof buf);
  if (n > 0) {
    lines.feed(std::string_view(buf, size_t(n)), sink);
  } else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
    lines.finish(sink);
    fd.reset();
  }
}

void Launch::emit(RankProc& r, bool is_err, std::string_view line) {
  std::ostream& os = is_err ? *o_.err : *o_.out;
  os << "[rank " << r.rank << "]: " << line << '\n' << std::flush;
  // Flushed per line: the log must hold everything up to a crash.
  if (r.log.is_open()) r.log << line << '\n' << std::flush;
}

void Launch::reap(Clock::time_point now) {
  bool all = true;
  for (RankProc& r : ranks_) {
    if (!r.proc.exited() && r.proc.poll_exit() && !exited_cleanly(r.proc.wait_status())) {
      std::string where = o_.nnodes > 1 ? str(" on node ", o_.node_rank) : "";
      stop(str("rank ", r.rank, " (pid ", r.proc.pid(), ")", where, " ", describe_wait_status(r.proc.wait_status())), true);
    }
    all &= r.proc.exited();
  }
  if (all && !all_exited_) {
    all_exited_ = true;
    all_exited_at_ = now;
  }
}

void Launch::on_signals() {
  for (int sig : signals_->take()) {
    if (!stopping_) {
      stop(str("interrupted by ", signal_name(sig), "; stopped this node's ranks"), true, sig);
    } else if (!killed_) {
      // A second signal: the user is out of patience.
      for (RankProc& r : ranks_)
        if (!r.proc.exited()) r.proc.signal_group(SIGKILL);
      killed_ = true;
    }
  }
}

// Stops the local ranks with `sig` (SIGKILL follows after kKillGrace) and,
// when the failure is ours to report, posts it for the other launchers.
// The first reason is the one reported; later ones are its consequences.
void Launch::stop(const std::string& why, bool post, int sig) {
  if (stopping_) return;
  stopping_ = true;
  error_ = why;
  stopped_at_ = Clock::now();
  kill_at_ = stopped_at_ + kKillGrace;
  for (RankProc& r : ranks_)
    if (!r.proc.exited()) r.proc.signal_group(sig);
  if (!post || store_lost_) return;
  try {
    store_->set(kAbortKey, why);
  } catch (const Error&) {
    store_lost_ = true;
  }
}

void Launch::escalate(Clock::time_point now) {
  if (!stopping_ || killed_ || now < kill_at_) return;
  for (RankProc& r : ranks_)
    if (!r.proc.exited()) {
      *o_.err << "tessera launch: rank " << r.rank << " (pid " << r.proc.pid() << ") did not stop within "
              << std::chrono::duration_cast<std::chrono::seconds>(kKillGrace).count() << " s; sending SIGKILL" << std::endl;
      r.proc.signal_group(SIGKILL);
    }
  killed_ = true;
}

void Launch::watch_store(Clock::time_point now) {
  if (store_lost_) return;
  try {
    if (now >= next_beat_) {
      store_->add(node_key("beat", o_.node_rank), 1);
      next_beat_ = now + std::min<std::chrono::milliseconds>(kHeartbeatEvery, o_.timeout / 4);
    }
    if (!stopping_ && store_->check({kAbortKey})) stop(store_->get(kAbortKey), false);
    if (o_.node_rank == 0) watch_peers(now);
  } catch (const Error& e) {
    store_lost_ = true;
    stop(str("lost the job's store at ", store_endpoint(), " (has node 0's launcher exited?): ", e.what()), false);
  }
}

// Node 0 gives up on nodes that never join, or whose launcher goes silent,
// after --timeout.
void Launch::watch_peers(Clock::time_point now) {
  std::vector<int> never_joined;
  for (auto& [k, p] : peers_) {
    if (!p.joined && !(p.joined = store_->check({node_key("joined", k)}))) {
      if (now - start_ > o_.timeout) never_joined.push_back(k);
      continue;
    }
    if (p.done || (p.done = store_->check({node_key("done", k)}))) continue;
    int64_t beat = store_->add(node_key("beat", k), 0);
    if (beat != p.beat) {
      p.beat = beat;
      p.seen = now;
    } else if (!p.silent && now - p.seen > o_.timeout) {
      p.silent = true;
      stop(str("node ", k, "'s launcher stopped responding (no heartbeat for ", timeout_s(), " s)"), true);
    }
  }
  if (!never_joined.empty() && !stopping_)
    stop(str("node(s) ", format_ranks(never_joined), " never joined: no launcher with that --node-rank reached the store at ",
             store_endpoint(), " within --timeout ", timeout_s(), " s"),
         true);
}

void Launch::post_done() {
  if (done_posted_ || store_lost_) return;
  done_posted_ = true;
  try {
    store_->set(node_key("done", o_.node_rank), error_.empty() ? "ok" : "failed");
  } catch (const Error&) {
    store_lost_ = true;
  }
}

}  // namespace

LaunchResult launch(const LaunchOptions& options) {
  Launch job(resolve_launch_options(options));
  return job.run();
}

}  // namespace tessera::dist
