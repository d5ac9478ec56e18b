"""Issue 4 (distributed runtime), lines that had no test of their own:

* `tessera launch --rdzv-backend c10d --rdzv-endpoint host:port` and
  `--master-addr/--master-port` across two launchers on loopback, and what the
  ranks are told (MASTER_ADDR, MASTER_PORT);
* `tessera bench-comm` on CPU ranks (gloo): a row per collective and size;
* `tessera run` of a model holding collectives when the ranks are started the
  way `torchrun --no-python` and `mpirun` start them (no tessera launcher: the
  environment says who is who and rank 0 hosts the store), against NumPy;
* in that setting, a rank that never starts, and a rank SIGKILLed while the
  other waits in a collective, make the survivor fail within --timeout naming
  it (the C++ side of these is tests/cpp/audit_4_collectives_env_test.cc).
"""
import os
import re
import signal
import subprocess
import time

import numpy as np
import pytest

from test_distributed_run import collective_model
from test_launch import free_port  # noqa: F401  (test_audit_6 imports it from here)
from tsr_cli import binary_path

BIN = str(binary_path())
RANK_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "GROUP_RANK", "MASTER_ADDR", "MASTER_PORT",
             "TORCHELASTIC_RUN_ID", "TESSERA_LAUNCHER", "TESSERA_STORE_HOSTED", "TESSERA_STORE_PORT")


def kill_rank_1_once_it_reads(ranks, fifo, timeout):
    """Rank 1 has joined and blocks reading `fifo`; rank 0 goes on into the
    job and waits for it. SIGKILL rank 1: rank 0 must fail within its
    --timeout (`timeout` s), naming rank 1."""
    writer = wait_for_reader(fifo)
    time.sleep(0.3)  # rank 0 reaches the point where it waits for rank 1
    assert ranks[1].poll() is None and ranks[0].poll() is None
    ranks[1].send_signal(signal.SIGKILL)
    os.close(writer)
    start = time.monotonic()
    _, err = ranks[0].communicate(timeout=30)
    ranks[1].communicate(timeout=10)
    assert time.monotonic() - start < timeout + 3
    assert ranks[0].returncode != 0
    assert re.search(r"tessera: error: .*rank 1 is gone", err), err


def popen_launch(*args):
    return subprocess.Popen([BIN, "launch", *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


SHOW = ["--", "sh", "-c", 'echo "RANK=$RANK MASTER_ADDR=$MASTER_ADDR MASTER_PORT=$MASTER_PORT"']


@pytest.mark.parametrize("how", ["rdzv", "master"])
def test_two_nodes_by_rdzv_endpoint_or_master_flags(how):
    port = free_port()
    if how == "rdzv":
        where = ["--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{port}"]
    else:
        where = ["--master-addr", "127.0.0.1", "--master-port", port]
    nodes = [popen_launch("--nnodes", 2, "--node-rank", n, "--nproc-per-node", 2, *where, *SHOW) for n in (1, 0)]
    outs = []
    for p in nodes:
        out, err = p.communicate(timeout=30)
        assert p.returncode == 0, err
        outs += out.splitlines()
    assert sorted(outs) == [f"[rank {r}]: RANK={r} MASTER_ADDR=127.0.0.1 MASTER_PORT={port}" for r in range(4)]


@pytest.mark.parametrize("world", [2, 3])
def test_bench_comm_gloo_prints_every_collective_and_size(world):
    p = subprocess.run([BIN, "launch", "--nproc-per-node", str(world), "--", BIN, "bench-comm", "--backend", "gloo",
                        "--min-bytes", "8K", "--max-bytes", "32K", "--iters", "3", "--warmup", "1"],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    lines = p.stdout.splitlines()
    assert f"[rank 0]: # tessera bench-comm: {world} ranks, backend gloo, float32" in lines, p.stdout
    rows = [ln.split()[2:] for ln in lines if ln.startswith("[rank 0]: ") and not ln.startswith("[rank 0]: #")]
    assert not [ln for ln in lines if not ln.startswith("[rank 0]: ")], "only rank 0 prints the table"
    ops = ["all_reduce", "all_gather", "reduce_scatter", "all_to_all", "gather", "scatter", "broadcast"]
    assert [r[0] for r in rows] == [op for op in ops for _ in range(3)], p.stdout  # 8K, 16K, 32K each
    for op, size, us, algbw, busbw in rows:
        assert int(size) % (4 * world) == 0 and 8192 - 4 * world < int(size) <= 32768
        us, algbw, busbw = float(us), float(algbw), float(busbw)
        assert us > 0
        assert abs(algbw - int(size) / (us * 1e3)) <= 0.006  # printed with 2 decimals
        factor = 1.0 if op == "broadcast" else 2 * (world - 1) / world if op == "all_reduce" else (world - 1) / world
        assert abs(busbw - int(size) / (us * 1e3) * factor) <= 0.006  # nccl-tests' bus factors


@pytest.mark.parametrize("op", ["gather", "scatter"])
def test_bench_comm_gloo_rooted_collective_alone(op):
    p = subprocess.run([BIN, "launch", "--nproc-per-node", "2", "--", BIN, "bench-comm", "--backend", "gloo", "--op", op,
                        "--min-bytes", "8K", "--max-bytes", "8K", "--iters", "2", "--warmup", "1"],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    rows = [ln.split()[2:] for ln in p.stdout.splitlines() if ln.startswith("[rank 0]: ") and not ln.startswith("[rank 0]: #")]
    assert [r[:2] for r in rows] == [[op, "8192"]], p.stdout
    assert abs(float(rows[0][4]) - float(rows[0][3]) / 2) <= 0.01  # bus factor (n-1)/n on 2 ranks (2 decimals each)


def test_bench_comm_unknown_collective_is_one_error_before_rendezvous():
    # No launcher, no store: the name is checked before any rank joins.
    p = subprocess.run([BIN, "bench-comm", "--backend", "gloo", "--op", "all_reduce", "--op", "allgather"],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode != 0
    errors = [ln for ln in p.stderr.splitlines() if ln.startswith("tessera: error:")]
    assert len(errors) == 1, p.stderr
    assert "--op 'allgather': unknown collective (expected all_reduce, all_gather, reduce_scatter, all_to_all, gather, scatter, " \
           "broadcast)" in errors[0], errors[0]


def rank_env(style, rank, world, port):
    env = {k: v for k, v in os.environ.items() if k not in RANK_VARS and not k.startswith(("OMPI_", "PMIX_", "SLURM_"))}
    if style == "torchrun":  # torchrun --no-python: the elastic agent sets these
        env.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(world),
                   GROUP_RANK="0", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), TORCHELASTIC_RUN_ID="audit")
    else:  # mpirun (OpenMPI)
        env.update(OMPI_COMM_WORLD_RANK=str(rank), OMPI_COMM_WORLD_SIZE=str(world), OMPI_COMM_WORLD_LOCAL_RANK=str(rank),
                   OMPI_COMM_WORLD_LOCAL_SIZE=str(world), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    return env


def wait_for_reader(fifo, timeout=30):
    """Block until some process has `fifo` open for reading; returns our
    writer's descriptor (keep it open: closing it would hand the reader EOF)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError:  # ENXIO: no reader yet
            assert time.monotonic() < deadline, f"nobody opened {fifo}"
            time.sleep(0.05)


def start_ranks(style, world, args, ranks=None):
    port = free_port()
    return [subprocess.Popen([BIN, *map(str, args)], env=rank_env(style, r, world, port), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
            for r in (range(world) if ranks is None else ranks)]


@pytest.mark.parametrize("style", ["torchrun", "mpirun"])
@pytest.mark.parametrize("world", [2, 3])
def test_collective_model_without_the_launcher(tmp_path, style, world):
    model, engine = tmp_path / "m.onnx", tmp_path / "m.tsr"
    collective_model(world, str(model))
    subprocess.run([BIN, "build", str(model), "-o", str(engine)], check=True, capture_output=True)
    xs = [np.random.randn(6, 6).astype(np.float32) for _ in range(world)]
    for r, x in enumerate(xs):
        np.save(tmp_path / f"x{r}.npy", x)
    ranks = start_ranks(style, world, ["run", engine, "--input", f"x={tmp_path}/x{{rank}}.npy",
                                       "-o", f"{tmp_path}/out{{rank}}.npz", "--timeout", 30])
    for r, p in enumerate(ranks):
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, f"rank {r}: {out}{err}"
    c = 6 // world
    for r in range(world):
        o = np.load(tmp_path / f"out{r}.npz")
        np.testing.assert_allclose(o["s"], sum(xs), rtol=1e-6, atol=1e-6)
        np.testing.assert_array_equal(o["g"], np.concatenate(xs, axis=1))
        np.testing.assert_array_equal(o["a"], np.concatenate([x[r * c:(r + 1) * c] for x in xs], axis=0))


@pytest.fixture
def engine2(tmp_path):
    model, engine = tmp_path / "m.onnx", tmp_path / "m.tsr"
    collective_model(2, str(model))
    subprocess.run([BIN, "build", str(model), "-o", str(engine)], check=True, capture_output=True)
    np.save(tmp_path / "x0.npy", np.ones((6, 6), np.float32))
    return engine


@pytest.mark.parametrize("style", ["torchrun", "mpirun"])
def test_rank_that_never_starts_times_out_naming_it(tmp_path, engine2, style):
    [p] = start_ranks(style, 2, ["run", engine2, "--input", f"x={tmp_path}/x0.npy", "-o", tmp_path / "o.npz",
                                 "--timeout", 1], ranks=[0])
    start = time.monotonic()
    _, err = p.communicate(timeout=30)
    assert time.monotonic() - start < 8
    assert p.returncode != 0
    assert err.startswith("tessera: error: ") and "1 of 2 ranks never joined: 1" in err, err
    assert not (tmp_path / "o.npz").exists()


@pytest.mark.parametrize("style", ["torchrun", "mpirun"])
def test_rank_killed_while_the_other_waits_in_a_collective(tmp_path, engine2, style):
    """Rank 1 joins the process group, then blocks reading its input (a FIFO
    nobody writes) while rank 0 waits for it in the AllReduce; rank 1 is then
    SIGKILLed. Rank 0 must fail within --timeout naming rank 1."""
    os.mkfifo(tmp_path / "x1.npy")
    ranks = start_ranks(style, 2, ["run", engine2, "--input", f"x={tmp_path}/x{{rank}}.npy",
                                   "-o", tmp_path / "o.npz", "--timeout", 5])
    kill_rank_1_once_it_reads(ranks, tmp_path / "x1.npy", timeout=5)
    assert not (tmp_path / "o.npz").exists()
