#include "dist/child_process.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "core/error.h"

namespace tessera::dist {

namespace {

std::vector<char*> c_strings(const std::vector<std::string>& v) {
  std::vector<char*> out;
  for (const std::string& s : v) out.push_back(const_cast<char*>(s.c_str()));
  out.push_back(nullptr);
  return out;
}

// posix_spawn's configuration objects, destroyed on every path.
struct SpawnSetup {
  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attr;
  SpawnSetup() {
    posix_spawn_file_actions_init(&actions);
    posix_spawnattr_init(&attr);
  }
  ~SpawnSetup() {
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
  }
};

void make_pipe(net::Fd& read_end, net::Fd& write_end) {
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) fail(ErrorKind::Distributed, "launcher: pipe2 failed: ", std::strerror(errno));
  read_end = net::Fd(p[0]);
  write_end = net::Fd(p[1]);
}

}  // namespace

ChildProcess ChildProcess::spawn(const std::vector<std::string>& argv, const std::vector<std::string>& env) {
  if (argv.empty()) fail(ErrorKind::InvalidArgument, "launcher: no program to start");
  ChildProcess c;
  net::Fd out_w, err_w;
  make_pipe(c.out_, out_w);
  make_pipe(c.err_, err_w);

  SpawnSetup s;
  posix_spawn_file_actions_addopen(&s.actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&s.actions, out_w.get(), 1);
  posix_spawn_file_actions_adddup2(&s.actions, err_w.get(), 2);
  // Own process group (pgid = pid); signals the launcher handles or ignores
  // go back to their defaults; nothing blocked.
  sigset_t defaults, none;
  sigemptyset(&defaults);
  for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGPIPE, SIGCHLD}) sigaddset(&defaults, sig);
  sigemptyset(&none);
  posix_spawnattr_setflags(&s.attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
  posix_spawnattr_setpgroup(&s.attr, 0);
  posix_spawnattr_setsigdefault(&s.attr, &defaults);
  posix_spawnattr_setsigmask(&s.attr, &none);

  std::vector<char*> cargv = c_strings(argv), cenv = c_strings(env);
  int rc = ::posix_spawnp(&c.pid_, cargv[0], &s.actions, &s.attr, cargv.data(), cenv.data());
  if (rc != 0) fail(ErrorKind::Distributed, "cannot start '", argv[0], "': ", std::strerror(rc));
  return c;  // the write ends close here: only the child holds them now
}

void ChildProcess::signal_group(int sig) const {
  if (pid_ > 0) ::kill(-pid_, sig);
}

bool ChildProcess::poll_exit() {
  if (exited_) return true;
  int status = 0;
  pid_t r = ::waitpid(pid_, &status, WNOHANG);
  if (r == pid_) {
    exited_ = true;
    status_ = status;
  }
  return exited_;
}

std::string signal_name(int sig) {
  const char* abbrev = sigabbrev_np(sig);
  return abbrev ? std::string("SIG") + abbrev : "signal " + std::to_string(sig);
}

std::string describe_wait_status(int status) {
  if (WIFSIGNALED(status)) return "killed by signal " + signal_name(WTERMSIG(status));
  return "exited with code " + std::to_string(WEXITSTATUS(status));
}

bool exited_cleanly(int status) { return WIFEXITED(status) && WEXITSTATUS(status) == 0; }

void LineBuffer::feed(std::string_view bytes, const Emit& emit) {
  pending_.append(bytes);
  size_t start = 0;
  for (;;) {
    size_t nl = pending_.find('\n', start);
    if (nl == std::string::npos) break;
    emit(std::string_view(pending_).substr(start, nl - start));
    start = nl + 1;
  }
  pending_.erase(0, start);
  while (pending_.size() >= kMaxLine) {
    emit(std::string_view(pending_).substr(0, kMaxLine));
    pending_.erase(0, kMaxLine);
  }
}

void LineBuffer::finish(const Emit& emit) {
  if (!pending_.empty()) emit(pending_);
  pending_.clear();
}

}  // namespace tessera::dist
