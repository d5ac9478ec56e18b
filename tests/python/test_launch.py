"""`tessera launch` end to end: ranks and their variables, prefixed output,
log files, failures named with their exit code or signal, two launchers on
loopback simulating two nodes, signal forwarding, bad flags.

The CLI binary is $TESSERA_BIN (default build/tessera). Programs are `sh -c`
one-liners, so each test runs in well under a few seconds."""
import os
import random
import re
import signal
import socket
import subprocess
import time

import pytest

BIN = os.environ.get("TESSERA_BIN", "build/tessera")


def free_port():
    """A port nothing listens on now, below Linux's ephemeral range (32768+) so
    that no port-0 listener or outgoing connection can take it before the
    launcher binds it."""
    while True:
        port = random.randrange(20000, 32000)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
                return port
            except OSError:
                pass


def launch(*args, timeout=20):
    start = time.monotonic()
    p = subprocess.run([BIN, "launch", *args], capture_output=True, text=True, timeout=timeout)
    return p, time.monotonic() - start


def popen(*args):
    return subprocess.Popen([BIN, "launch", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


ECHO_VARS = 'echo "RANK=$RANK WORLD_SIZE=$WORLD_SIZE LOCAL_RANK=$LOCAL_RANK"'


@pytest.mark.parametrize("n", [2, 3])
def test_ranks_print_their_variables(n):
    p, _ = launch("--nproc-per-node", str(n), "--", "sh", "-c", ECHO_VARS)
    assert p.returncode == 0, p.stderr
    lines = set(p.stdout.splitlines())
    assert lines == {f"[rank {r}]: RANK={r} WORLD_SIZE={n} LOCAL_RANK={r}" for r in range(n)}


def test_program_without_double_dash_keeps_its_flags():
    p, _ = launch("--nproc_per_node", "2", "sh", "-c", 'echo "$RANK $LOCAL_WORLD_SIZE $TESSERA_LAUNCHER"')
    assert p.returncode == 0, p.stderr
    assert sorted(p.stdout.splitlines()) == ["[rank 0]: 0 2 1", "[rank 1]: 1 2 1"]


def test_stdout_and_stderr_are_prefixed_separately():
    p, _ = launch("--nproc-per-node", "2", "--", "sh", "-c", 'echo out $RANK; echo err $RANK >&2; printf "no newline $RANK"')
    assert p.returncode == 0, p.stderr
    assert sorted(p.stdout.splitlines()) == ["[rank 0]: no newline 0", "[rank 0]: out 0", "[rank 1]: no newline 1", "[rank 1]: out 1"]
    assert sorted(p.stderr.splitlines()) == ["[rank 0]: err 0", "[rank 1]: err 1"]


def test_log_dir_gets_one_file_per_rank(tmp_path):
    logs = tmp_path / "logs"
    p, _ = launch("--nproc-per-node", "2", "--log-dir", str(logs), "--", "sh", "-c", "echo out $RANK; echo err $RANK >&2")
    assert p.returncode == 0, p.stderr
    for r in range(2):
        assert (logs / f"rank{r}.log").read_text().splitlines() == [f"out {r}", f"err {r}"]


def test_rank_exit_code_fails_the_launch_and_stops_the_others():
    p, took = launch("--nproc-per-node", "3", "--", "sh", "-c", 'if [ "$RANK" = 1 ]; then exit 3; fi; sleep 30')
    assert p.returncode != 0
    assert re.search(r"tessera: error: rank 1 \(pid \d+\) exited with code 3", p.stderr), p.stderr
    assert took < 5


def test_rank_killed_by_signal_is_named_and_the_others_stop_quickly():
    p, took = launch("--nproc-per-node", "3", "--", "sh", "-c", 'if [ "$RANK" = 2 ]; then kill -9 $$; fi; sleep 30')
    assert p.returncode != 0
    assert re.search(r"tessera: error: rank 2 \(pid \d+\) killed by signal SIGKILL", p.stderr), p.stderr
    assert took < 5


def test_rank_that_ignores_sigterm_is_killed():
    p, took = launch("--nproc-per-node", "2", "--", "sh", "-c",
                     'if [ "$RANK" = 0 ]; then sleep 0.3; exit 1; fi; trap "" TERM; while :; do sleep 0.1; done')
    assert p.returncode != 0
    assert "rank 0" in p.stderr and "exited with code 1" in p.stderr
    assert "did not stop within 3 s; sending SIGKILL" in p.stderr
    assert took < 8


def test_two_nodes_on_loopback_give_global_ranks():
    port = str(free_port())
    prog = ["--", "sh", "-c", ECHO_VARS + '" GROUP_RANK=$GROUP_RANK"']
    node1 = popen("--nnodes", "2", "--node-rank", "1", "--nproc-per-node", "2", "--master-port", port, *prog)
    node0 = popen("--nnodes", "2", "--node_rank", "0", "--nproc-per-node", "2", "--master_port", port, *prog)
    out0, err0 = node0.communicate(timeout=20)
    out1, err1 = node1.communicate(timeout=20)
    assert node0.returncode == 0, err0
    assert node1.returncode == 0, err1
    lines = set(out0.splitlines()) | set(out1.splitlines())
    assert lines == {f"[rank {r}]: RANK={r} WORLD_SIZE=4 LOCAL_RANK={r % 2} GROUP_RANK={r // 2}" for r in range(4)}
    assert all(line.startswith(("[rank 0]", "[rank 1]")) for line in out0.splitlines())


def test_failure_on_one_node_stops_the_other():
    port = str(free_port())
    prog = ["--", "sh", "-c", 'if [ "$RANK" = 3 ]; then sleep 0.3; exit 7; fi; sleep 30']
    start = time.monotonic()
    node0 = popen("--nnodes", "2", "--node-rank", "0", "--nproc-per-node", "2", "--rdzv-endpoint", f"127.0.0.1:{port}", *prog)
    node1 = popen("--nnodes", "2", "--node-rank", "1", "--nproc-per-node", "2", "--rdzv-endpoint", f"127.0.0.1:{port}", *prog)
    _, err0 = node0.communicate(timeout=20)
    _, err1 = node1.communicate(timeout=20)
    assert time.monotonic() - start < 6
    for rc, err in ((node0.returncode, err0), (node1.returncode, err1)):
        assert rc != 0
        assert re.search(r"rank 3 \(pid \d+\) on node 1 exited with code 7", err), err


def wait_for_lines(proc, n):
    return [proc.stdout.readline() for _ in range(n)]


def test_silent_node_is_given_up_after_the_timeout():
    port = str(free_port())
    prog = ["--timeout", "1", "--", "sh", "-c", "echo up; sleep 30"]
    node0 = popen("--nnodes", "2", "--node-rank", "0", "--nproc-per-node", "1", "--master-port", port, *prog)
    node1 = popen("--nnodes", "2", "--node-rank", "1", "--nproc-per-node", "1", "--master-port", port, *prog)
    assert "up" in wait_for_lines(node1, 1)[0]
    node1.send_signal(signal.SIGSTOP)  # a hung launcher: no more heartbeats
    start = time.monotonic()
    try:
        _, err0 = node0.communicate(timeout=10)
    finally:
        node1.send_signal(signal.SIGCONT)
    assert time.monotonic() - start < 4
    assert node0.returncode != 0
    assert "node 1's launcher stopped responding (no heartbeat for 1 s)" in err0, err0
    _, err1 = node1.communicate(timeout=10)  # once resumed, it sees why and stops its rank
    assert node1.returncode != 0
    assert "node 1's launcher stopped responding" in err1 or "lost the job's store" in err1, err1


def test_losing_node_0_stops_the_other_nodes():
    port = str(free_port())
    node0 = popen("--nnodes", "2", "--node-rank", "0", "--nproc-per-node", "1", "--master-port", port,
                  "--", "sh", "-c", "echo up; sleep 3")
    node1 = popen("--nnodes", "2", "--node-rank", "1", "--nproc-per-node", "1", "--master-port", port,
                  "--", "sh", "-c", "echo up; sleep 30")
    assert "up" in wait_for_lines(node1, 1)[0]
    node0.kill()  # its store goes with it (its rank is orphaned and ends by itself)
    node0.communicate(timeout=10)
    _, err1 = node1.communicate(timeout=10)
    assert node1.returncode != 0
    assert f"lost the job's store at 127.0.0.1:{port}" in err1, err1


def test_node_that_never_joins_times_out():
    p, took = launch("--nnodes", "2", "--nproc-per-node", "1", "--master-port", str(free_port()), "--timeout", "1",
                     "--", "sh", "-c", "sleep 30")
    assert p.returncode != 0
    assert "node(s) 1 never joined" in p.stderr, p.stderr
    assert took < 5


def test_mismatched_nodes_are_refused():
    port = str(free_port())
    node0 = popen("--nnodes", "2", "--node-rank", "0", "--nproc-per-node", "2", "--master-port", port, "--timeout", "3",
                  "--", "sh", "-c", "sleep 30")
    p, _ = launch("--nnodes", "2", "--node-rank", "1", "--nproc-per-node", "3", "--master-port", port, "--", "true")
    _, err0 = node0.communicate(timeout=10)  # node 0 stops by itself, for the same reason
    message = "differ between launchers: 2 node(s) x 3 process(es) here, 2 node(s) x 2 process(es) on node 0"
    for rc, err in ((p.returncode, p.stderr), (node0.returncode, err0)):
        assert rc != 0
        assert "node 1: --nnodes/--nproc-per-node " + message in err, err


def test_sigint_is_forwarded_to_the_ranks():
    node = popen("--nproc-per-node", "2", "--", "sh", "-c", 'trap "echo got INT; exit 5" INT; echo ready; sleep 30 & wait')
    ready = [node.stdout.readline() for _ in range(2)]
    assert all("ready" in line for line in ready), ready
    node.send_signal(signal.SIGINT)
    out, err = node.communicate(timeout=10)
    assert node.returncode != 0
    assert sorted(out.splitlines()) == ["[rank 0]: got INT", "[rank 1]: got INT"]
    assert "interrupted by SIGINT" in err


@pytest.mark.parametrize("args, message", [
    (["--rdzv-backend", "etcd", "--", "true"], "--rdzv-backend 'etcd' is not supported"),
    (["--nproc-per-node", "2"], "no program to launch: put it after '--'"),
    (["--nnodes", "2", "--node-rank", "2", "--", "true"], "--node-rank 2 is not in [0, 2)"),
    (["--nproc-per-node", "0", "--", "true"], "--nproc-per-node 0: must be at least 1"),
    (["--rdzv-endpoint", "host:port", "--", "true"], "'port' is not a port number"),
    (["--rdzv-endpoint", "h:1", "--master-port", "2", "--", "true"], "not both"),
    (["--timeout", "0", "--", "true"], "--timeout 0: must be a positive"),
    (["--", "/nonexistent/program"], "cannot start '/nonexistent/program': No such file or directory"),
])
def test_bad_flags_are_clear_errors(args, message):
    p, _ = launch(*args)
    assert p.returncode != 0
    assert p.stderr.startswith("tessera: error: "), p.stderr
    assert message in p.stderr, p.stderr
