"""The tessera CLI as the Python tests drive it: find the binary, build, run,
and read back the one-line error the CLI contract promises on failure.

Contract (tools/, README): `tessera build MODEL.onnx -o OUT.tsr`,
`tessera run ENGINE.tsr --input name=f.npy ... | --inputs all.npz --output out.npz`;
on error one stderr line starting `tessera: error:`, a non-zero exit and no
output file left behind.
"""
import os
import subprocess
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
ERROR_PREFIX = "tessera: error:"
WARNING_PREFIX = "tessera: warning:"


def binary_path():
    """$TESSERA_BIN, else build/tessera in the repository root."""
    return Path(os.environ.get("TESSERA_BIN") or REPO / "build" / "tessera").resolve()


class Tessera:
    def __init__(self, binary):
        self.binary = str(binary)

    def __call__(self, *args, timeout=600, env=None):
        """env: variables set for this call on top of the environment."""
        full = {**os.environ, **env} if env else None
        return subprocess.run([self.binary, *map(str, args)], capture_output=True, text=True, timeout=timeout, env=full)

    def build(self, model, engine, *extra):
        return self("build", model, "-o", engine, *extra)

    def run(self, engine, output, inputs=None, inputs_npz=None):
        """inputs: {name: path of a .npy}; inputs_npz: one .npz holding them all."""
        args = ["run", engine]
        for name, path in (inputs or {}).items():
            args += ["--input", f"{name}={path}"]
        if inputs_npz is not None:
            args += ["--inputs", inputs_npz]
        return self(*args, "--output", output)

    # The steps a parity test expects to succeed: fail with tessera's own message.
    def build_ok(self, model, engine, *extra):
        p = self.build(model, engine, *extra)
        assert p.returncode == 0, f"tessera build {Path(model).name} failed ({p.returncode}): {p.stderr.strip()}"
        assert Path(engine).is_file(), f"tessera build exited 0 but wrote no {engine}"
        return p

    def run_ok(self, engine, output, inputs=None, inputs_npz=None):
        """Run and return the outputs as {name: array}."""
        output = Path(output)
        assert not output.exists(), f"{output} exists before the run; a stale file would hide a failure"
        p = self.run(engine, output, inputs, inputs_npz)
        assert p.returncode == 0, f"tessera run failed ({p.returncode}): {p.stderr.strip()}"
        assert output.is_file(), f"tessera run exited 0 but wrote no {output}"
        with np.load(output, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}


def error_line(proc):
    """Check the failure contract and return the error message (after the prefix).

    A non-zero exit, and stderr holding exactly one `tessera: error:` line and
    nothing else but `tessera: warning:` lines. A crash (signal) is not an error
    report: its negative return code fails here.
    """
    assert proc.returncode > 0, f"expected a non-zero exit, got {proc.returncode}; stderr: {proc.stderr.strip()!r}"
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith(ERROR_PREFIX)]
    others = [ln for ln in lines if not ln.startswith((ERROR_PREFIX, WARNING_PREFIX))]
    assert len(errors) == 1 and not others, f"expected one '{ERROR_PREFIX}' line on stderr, got: {proc.stderr!r}"
    return errors[0][len(ERROR_PREFIX):].strip()
