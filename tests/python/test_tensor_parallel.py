"""Tensor parallelism on CPU ranks (gloo): the seed's simple example, the MLP
fixtures sharded by a hand-written plan against the single-rank run, and the
errors a user gets for plans and engines that do not fit."""
import json
import os
import shutil
import subprocess

import numpy as np
import onnx
import onnx.helper as h
import pytest
from onnx import TensorProto as T, numpy_helper

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
BIN = os.environ.get("TESSERA_BIN", os.path.join(ROOT, "build", "tessera"))
EXAMPLE = os.path.join(os.path.dirname(os.path.abspath(BIN)), "tensor_parallel_simple_example")
FIXTURES = os.path.join(ROOT, "tests", "fixtures", "models")


def run(*args, timeout=180):
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=timeout)


def rel_l2(a, b):
    assert np.isfinite(a).all()
    return np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30)


@pytest.mark.parametrize("world", [2, 4])
def test_seed_simple_example(world):
    p = run(BIN, "launch", "--nproc-per-node", world, "--", EXAMPLE)
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stdout.count("rel. L2 vs single rank") == world


@pytest.mark.parametrize("args, message", [(["--target", "tpu"], "expected cpu or cuda"), (["--bogus"], "unknown argument"),
                                           (["--target"], "unknown argument")])
def test_seed_simple_example_bad_arguments(args, message):
    p = run(BIN, "launch", "--nproc-per-node", 2, "--", EXAMPLE, *args)
    assert p.returncode != 0
    assert message in p.stderr, p.stderr


def gpu_present():
    smi = shutil.which("nvidia-smi")
    return bool(smi) and subprocess.run([smi, "-L"], capture_output=True, text=True).returncode == 0


@pytest.mark.skipif(not gpu_present(), reason="no GPU visible: the example's cuda mode runs on the GPU machine")
def test_seed_simple_example_on_cuda():
    # Two ranks: on one GPU they share it and the collectives are host-staged over gloo; on two, NCCL.
    p = run(BIN, "launch", "--nproc-per-node", 2, "--", EXAMPLE, "--target", "cuda")
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stdout.count("rel. L2 vs single rank") == 2
    assert "(cuda, " in p.stdout


@pytest.mark.parametrize("fixture", ["mlp_torchscript", "mlp_dynamo"])
@pytest.mark.parametrize("world", [2, 4, 8])
def test_mlp_fixture_matches_single_rank(tmp_path, fixture, world):
    model = os.path.join(FIXTURES, fixture + ".onnx")
    (tmp_path / "plan.json").write_text(json.dumps({"0": "colwise", "2": {"style": "rowwise"}}))
    x = np.random.randn(4, 64).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    assert run(BIN, "build", model, "-o", tmp_path / "one.tsr").returncode == 0
    assert run(BIN, "run", tmp_path / "one.tsr", "--input", f"x={tmp_path}/x.npy", "-o", tmp_path / "one.npz").returncode == 0
    p = run(BIN, "build", model, "-o", f"{tmp_path}/tp{{rank}}.tsr", "--tp", world, "--plan", tmp_path / "plan.json")
    assert p.returncode == 0, p.stderr
    np.savez(tmp_path / "tp.npz", y=np.full((4, 64), np.nan, np.float32))  # poison
    p = run(BIN, "launch", "--nproc-per-node", world, "--", "sh", "-c",
            f"exec {BIN} run {tmp_path}/tp$RANK.tsr --input x={tmp_path}/x.npy -o {tmp_path}/tp.npz")
    assert p.returncode == 0, p.stdout + p.stderr
    one, tp = np.load(tmp_path / "one.npz"), np.load(tmp_path / "tp.npz")
    assert list(one.keys()) == list(tp.keys())
    for k in one:
        assert rel_l2(tp[k], one[k]) <= 1e-5


def two_layer_model(path, middle="Relu"):
    """x[4,8] → MatMul(fc1.weight[8,16]) → middle → MatMul(fc2.weight[16,8])."""
    w1 = numpy_helper.from_array(np.random.randn(8, 16).astype(np.float32), "fc1.weight")
    w2 = numpy_helper.from_array(np.random.randn(16, 8).astype(np.float32), "fc2.weight")
    nodes = [h.make_node("MatMul", ["x", "fc1.weight"], ["a"], name="/fc1/MatMul"),
             h.make_node(middle, ["a"], ["b"], name="/act/" + middle),
             h.make_node("MatMul", ["b", "fc2.weight"], ["y"], name="/fc2/MatMul")]
    g = h.make_graph(nodes, "two", [h.make_tensor_value_info("x", T.FLOAT, [4, 8])],
                     [h.make_tensor_value_info("y", T.FLOAT, [4, 8])], [w1, w2])
    onnx.save(h.make_model(g, opset_imports=[h.make_opsetid("", 18)]), path)


def build_tp(tmp_path, plan, middle="Relu", tp=2):
    two_layer_model(str(tmp_path / "m.onnx"), middle)
    (tmp_path / "plan.json").write_text(plan if isinstance(plan, str) else json.dumps(plan))
    return run(BIN, "build", tmp_path / "m.onnx", "-o", tmp_path / "m.tsr", "--tp", tp, "--plan", tmp_path / "plan.json")


def assert_one_line_error(p, *needles):
    assert p.returncode != 0
    lines = [l for l in p.stderr.splitlines() if l.startswith("tessera: error:")]
    assert len(lines) == 1, p.stderr
    for n in needles:
        assert n in lines[0], lines[0]


def test_unprovable_layout_names_the_node(tmp_path):
    p = build_tp(tmp_path, {"fc1": "colwise", "fc2": "rowwise"}, middle="Softmax")
    assert_one_line_error(p, "/act/Softmax", "cannot prove")
    assert not list(tmp_path.glob("*.tsr"))


def test_sharded_graph_output_is_refused(tmp_path):
    assert_one_line_error(build_tp(tmp_path, {"fc2": "colwise"}), "graph output 'y'", "rowwise")


def test_plan_entry_matching_nothing(tmp_path):
    assert_one_line_error(build_tp(tmp_path, {"fc1": "colwise", "fc2": "rowwise", "mlp.*": "colwise"}),
                          "'mlp.*' matches no linear layer", "fc1, fc2")


def test_bad_plan_files(tmp_path):
    assert_one_line_error(build_tp(tmp_path, "{not json"), "plan.json", "not valid JSON")
    assert_one_line_error(build_tp(tmp_path, {"fc1": "diagonal"}), "unknown style 'diagonal'")
    assert_one_line_error(build_tp(tmp_path, {"fc1": {"style": "colwise", "input_layouts": "Shard(x)"}}), "Shard(x)")
    assert_one_line_error(build_tp(tmp_path, {"fc1": "colwise", "fc2": "rowwise"}, tp=3), "does not divide by the TP degree 3")
    p = run(BIN, "build", tmp_path / "m.onnx", "-o", tmp_path / "m.tsr", "--tp", 2)
    assert_one_line_error(p, "--plan")


def test_wrong_rank_or_degree_is_refused(tmp_path):
    assert build_tp(tmp_path, {"fc1": "colwise", "fc2": "rowwise"}).returncode == 0
    np.save(tmp_path / "x.npy", np.ones((4, 8), np.float32))
    p = run(BIN, "launch", "--nproc-per-node", 2, "--", BIN, "run", tmp_path / "m.rank0.tsr",
            "--input", f"x={tmp_path}/x.npy", "-o", tmp_path / "o.npz")
    assert p.returncode != 0 and "holds TP rank 0's shard, but it is loaded by rank 1" in p.stdout + p.stderr
    p = run(BIN, "launch", "--nproc-per-node", 3, "--", BIN, "run", tmp_path / "m.rank0.tsr",
            "--input", f"x={tmp_path}/x.npy", "-o", tmp_path / "o.npz")
    assert p.returncode != 0 and "TP-2 build" in p.stdout + p.stderr


LLAMA_PLAN = {f"lm.model.layers.*.{m}": s for m, s in [
    ("self_attn.q_proj", "colwise"), ("self_attn.k_proj", "colwise"), ("self_attn.v_proj", "colwise"),
    ("self_attn.o_proj", "rowwise"), ("mlp.gate_proj", "colwise"), ("mlp.up_proj", "colwise"), ("mlp.down_proj", "rowwise")]}
GPT2_MLP_PLAN = {"lm.transformer.h.*.mlp.c_fc": "colwise", "lm.transformer.h.*.mlp.c_proj": "rowwise"}


def tp_vs_single(tmp_path, fixture, plan, world):
    model = os.path.join(FIXTURES, fixture + ".onnx")
    inputs = dict(np.load(os.path.join(FIXTURES, fixture + ".inputs.npz")))
    np.savez(tmp_path / "in.npz", **inputs)
    if plan != "auto":
        (tmp_path / "plan.json").write_text(json.dumps(plan))
    assert run(BIN, "build", model, "-o", tmp_path / "single.tsr").returncode == 0
    p = run(BIN, "run", tmp_path / "single.tsr", "--inputs", tmp_path / "in.npz", "-o", tmp_path / "single.npz")
    assert p.returncode == 0, p.stderr
    plan_arg = "auto" if plan == "auto" else tmp_path / "plan.json"
    p = run(BIN, "build", model, "-o", f"{tmp_path}/tp.tsr", "--tp", world, "--plan", plan_arg)
    assert p.returncode == 0, p.stderr
    p = run(BIN, "launch", "--nproc-per-node", world, "--", "sh", "-c",
            f"exec {BIN} run {tmp_path}/tp.rank$RANK.tsr --inputs {tmp_path}/in.npz -o {tmp_path}/tp.npz")
    assert p.returncode == 0, p.stdout + p.stderr
    one, tp = np.load(tmp_path / "single.npz"), np.load(tmp_path / "tp.npz")
    for k in one:
        assert rel_l2(tp[k], one[k]) <= 1e-5, k


def test_llama_attention_and_mlp_tp2_matches_single_rank(tmp_path):
    # Heads (4 query, 2 KV: GQA) split over 2 ranks: head reshapes and the KV expand are rewritten.
    tp_vs_single(tmp_path, "llama_torchscript", LLAMA_PLAN, 2)


@pytest.mark.parametrize("world", [2, 4])
def test_gpt2_mlp_tp_matches_single_rank(tmp_path, world):
    tp_vs_single(tmp_path, "gpt2_torchscript", GPT2_MLP_PLAN, world)


@pytest.mark.parametrize("fixture", ["llama_torchscript", "llama_dynamo"])
def test_llama_more_ranks_than_kv_heads(tmp_path, fixture):
    # 4 query heads, 2 KV heads on 4 ranks: each rank keeps the KV head its query head uses (k/v_proj sliced to
    # that head, so replicated on 2 ranks) and the head-repeat Expand repeats it for this rank's query head only.
    tp_vs_single(tmp_path, fixture, LLAMA_PLAN, 4)


def test_gpt2_fused_qkv_colwise_is_refused_at_the_split(tmp_path):
    (tmp_path / "plan.json").write_text(json.dumps({"lm.transformer.h.*.attn.c_attn": "colwise",
                                                    "lm.transformer.h.*.attn.c_proj": "rowwise"}))
    p = run(BIN, "build", os.path.join(FIXTURES, "gpt2_torchscript.onnx"), "-o", tmp_path / "m.tsr", "--tp", 2,
            "--plan", tmp_path / "plan.json")
    assert_one_line_error(p, "/attn/Split", "no sharding rule")


@pytest.mark.parametrize("fixture,world", [("llama_torchscript", 2), ("llama_dynamo", 2), ("gpt2_torchscript", 2),
                                           ("gpt2_dynamo", 2), ("gpt2_torchscript", 4), ("mlp_dynamo", 4)])
def test_auto_plan_matches_single_rank(tmp_path, fixture, world):
    tp_vs_single(tmp_path, fixture, "auto", world)
    plan = json.loads((tmp_path / "tp.plan.json").read_text())  # written for the user to read and edit
    styles = {v["style"] for v in plan.values()}
    assert styles == {"colwise", "rowwise"}, plan
    p = run(BIN, "inspect", tmp_path / "tp.rank1.tsr")
    assert p.returncode == 0 and f"shard of rank 1 of {world}" in p.stdout


def test_auto_plan_finds_llama_attention_and_mlp(tmp_path):
    tp_vs_single(tmp_path, "llama_torchscript", "auto", 2)
    plan = json.loads((tmp_path / "tp.plan.json").read_text())
    assert plan == {k: {"style": v} for k, v in LLAMA_PLAN.items()}


def test_auto_plan_with_nothing_to_shard(tmp_path):
    two_layer_model(str(tmp_path / "m.onnx"), middle="Softmax")  # softmax over the hidden features: not shardable
    p = run(BIN, "build", tmp_path / "m.onnx", "-o", tmp_path / "m.tsr", "--tp", 2, "--plan", "auto")
    assert_one_line_error(p, "--plan auto found no MLP or attention pattern")


@pytest.mark.parametrize("fixture,extra", [
    ("llama_torchscript", {**LLAMA_PLAN, "lm.model.embed_tokens": "rowwise",
                           "lm.lm_head": {"style": "colwise", "output_layouts": "Replicate()"}}),
    ("gpt2_torchscript", {**GPT2_MLP_PLAN, "lm.transformer.wte": "rowwise"}),
])
def test_vocab_parallel_embedding_and_lm_head(tmp_path, fixture, extra):
    tp_vs_single(tmp_path, fixture, extra, 2)


@pytest.mark.parametrize("rows", [7, 8])
@pytest.mark.parametrize("padding", [False, True])
def test_two_dp_by_two_tp_mesh_matches_one_rank(tmp_path, rows, padding):
    """`run --dp=2 --tp 2` on 4 ranks: TP inside each pair, DP across the pairs."""
    model = os.path.join(FIXTURES, "mlp_dynamo.onnx")  # fixed batch 4: micro-batches inside each DP part
    (tmp_path / "plan.json").write_text(json.dumps({"0": "colwise", "2": "rowwise"}))
    np.savez(tmp_path / "batch.npz", x=np.random.randn(rows, 64).astype(np.float32))
    assert run(BIN, "build", model, "-o", tmp_path / "one.tsr").returncode == 0
    assert run(BIN, "build", model, "-o", tmp_path / "tp.tsr", "--tp", 2, "--plan", tmp_path / "plan.json").returncode == 0
    p = run(BIN, "run", "--dp", tmp_path / "one.tsr", "--inputs", tmp_path / "batch.npz", "-o", tmp_path / "one.npz")
    assert p.returncode == 0, p.stderr
    extra = ["--apply-padding"] if padding else []
    p = run(BIN, "launch", "--nproc-per-node", 4, "--", BIN, "run", "--dp=2", "--tp", 2, *extra,
            f"{tmp_path}/tp.rank{{tp_rank}}.tsr", "--inputs", tmp_path / "batch.npz", "-o", tmp_path / "mesh.npz")
    assert p.returncode == 0, p.stdout + p.stderr
    one, mesh = np.load(tmp_path / "one.npz")["y"], np.load(tmp_path / "mesh.npz")["y"]
    assert mesh.shape == one.shape == (rows, 64)
    assert rel_l2(mesh, one) <= 1e-5


def test_mesh_errors(tmp_path):
    model = os.path.join(FIXTURES, "mlp_dynamo.onnx")
    (tmp_path / "plan.json").write_text(json.dumps({"0": "colwise", "2": "rowwise"}))
    assert run(BIN, "build", model, "-o", tmp_path / "tp.tsr", "--tp", 2, "--plan", tmp_path / "plan.json").returncode == 0
    np.savez(tmp_path / "batch.npz", x=np.random.randn(8, 64).astype(np.float32))
    args = ["--inputs", tmp_path / "batch.npz", "-o", tmp_path / "o.npz"]
    p = run(BIN, "launch", "--nproc-per-node", 4, "--", BIN, "run", "--dp=3", "--tp", 2, f"{tmp_path}/tp.rank{{tp_rank}}.tsr", *args)
    assert p.returncode != 0 and "--dp=3 x --tp 2 needs 6 ranks, but the job has 4" in p.stdout + p.stderr
    p = run(BIN, "launch", "--nproc-per-node", 2, "--", BIN, "run", "--dp", f"{tmp_path}/tp.rank{{rank}}.tsr", *args)
    assert p.returncode != 0 and "--tp B" in p.stdout + p.stderr
    assert not (tmp_path / "o.npz").exists()
