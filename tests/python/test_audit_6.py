"""Issue 6 (data parallelism), lines that had no test of their own:

* a rank killed by SIGKILL in the middle of a `run --dp` job (it has joined
  the process group; rank 0 has run its part and waits for it): under
  `tessera launch` the launcher exits non-zero naming it; under a
  torchrun-style environment with no tessera launcher, rank 0 fails within
  --timeout naming it. Either way no output file (or temporary) is left;
* the engine cache trusts no foreign entry (a valid engine of another model
  sitting at the entry's path): the entry records the key it was built for,
  so the foreign one is rebuilt, saying so under -v.
"""
import os
import re
import shutil
import signal
import subprocess
import time

import numpy as np

from test_audit_4 import free_port, kill_rank_1_once_it_reads, rank_env, wait_for_reader
from test_data_parallel import batch, engines, expected, load, mlp_model  # noqa: F401  (engines: fixture)
from tsr_cli import binary_path

BIN = str(binary_path())


def dp_args(tmp_path, n=9):
    """Rank 0 reads real inputs; rank 1's x is a FIFO nobody writes, so it
    blocks after joining the job, until it is killed."""
    good = batch(n)
    np.save(tmp_path / "x0.npy", good["x"])
    os.mkfifo(tmp_path / "x1.npy")
    np.save(tmp_path / "z.npy", good["z"])
    return ["--input", f"x={tmp_path}/x{{rank}}.npy", "--input", f"z={tmp_path}/z.npy"]


def no_leftovers(tmp_path, out):
    assert not out.exists()
    assert [t for t in tmp_path.iterdir() if ".tmp." in t.name] == []


def test_rank_sigkilled_mid_run_under_launch(tmp_path, engines):
    out = tmp_path / "out.npz"
    # Each rank's shell writes its pid (which exec keeps) and execs tessera.
    prog = (f'echo $$ > {tmp_path}/pid$RANK; exec {BIN} run {engines["sym"]} --dp --timeout 10 '
            + " ".join(dp_args(tmp_path)) + f" -o {out}")
    launcher = subprocess.Popen([BIN, "launch", "--nproc-per-node", "2", "--", "sh", "-c", prog], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
    writer = wait_for_reader(tmp_path / "x1.npy")  # rank 1 has joined the job and reads its input
    time.sleep(0.3)  # rank 0 runs its part and waits for rank 1
    os.kill(int((tmp_path / "pid1").read_text()), signal.SIGKILL)
    os.close(writer)
    start = time.monotonic()
    _, err = launcher.communicate(timeout=60)
    assert time.monotonic() - start < 10
    assert launcher.returncode != 0
    p = subprocess.CompletedProcess(launcher.args, launcher.returncode, "", err)
    assert re.search(r"tessera: error: rank 1 \(pid \d+\) killed by signal SIGKILL", p.stderr), p.stderr
    no_leftovers(tmp_path, out)


def test_rank_sigkilled_mid_run_without_launcher(tmp_path, engines):
    out = tmp_path / "out.npz"
    args = [BIN, "run", str(engines["sym"]), "--dp", "--timeout", "5", *map(str, dp_args(tmp_path)), "-o", str(out)]
    port = free_port()
    ranks = [subprocess.Popen(args, env=rank_env("torchrun", r, 2, port), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for r in range(2)]
    kill_rank_1_once_it_reads(ranks, tmp_path / "x1.npy", timeout=5)
    no_leftovers(tmp_path, out)


def test_foreign_cache_entry_is_not_trusted(tmp_path):
    model, other, cache = tmp_path / "model.onnx", tmp_path / "other.onnx", tmp_path / "cache"
    mlp_model(model, "N", np.random.randn(8, 4).astype(np.float32))
    mlp_model(other, "N", np.random.randn(8, 4).astype(np.float32))
    inputs = batch(4)
    np.savez(tmp_path / "all.npz", **inputs)
    run = [BIN, "run", str(model), "--cache-dir", str(cache), "-v", "--inputs", str(tmp_path / "all.npz")]
    assert subprocess.run(run + ["-o", str(tmp_path / "a.npz")], capture_output=True, timeout=60).returncode == 0
    [entry] = [f for f in cache.iterdir() if f.name.endswith(".tsr")]
    p = subprocess.run([BIN, "build", str(other), "-o", str(tmp_path / "other.tsr")], capture_output=True, timeout=60)
    assert p.returncode == 0
    shutil.copyfile(tmp_path / "other.tsr", entry)  # a valid engine, but not this model's
    p = subprocess.run(run + ["-o", str(tmp_path / "b.npz")], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stderr.count("rebuilding") == 1 and "built engine" in p.stderr, p.stderr
    np.testing.assert_allclose(load(tmp_path / "b.npz")["y"], expected(model, inputs), rtol=1e-5, atol=1e-6)
