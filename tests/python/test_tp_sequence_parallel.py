"""Sequence parallelism (DTensor's SequenceParallel) on CPU ranks (gloo): norms
run on the sequence-sharded activation Shard(1), colwise layers with
input_layouts=Shard(1) all-gather it along dim 1, rowwise layers with
output_layouts=Shard(1) reduce-scatter along dim 1, and the residual stream
between stays sharded (a replicated operand such as the embedding output is
sliced to this rank's block, no communication). Checked against the
single-rank run on the Llama fixtures and against NumPy on a hand-built
norm → MLP → residual block; plans that cannot work are errors naming the node."""
import json
import re

import numpy as np
import onnx
import onnx.helper as h
import pytest
from onnx import TensorProto as T, numpy_helper

from test_tensor_parallel import BIN, assert_one_line_error, rel_l2, run, tp_vs_single

L = "lm.model.layers.*."
SP_PLAN = {
    L + "input_layernorm": "sequence_parallel",
    **{L + m: {"style": "colwise", "input_layouts": "Shard(1)"} for m in
       ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"]},
    L + "self_attn.o_proj": {"style": "rowwise", "output_layouts": "Shard(1)"},
    L + "post_attention_layernorm": "SequenceParallel",
    **{L + m: {"style": "colwise", "input_layouts": "Shard(1)"} for m in ["mlp.gate_proj", "mlp.up_proj"]},
    L + "mlp.down_proj": {"style": "rowwise", "output_layouts": "Shard(1)"},
    "lm.model.norm": "sequence_parallel",
    "lm.lm_head": {"style": "colwise", "input_layouts": "Shard(1)", "output_layouts": "Replicate()"},
}


def layers_of(engine):
    p = run(BIN, "inspect", engine)
    assert p.returncode == 0, p.stderr
    return dict((op, int(n)) for op, n in re.findall(r"(\w+) x(\d+)", re.search(r"^layers: .*$", p.stdout, re.M).group(0)))


@pytest.mark.parametrize("fixture,world", [("llama_torchscript", 2), ("llama_dynamo", 2), ("llama_torchscript", 4)])
def test_llama_sequence_parallel_matches_single_rank(tmp_path, fixture, world):
    tp_vs_single(tmp_path, fixture, SP_PLAN, world)
    ops = layers_of(tmp_path / "tp.rank1.tsr")
    # per layer: one all-gather before q/k/v (shared), one before gate/up; o/down reduce-scatter; lm_head in and out
    assert ops.get("AllGather") == 6 and ops.get("ReduceScatter") == 4 and "AllReduce" not in ops, ops


def test_llama_vocab_parallel_embedding_reduce_scatters_the_sequence(tmp_path):
    plan = {**SP_PLAN, "lm.model.embed_tokens": {"style": "rowwise", "output_layouts": "Shard(1)"}}
    tp_vs_single(tmp_path, "llama_torchscript", plan, 2)
    ops = layers_of(tmp_path / "tp.rank0.tsr")
    assert ops.get("ReduceScatter") == 5 and "AllReduce" not in ops, ops


EPS = 1e-5


def norm_mlp_block(path, seq, hidden=8, ff=16):
    """x[2,seq,hidden] → RMS norm (module "norm") → fc1 → Relu → fc2 → + x; returns the weights."""
    g_, w1, w2 = (np.random.randn(hidden).astype(np.float32), np.random.randn(hidden, ff).astype(np.float32),
                  np.random.randn(ff, hidden).astype(np.float32))
    c = lambda name, v: numpy_helper.from_array(np.array(v), name)
    nodes = [h.make_node("Pow", ["x", "two"], ["p"], name="/norm/Pow"),
             h.make_node("ReduceMean", ["p", "axes"], ["m"], keepdims=1, name="/norm/ReduceMean"),
             h.make_node("Add", ["m", "eps"], ["me"], name="/norm/Add"),
             h.make_node("Sqrt", ["me"], ["s"], name="/norm/Sqrt"),
             h.make_node("Div", ["x", "s"], ["n0"], name="/norm/Div"),
             h.make_node("Mul", ["n0", "norm.weight"], ["n"], name="/norm/Mul"),
             h.make_node("MatMul", ["n", "fc1.weight"], ["a"], name="/fc1/MatMul"),
             h.make_node("Relu", ["a"], ["b"], name="/act/Relu"),
             h.make_node("MatMul", ["b", "fc2.weight"], ["o"], name="/fc2/MatMul"),
             h.make_node("Add", ["x", "o"], ["y"], name="/residual/Add")]
    inits = [c("two", np.float32(2)), c("axes", np.array([-1], np.int64)), c("eps", np.float32(EPS)),
             numpy_helper.from_array(g_, "norm.weight"), numpy_helper.from_array(w1, "fc1.weight"),
             numpy_helper.from_array(w2, "fc2.weight")]
    g = h.make_graph(nodes, "block", [h.make_tensor_value_info("x", T.FLOAT, [2, seq, hidden])],
                     [h.make_tensor_value_info("y", T.FLOAT, [2, seq, hidden])], inits)
    onnx.save(h.make_model(g, opset_imports=[h.make_opsetid("", 18)]), str(path))
    return g_, w1, w2


def block_reference(x, g_, w1, w2):
    n = x / np.sqrt((x * x).mean(-1, keepdims=True) + EPS) * g_
    return x + np.maximum(n @ w1, 0) @ w2


BLOCK_PLAN = {"norm": "sequence_parallel", "fc1": {"style": "colwise", "input_layouts": "Shard(1)"},
              "fc2": {"style": "rowwise", "output_layouts": "Shard(1)"}}


def build_block(tmp_path, plan, seq=6, world=2):
    w = norm_mlp_block(tmp_path / "m.onnx", seq)
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    return run(BIN, "build", tmp_path / "m.onnx", "-o", tmp_path / "tp.tsr", "--tp", world, "--plan", tmp_path / "plan.json"), w


def test_norm_mlp_block_matches_numpy(tmp_path):
    """The graph input and the output are replicated in the model; the output comes back as this rank's rows (Shard(1))."""
    p, w = build_block(tmp_path, BLOCK_PLAN)
    assert p.returncode == 0, p.stderr
    assert layers_of(tmp_path / "tp.rank0.tsr").get("ReduceScatter") == 1
    x = np.random.randn(2, 6, 8).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    p = run(BIN, "launch", "--nproc-per-node", 2, "--", BIN, "run", f"{tmp_path}/tp.rank{{rank}}.tsr",
            "--input", f"x={tmp_path}/x.npy", "-o", f"{tmp_path}/y{{rank}}.npy")
    assert p.returncode == 0, p.stdout + p.stderr
    got = np.concatenate([np.load(tmp_path / f"y{r}.npy") for r in range(2)], axis=1)
    assert got.shape == x.shape and rel_l2(got, block_reference(x, *w)) <= 1e-5


@pytest.mark.parametrize("plan,needles", [
    # the sequence (5) does not divide by 2 ranks
    (BLOCK_PLAN, ["/fc2/MatMul", "dim 1 of its output (5) does not divide by the TP degree 2"]),
    ({**BLOCK_PLAN, "fc2": "rowwise"}, ["/norm/", "(5) does not divide by the TP degree 2", "sequence length"]),
])
def test_sequence_not_divisible_by_ranks_names_the_node(tmp_path, plan, needles):
    p, _ = build_block(tmp_path, plan, seq=5)
    assert_one_line_error(p, *needles)
    assert not list(tmp_path.glob("tp*.tsr"))


@pytest.mark.parametrize("plan,needles", [
    ({**BLOCK_PLAN, "fc1": "colwise"}, ["/fc1/MatMul", "give it input_layouts=Shard(1)"]),
    ({"fc1": {"style": "colwise", "input_layouts": "Shard(1)"}, "fc2": "rowwise"},
     ["/fc1/MatMul", "input_layouts=Shard(1) but its input 'n' is replicated"]),
    ({**BLOCK_PLAN, "fc1": "sequence_parallel"}, ["'fc1' is a linear layer", "/fc1/MatMul"]),
    ({**BLOCK_PLAN, "mlp.norm": "sequence_parallel"}, ["'mlp.norm' matches no module"]),
])
def test_bad_sequence_parallel_plans_name_the_node(tmp_path, plan, needles):
    p, _ = build_block(tmp_path, plan)
    assert_one_line_error(p, *needles)
    assert not list(tmp_path.glob("tp*.tsr"))
