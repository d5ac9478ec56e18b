"""Model parity and bad-input tests through the tessera CLI.

Parity: every fixture in tests/fixtures/models (made by tests/fixtures/make_models.py
from PyTorch with both exporters) is checked three ways, fp32 rel. L2 <= 1e-4:
  (a) ONNX Runtime vs the saved PyTorch output: the fixture itself is sound;
  (b) tessera build + run on the saved inputs vs PyTorch and vs ONNX Runtime;
  (c) tessera vs ONNX Runtime on fresh random inputs of the same shapes and
      value ranges (DESIGN.md §5: fresh inputs each run).

Bad input (DESIGN.md §6): each case must exit non-zero with one
`tessera: error:` line that names the thing at fault, and leave no output file.
"""
import re
import shutil
from functools import lru_cache
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from tsr_cli import REPO, error_line
from tsr_compare import assert_outputs_close

FIXTURES = REPO / "tests" / "fixtures" / "models"
MODEL_TOL = 1e-4
NAMES = sorted(p.name[: -len(".onnx")] for p in FIXTURES.glob("*.onnx"))


def load_npz(path):
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def fixture_paths(name):
    return FIXTURES / f"{name}.onnx", FIXTURES / f"{name}.inputs.npz", FIXTURES / f"{name}.torch.npz"


@lru_cache(maxsize=None)
def ort_session(name):
    return ort.InferenceSession(str(FIXTURES / f"{name}.onnx"), providers=["CPUExecutionProvider"])


def run_ort(name, feeds):
    session = ort_session(name)
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, feeds)))


def fresh_inputs(saved):
    """Same shapes and dtypes, new values: floats standard normal, integers
    (token ids, attention masks) uniform over the saved inputs' range."""
    rng = np.random.default_rng()
    fresh = {}
    for name, value in saved.items():
        if value.dtype.kind == "f":
            fresh[name] = rng.standard_normal(value.shape).astype(value.dtype)
        elif value.dtype.kind in "iu":
            fresh[name] = rng.integers(int(value.min()), int(value.max()) + 1, value.shape).astype(value.dtype)
        else:
            fresh[name] = value.copy()
    return fresh


def test_fixtures_exist():
    assert NAMES, f"no fixtures in {FIXTURES}: run tests/fixtures/make_models.py"
    for name in NAMES:
        for path in fixture_paths(name):
            assert path.is_file(), f"fixture {name} lacks {path.name}"


@pytest.mark.parametrize("name", NAMES)
def test_fixture_ort_matches_torch(name):
    _, inputs, torch_out = fixture_paths(name)
    actual = run_ort(name, load_npz(inputs))
    assert_outputs_close(actual, load_npz(torch_out), tol=MODEL_TOL, label=f"{name} ORT vs PyTorch")


@pytest.mark.parametrize("name", NAMES)
def test_tessera_matches_torch_and_ort(name, tessera, tmp_path):
    model, inputs, torch_out = fixture_paths(name)
    engine = tmp_path / f"{name}.tsr"
    tessera.build_ok(model, engine)

    saved = load_npz(inputs)
    actual = tessera.run_ok(engine, tmp_path / "out.npz", inputs_npz=inputs)
    assert_outputs_close(actual, load_npz(torch_out), tol=MODEL_TOL, label=f"{name} vs PyTorch")
    assert_outputs_close(actual, run_ort(name, saved), tol=MODEL_TOL, label=f"{name} vs ORT")

    fresh = fresh_inputs(saved)
    np.savez(tmp_path / "fresh.npz", **fresh)
    actual = tessera.run_ok(engine, tmp_path / "fresh_out.npz", inputs_npz=tmp_path / "fresh.npz")
    assert_outputs_close(actual, run_ort(name, fresh), tol=MODEL_TOL, label=f"{name} vs ORT, fresh inputs")


# ------------------------------------------------------------------ bad input

def listing(directory):
    return sorted(p.name for p in Path(directory).iterdir())


def assert_fails(proc, *names, leaves=()):
    """Non-zero exit, one error line naming every string in `names`, and none
    of the paths in `leaves` on disk."""
    msg = error_line(proc)
    for n in names:
        assert str(n) in msg, f"error message does not name {n!r}: {msg!r}"
    for path in leaves:
        assert not Path(path).exists(), f"{path} was left behind after a failure"
    return msg


def assert_build_fails(tessera, model, tmp_path, *names):
    out_dir = tmp_path / "out"
    out_dir.mkdir(exist_ok=True)
    engine = out_dir / "model.tsr"
    msg = assert_fails(tessera.build(model, engine), *names, leaves=[engine])
    assert listing(out_dir) == [], f"build failure left files behind: {listing(out_dir)}"
    return msg


SMALL_INPUT = "x_in"
SMALL_SHAPE = [3, 5]


def small_model(path):
    """x_in [3,5] float32 + a [256,3,5] weight: elementwise only, so it builds
    with any tessera, and the weight makes up most of the engine file."""
    w = numpy_helper.from_array(np.random.default_rng().standard_normal((256, 3, 5)).astype(np.float32), "w")
    graph = helper.make_graph([helper.make_node("Add", [SMALL_INPUT, "w"], ["y"], name="add")], "small",
                              [helper.make_tensor_value_info(SMALL_INPUT, TensorProto.FLOAT, SMALL_SHAPE)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [256] + SMALL_SHAPE)], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


@pytest.fixture
def small_engine(tessera, tmp_path):
    engine = tmp_path / "small.tsr"
    tessera.build_ok(small_model(tmp_path / "small.onnx"), engine)
    return engine


def save_npy(path, value):
    np.save(path, value)
    return path


def test_truncated_onnx(tessera, tmp_path):
    src = FIXTURES / "mlp_torchscript.onnx"
    data = src.read_bytes()
    model = tmp_path / "truncated.onnx"
    model.write_bytes(data[: len(data) // 2])
    assert_build_fails(tessera, model, tmp_path, "truncated.onnx")


def test_not_an_onnx_file(tessera, tmp_path):
    model = tmp_path / "random_bytes.onnx"
    model.write_bytes(np.random.default_rng().integers(0, 256, 4096, dtype=np.uint8).tobytes())
    assert_build_fails(tessera, model, tmp_path, "random_bytes.onnx")


def test_missing_model_file(tessera, tmp_path):
    assert_build_fails(tessera, tmp_path / "no_such_model.onnx", tmp_path, "no_such_model.onnx")


def external_data_fixture():
    for name in NAMES:
        m = onnx.load(str(FIXTURES / f"{name}.onnx"), load_external_data=False)
        for t in m.graph.initializer:
            if t.data_location == TensorProto.EXTERNAL:
                location = {e.key: e.value for e in t.external_data}["location"]
                return name, location
    return None, None


def test_missing_external_data(tessera, tmp_path):
    name, location = external_data_fixture()
    assert name, "no fixture keeps its weights in an external data file"
    model = tmp_path / f"{name}.onnx"
    shutil.copy(FIXTURES / f"{name}.onnx", model)  # without its data file
    assert not (tmp_path / location).exists()
    assert_build_fails(tessera, model, tmp_path, location)


def test_unsupported_ops_listed_in_one_error(tessera, tmp_path):
    f32 = TensorProto.FLOAT
    nodes = [
        helper.make_node("Relu", ["x"], ["a"], name="relu_ok"),
        helper.make_node("Foo", ["a"], ["b"], name="foo_first", domain="ai.example"),
        helper.make_node("Bar", ["b"], ["c"], name="bar_only", domain="ai.example"),
        helper.make_node("Foo", ["c"], ["y"], name="foo_second", domain="ai.example"),
    ]
    graph = helper.make_graph(nodes, "unsupported", [helper.make_tensor_value_info("x", f32, [2, 3])],
                              [helper.make_tensor_value_info("y", f32, [2, 3])])
    model = helper.make_model(graph, ir_version=8, opset_imports=[helper.make_opsetid("", 17),
                                                                  helper.make_opsetid("ai.example", 1)])
    path = tmp_path / "unsupported.onnx"
    onnx.save(model, path)
    msg = assert_build_fails(tessera, path, tmp_path, "Foo", "Bar", "foo_first", "foo_second", "bar_only")
    assert "relu_ok" not in msg, f"a supported node is listed as unsupported: {msg!r}"


def run_fails(tessera, engine, tmp_path, inputs, *names):
    out = tmp_path / "result.npz"
    msg = assert_fails(tessera.run(engine, out, inputs=inputs), *names, leaves=[out])
    return msg


def test_wrong_input_name(tessera, small_engine, tmp_path):
    x = save_npy(tmp_path / "x.npy", np.zeros(SMALL_SHAPE, np.float32))
    run_fails(tessera, small_engine, tmp_path, {"not_an_input": x}, "not_an_input")


def test_missing_input(tessera, small_engine, tmp_path):
    run_fails(tessera, small_engine, tmp_path, {}, SMALL_INPUT)


def test_wrong_input_dtype(tessera, small_engine, tmp_path):
    x = save_npy(tmp_path / "x.npy", np.zeros(SMALL_SHAPE, np.int64))
    run_fails(tessera, small_engine, tmp_path, {SMALL_INPUT: x}, SMALL_INPUT, "float32", "int64")


def test_wrong_input_shape(tessera, small_engine, tmp_path):
    x = save_npy(tmp_path / "x.npy", np.zeros([4, 7], np.float32))
    msg = run_fails(tessera, small_engine, tmp_path, {SMALL_INPUT: x}, SMALL_INPUT)
    # Any spelling of a shape ([3,5], 3x5, (3, 5)) will do; both must be there.
    assert re.search(r"(?<!\d)3\D{1,3}5(?!\d)", msg), f"expected shape [3,5] not in {msg!r}"
    assert re.search(r"(?<!\d)4\D{1,3}7(?!\d)", msg), f"received shape [4,7] not in {msg!r}"


def test_truncated_npy_input(tessera, small_engine, tmp_path):
    full = save_npy(tmp_path / "full.npy", np.zeros(SMALL_SHAPE, np.float32))
    data = full.read_bytes()
    cut = tmp_path / "cut.npy"
    cut.write_bytes(data[: len(data) - 20])
    run_fails(tessera, small_engine, tmp_path, {SMALL_INPUT: cut}, "cut.npy")


def test_corrupt_engine(tessera, small_engine, tmp_path):
    data = bytearray(small_engine.read_bytes())
    data[len(data) // 2] ^= 0xFF
    bad = tmp_path / "corrupt.tsr"
    bad.write_bytes(bytes(data))
    x = save_npy(tmp_path / "x.npy", np.zeros(SMALL_SHAPE, np.float32))
    run_fails(tessera, bad, tmp_path, {SMALL_INPUT: x}, "corrupt.tsr")


def test_truncated_engine(tessera, small_engine, tmp_path):
    data = small_engine.read_bytes()
    bad = tmp_path / "short.tsr"
    bad.write_bytes(data[: len(data) * 2 // 3])
    x = save_npy(tmp_path / "x.npy", np.zeros(SMALL_SHAPE, np.float32))
    run_fails(tessera, bad, tmp_path, {SMALL_INPUT: x}, "short.tsr")


@pytest.mark.parametrize("kind", ["onnx_model", "random_bytes"])
def test_foreign_file_as_engine(tessera, tmp_path, kind):
    foreign = tmp_path / f"foreign_{kind}.tsr"
    if kind == "onnx_model":
        foreign.write_bytes((FIXTURES / "mlp_torchscript.onnx").read_bytes())
    else:
        foreign.write_bytes(np.random.default_rng().integers(0, 256, 8192, dtype=np.uint8).tobytes())
    x = save_npy(tmp_path / "x.npy", np.zeros(SMALL_SHAPE, np.float32))
    run_fails(tessera, foreign, tmp_path, {SMALL_INPUT: x}, foreign.name)


def test_small_model_runs(tessera, small_engine, tmp_path):
    """The bad-input tests above only mean something if the good path works."""
    x = np.random.default_rng().standard_normal(SMALL_SHAPE).astype(np.float32)
    actual = tessera.run_ok(small_engine, tmp_path / "out.npz", inputs={SMALL_INPUT: save_npy(tmp_path / "x.npy", x)})
    w = numpy_helper.to_array(onnx.load(str(tmp_path / "small.onnx")).graph.initializer[0])
    assert_outputs_close(actual, {"y": x + w})
