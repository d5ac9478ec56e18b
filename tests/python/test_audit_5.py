"""Issue 5 (tensor parallelism), lines that had no test of their own:

* the layouts of the seed's plan on an ONNX model: colwise with
  input_layouts=Shard(0) all-gathers, rowwise with output_layouts=Shard(0)
  (and Shard(1)) reduce-scatters — the collectives are in the engine, each
  rank feeds and gets its own rows/columns, equal to the single-rank run;
* each rank's engine holds only its shard of the weights;
* the `replicate` style, the DTensor class names (ColwiseParallel,
  RowwiseParallel), use_local_output, and the settings refused with a reason
  (sequence_parallel layouts other than Shard(1), use_local_output=false);
* module names with a layer index (`layers.0.mlp.gate_proj`, as PyTorch
  exports them) select that layer only;
* the Llama fixtures on 4 ranks (hand-written MLP plan and --plan auto, which
  shards attention too: the fixture's 2 KV heads are replicated over pairs of
  ranks), the dynamo export
  with the hand-written attention + MLP plan on 2 ranks;
* the simple example prints its timings.
"""
import json
import os
import re
import subprocess

import numpy as np
import onnx
import onnx.helper as h
import pytest
from onnx import TensorProto as T, numpy_helper

from test_tensor_parallel import LLAMA_PLAN, rel_l2, tp_vs_single
from tsr_cli import binary_path

BIN = str(binary_path())
EXAMPLE = str(binary_path().parent / "tensor_parallel_simple_example")


def run(*args, timeout=180):
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=timeout)


def two_layer(path, rows=4):
    """x[rows,8] -> fc1 [8,16] -> Relu -> fc2 [16,8]; returns the weights."""
    w1, w2 = np.random.randn(8, 16).astype(np.float32), np.random.randn(16, 8).astype(np.float32)
    nodes = [h.make_node("MatMul", ["x", "fc1.weight"], ["a"], name="/fc1/MatMul"),
             h.make_node("Relu", ["a"], ["b"], name="/act/Relu"),
             h.make_node("MatMul", ["b", "fc2.weight"], ["y"], name="/fc2/MatMul")]
    g = h.make_graph(nodes, "two", [h.make_tensor_value_info("x", T.FLOAT, [rows, 8])],
                     [h.make_tensor_value_info("y", T.FLOAT, [rows, 8])],
                     [numpy_helper.from_array(w1, "fc1.weight"), numpy_helper.from_array(w2, "fc2.weight")])
    onnx.save(h.make_model(g, opset_imports=[h.make_opsetid("", 18)]), str(path))
    return w1, w2


def build(tmp_path, plan, tp, rows=4):
    w = two_layer(tmp_path / "m.onnx", rows)
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    p = run(BIN, "build", tmp_path / "m.onnx", "-o", tmp_path / "tp.tsr", "--tp", tp, "--plan", tmp_path / "plan.json")
    return p, w


def inspect(engine):
    p = run(BIN, "inspect", engine)
    assert p.returncode == 0, p.stderr
    return p.stdout


def layers_of(text):
    return dict((op, int(n)) for op, n in re.findall(r"(\w+) x(\d+)", re.search(r"^layers: .*$", text, re.M).group(0)))


def launch_run(world, tmp_path, engine, inputs, out):
    return run(BIN, "launch", "--nproc-per-node", world, "--", BIN, "run", engine, "--input", inputs, "-o", out)


SEED_PLAN = {"fc1": {"style": "colwise", "input_layouts": "Shard(0)"},
             "fc2": {"style": "rowwise", "output_layouts": "Shard(0)"}}


def check_mlp_on_2_ranks(tmp_path, w1, w2):
    """Both ranks of tp.rank{r}.tsr give relu(x @ w1) @ w2 on fresh x."""
    x = np.random.randn(4, 8).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    p = launch_run(2, tmp_path, f"{tmp_path}/tp.rank{{rank}}.tsr", f"x={tmp_path}/x.npy", f"{tmp_path}/y{{rank}}.npy")
    assert p.returncode == 0, p.stdout + p.stderr
    for r in range(2):
        assert rel_l2(np.load(tmp_path / f"y{r}.npy"), np.maximum(x @ w1, 0) @ w2) <= 1e-5


@pytest.mark.parametrize("world", [2, 4])
def test_shard0_in_and_out_all_gather_and_reduce_scatter(tmp_path, world):
    """The seed's layouts on an ONNX model: each rank holds rows of x and of y."""
    rows = 8
    p, (w1, w2) = build(tmp_path, SEED_PLAN, world, rows)
    assert p.returncode == 0, p.stderr
    text = inspect(tmp_path / "tp.rank1.tsr")
    ops = layers_of(text)
    assert ops.get("AllGather") == 1 and ops.get("ReduceScatter") == 1 and "AllReduce" not in ops, text
    local = rows // world
    assert f"input  x: float32[{local},8]" in text and f"output y: float32[{local},8]" in text, text
    x = np.random.randn(rows, 8).astype(np.float32)
    for r in range(world):
        np.save(tmp_path / f"x{r}.npy", x[r * local:(r + 1) * local])
    p = run(BIN, "launch", "--nproc-per-node", world, "--", "sh", "-c",
            f"exec {BIN} run {tmp_path}/tp.rank$RANK.tsr --input x={tmp_path}/x$RANK.npy -o {tmp_path}/y{{rank}}.npy")
    assert p.returncode == 0, p.stdout + p.stderr
    want = np.maximum(x @ w1, 0) @ w2
    got = np.concatenate([np.load(tmp_path / f"y{r}.npy") for r in range(world)])
    assert got.shape == want.shape and rel_l2(got, want) <= 1e-5


def test_rowwise_output_shard1_reduce_scatters_columns(tmp_path):
    p, (w1, w2) = build(tmp_path, {"fc1": "colwise", "fc2": {"style": "rowwise", "output_layouts": "Shard(1)"}}, 2)
    assert p.returncode == 0, p.stderr
    text = inspect(tmp_path / "tp.rank0.tsr")
    assert layers_of(text).get("ReduceScatter") == 1 and "output y: float32[4,4]" in text, text
    x = np.random.randn(4, 8).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    p = run(BIN, "launch", "--nproc-per-node", 2, "--", "sh", "-c",
            f"exec {BIN} run {tmp_path}/tp.rank$RANK.tsr --input x={tmp_path}/x.npy -o {tmp_path}/y{{rank}}.npy")
    assert p.returncode == 0, p.stdout + p.stderr
    want = np.maximum(x @ w1, 0) @ w2
    got = np.concatenate([np.load(tmp_path / f"y{r}.npy") for r in range(2)], axis=1)
    assert rel_l2(got, want) <= 1e-5


@pytest.mark.parametrize("world", [2, 4])
def test_each_rank_engine_holds_only_its_shard(tmp_path, world):
    p, (w1, w2) = build(tmp_path, {"fc1": "colwise", "fc2": "rowwise"}, world)
    assert p.returncode == 0, p.stderr
    full = w1.nbytes + w2.nbytes
    for r in range(world):
        text = inspect(tmp_path / f"tp.rank{r}.tsr")
        assert f"weights: 2 tensors, {full // world} bytes" in text, text
        assert f"shard of rank {r} of {world}" in text
        assert re.search(rf"const %fc1\.weight\S*: float32\[8,{16 // world}\]", text), text
        assert re.search(rf"const %fc2\.weight\S*: float32\[{16 // world},8\]", text), text


def test_replicate_style_keeps_whole_weights_and_no_collectives(tmp_path):
    p, (w1, w2) = build(tmp_path, {"fc1": "replicate", "fc2": "replicate"}, 2)
    assert p.returncode == 0, p.stderr
    text = inspect(tmp_path / "tp.rank1.tsr")
    assert f"weights: 2 tensors, {w1.nbytes + w2.nbytes} bytes" in text, text
    assert not {"AllReduce", "AllGather", "ReduceScatter"} & set(layers_of(text)), text
    check_mlp_on_2_ranks(tmp_path, w1, w2)


def test_dtensor_class_names_and_use_local_output(tmp_path):
    plan = {"fc1": {"style": "ColwiseParallel", "use_local_output": True}, "fc2": "RowwiseParallel"}
    p, (w1, w2) = build(tmp_path, plan, 2)
    assert p.returncode == 0, p.stderr
    x = np.random.randn(4, 8).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    p = launch_run(2, tmp_path, f"{tmp_path}/tp.rank{{rank}}.tsr", f"x={tmp_path}/x.npy", f"{tmp_path}/y.npy")
    assert p.returncode == 0, p.stdout + p.stderr
    assert rel_l2(np.load(tmp_path / "y.npy"), np.maximum(x @ w1, 0) @ w2) <= 1e-5


@pytest.mark.parametrize("plan, message", [
    ({"fc1": {"style": "sequence_parallel", "input_layouts": "Shard(0)"}}, "its layouts are Shard(1), not Shard(0)"),
    ({"fc1": {"style": "SequenceParallel", "output_layouts": "Replicate()"}}, "its layouts are Shard(1), not Replicate()"),
    ({"fc1": "colwise", "fc2": {"style": "rowwise", "use_local_output": False}}, "use_local_output=false"),
    ({"fc1": {"style": "colwise", "output": "Shard(0)"}}, "unknown key 'output'"),
])
def test_styles_refused_with_a_reason(tmp_path, plan, message):
    p, _ = build(tmp_path, plan, 2)
    assert p.returncode != 0
    errors = [ln for ln in p.stderr.splitlines() if ln.startswith("tessera: error:")]
    assert len(errors) == 1 and message in errors[0] and "plan.json" in errors[0], p.stderr
    assert not list(tmp_path.glob("tp*.tsr"))


LLAMA_MLP = {f"lm.model.layers.*.mlp.{m}": s for m, s in
             [("gate_proj", "colwise"), ("up_proj", "colwise"), ("down_proj", "rowwise")]}


@pytest.mark.parametrize("world", [2, 4])
def test_layer_index_in_module_names_selects_that_layer(tmp_path, world):
    plan = {k.replace("layers.*", "layers.0"): v for k, v in LLAMA_MLP.items()}
    tp_vs_single(tmp_path, "llama_torchscript", plan, world)
    ops = layers_of(inspect(tmp_path / "tp.rank0.tsr"))
    assert ops.get("AllReduce") == 1, ops  # layer 0's down_proj only; layer 1 stays whole


def test_llama_mlp_plan_on_4_ranks(tmp_path):
    tp_vs_single(tmp_path, "llama_torchscript", LLAMA_MLP, 4)


def test_llama_auto_plan_on_4_ranks(tmp_path):
    tp_vs_single(tmp_path, "llama_torchscript", "auto", 4)
    plan = json.loads((tmp_path / "tp.plan.json").read_text())
    # 2 KV heads on 4 ranks: attention is sharded too, each KV head replicated on the 2 ranks whose query heads use it
    assert plan == {k: {"style": v} for k, v in LLAMA_PLAN.items()}


def test_llama_dynamo_attention_and_mlp_tp2(tmp_path):
    # The dynamo export names weights val_N and nodes node_linear_N; the module path comes from each node's
    # metadata_props ("namespace"), which the importer keeps as the node's scope.
    tp_vs_single(tmp_path, "llama_dynamo", LLAMA_PLAN, 2)
    assert layers_of(inspect(tmp_path / "tp.rank0.tsr")).get("AllReduce") == 4  # o_proj and down_proj of 2 layers


def test_llama_dynamo_auto_plan_names_modules(tmp_path):
    """--plan auto on the dynamo export writes PyTorch module paths (from the nodes' metadata), not val_N."""
    tp_vs_single(tmp_path, "llama_dynamo", "auto", 2)
    plan = json.loads((tmp_path / "tp.plan.json").read_text())
    assert plan == {k: {"style": v} for k, v in LLAMA_PLAN.items()}


def dynamo_style_two_layer(path, key):
    """two_layer's model as the dynamo exporter names it: weights val_N, nodes node_linear_N, the module path
    only in metadata_props `key` ("namespace" or "pkg.torch.onnx.name_scopes")."""
    w1, w2 = np.random.randn(8, 16).astype(np.float32), np.random.randn(16, 8).astype(np.float32)

    def meta(node, module, op):
        if key == "namespace":
            value = f": __main__.Net/{module}: torch.nn.modules.linear.Linear/{op}: aten.linear.default"
        else:
            value = repr(["", module, op])
        node.metadata_props.add(key=key, value=value)
        return node

    nodes = [meta(h.make_node("MatMul", ["x", "val_1"], ["a"], name="node_linear"), "fc1", "linear"),
             h.make_node("Relu", ["a"], ["b"], name="node_relu"),
             meta(h.make_node("MatMul", ["b", "val_2"], ["y"], name="node_linear_1"), "fc2", "linear_1")]
    g = h.make_graph(nodes, "two", [h.make_tensor_value_info("x", T.FLOAT, [4, 8])],
                     [h.make_tensor_value_info("y", T.FLOAT, [4, 8])],
                     [numpy_helper.from_array(w1, "val_1"), numpy_helper.from_array(w2, "val_2")])
    onnx.save(h.make_model(g, opset_imports=[h.make_opsetid("", 18)]), str(path))
    return w1, w2


@pytest.mark.parametrize("key", ["namespace", "pkg.torch.onnx.name_scopes"])
@pytest.mark.parametrize("plan", [{"fc1": "colwise", "fc2": "rowwise"}, {"val_1": "colwise", "val_2": "rowwise"}])
def test_module_path_from_node_metadata(tmp_path, key, plan):
    w1, w2 = dynamo_style_two_layer(tmp_path / "m.onnx", key)
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    p = run(BIN, "build", tmp_path / "m.onnx", "-o", tmp_path / "tp.tsr", "--tp", 2, "--plan", tmp_path / "plan.json")
    assert p.returncode == 0, p.stderr
    assert layers_of(inspect(tmp_path / "tp.rank0.tsr")).get("AllReduce") == 1
    check_mlp_on_2_ranks(tmp_path, w1, w2)


def test_simple_example_prints_its_timing():
    p = run(BIN, "launch", "--nproc-per-node", 2, "--", EXAMPLE)
    assert p.returncode == 0, p.stdout + p.stderr
    lines = [ln for ln in p.stdout.splitlines() if "rel. L2 vs single rank" in ln]
    assert len(lines) == 2, p.stdout
    for ln in lines:
        m = re.search(r"rel\. L2 vs single rank (\S+), p50 (\S+) ms sharded vs (\S+) ms single", ln)
        assert m, ln
        assert float(m.group(1)) <= 1e-5 and float(m.group(2)) > 0 and float(m.group(3)) > 0
