"""Tensor parallelism over grouped-query attention (GQA) with fewer KV heads
than ranks, on CPU ranks (gloo): each rank keeps the KV head its query heads
use (k/v_proj sliced to that head, so replicated over the ranks sharing it)
and the head-repeat Expand is rewritten to repeat it for this rank's query
heads only. A hand-built attention block (the exporters' reshape / transpose
/ unsqueeze / expand / reshape head repeat) is checked against NumPy for
several (query heads, KV heads, ranks); the Llama fixtures at TP=4 are in
test_tensor_parallel.py and test_audit_5.py. Head counts that neither divide
by nor into the ranks are an error naming the reshape."""
import json
import re

import numpy as np
import onnx
import onnx.helper as h
import pytest
from onnx import TensorProto as T, numpy_helper

from test_tensor_parallel import BIN, FIXTURES, assert_one_line_error, rel_l2, run, tp_vs_single, LLAMA_PLAN

B, S, D = 2, 4, 4  # batch, sequence, head dim
PLAN = {"attn.q_proj": "colwise", "attn.k_proj": "colwise", "attn.v_proj": "colwise", "attn.o_proj": "rowwise"}


def gqa_block(path, heads, kv):
    """x[B,S,C] → q/k/v_proj → heads → repeat K/V heads (GQA) → softmax(q kᵀ / √D) v → o_proj; returns the weights."""
    c, rep = heads * D, heads // kv
    rng = np.random.default_rng()
    w = {n: (rng.standard_normal((c, f)) / np.sqrt(c)).astype(np.float32)
         for n, f in [("q", c), ("k", kv * D), ("v", kv * D), ("o", c)]}
    i64 = lambda name, v: numpy_helper.from_array(np.array(v, np.int64), name)
    inits = [numpy_helper.from_array(w[n], f"attn.{n}_proj.weight") for n in "qkvo"]
    inits += [i64("heads_shape", [B, S, -1, D]), i64("unsq_axes", [2]), i64("rep_shape", [B, kv, rep, S, D]),
              i64("merged_shape", [B, heads, S, D]), i64("out_shape", [B, S, c]),
              numpy_helper.from_array(np.array(1 / np.sqrt(D), np.float32), "scale")]
    nodes = []
    for n in "qkv":
        nodes += [h.make_node("MatMul", ["x", f"attn.{n}_proj.weight"], [f"{n}0"], name=f"/attn/{n}_proj/MatMul"),
                  h.make_node("Reshape", [f"{n}0", "heads_shape"], [f"{n}1"], name=f"/attn/{n}_Reshape"),
                  h.make_node("Transpose", [f"{n}1"], [f"{n}2"], perm=[0, 2, 1, 3], name=f"/attn/{n}_Transpose")]
    for n in "kv":  # transformers' repeat_kv
        nodes += [h.make_node("Unsqueeze", [f"{n}2", "unsq_axes"], [f"{n}3"], name=f"/attn/{n}_Unsqueeze"),
                  h.make_node("Expand", [f"{n}3", "rep_shape"], [f"{n}4"], name=f"/attn/{n}_Expand"),
                  h.make_node("Reshape", [f"{n}4", "merged_shape"], [f"{n}5"], name=f"/attn/{n}_Reshape_repeat")]
    nodes += [h.make_node("Transpose", ["k5"], ["kt"], perm=[0, 1, 3, 2], name="/attn/k_TransposeT"),
              h.make_node("MatMul", ["q2", "kt"], ["s0"], name="/attn/MatMul"),
              h.make_node("Mul", ["s0", "scale"], ["s1"], name="/attn/Mul"),
              h.make_node("Softmax", ["s1"], ["p"], axis=-1, name="/attn/Softmax"),
              h.make_node("MatMul", ["p", "v5"], ["o0"], name="/attn/MatMul_1"),
              h.make_node("Transpose", ["o0"], ["o1"], perm=[0, 2, 1, 3], name="/attn/o_Transpose"),
              h.make_node("Reshape", ["o1", "out_shape"], ["o2"], name="/attn/o_Reshape"),
              h.make_node("MatMul", ["o2", "attn.o_proj.weight"], ["y"], name="/attn/o_proj/MatMul")]
    g = h.make_graph(nodes, "gqa", [h.make_tensor_value_info("x", T.FLOAT, [B, S, c])],
                     [h.make_tensor_value_info("y", T.FLOAT, [B, S, c])], inits)
    onnx.save(h.make_model(g, opset_imports=[h.make_opsetid("", 18)]), str(path))
    return w


def reference(x, w, heads, kv):
    split = lambda t, n: t.reshape(B, S, n, D).transpose(0, 2, 1, 3)
    q, k, v = split(x @ w["q"], heads), split(x @ w["k"], kv), split(x @ w["v"], kv)
    k, v = np.repeat(k, heads // kv, axis=1), np.repeat(v, heads // kv, axis=1)
    s = q @ k.transpose(0, 1, 3, 2) / np.sqrt(D)
    p = np.exp(s - s.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    return (p @ v).transpose(0, 2, 1, 3).reshape(B, S, heads * D) @ w["o"]


def build(tmp_path, heads, kv, world, plan=PLAN):
    w = gqa_block(tmp_path / "m.onnx", heads, kv)
    if plan != "auto":
        (tmp_path / "plan.json").write_text(json.dumps(plan))
    p = run(BIN, "build", tmp_path / "m.onnx", "-o", tmp_path / "tp.tsr", "--tp", world, "--plan",
            "auto" if plan == "auto" else tmp_path / "plan.json")
    return p, w


@pytest.mark.parametrize("plan", [PLAN, "auto"])
@pytest.mark.parametrize("heads,kv,world", [(4, 2, 4), (8, 2, 4), (4, 1, 4), (4, 1, 2), (8, 4, 2)])
def test_gqa_matches_numpy(tmp_path, heads, kv, world, plan):
    p, w = build(tmp_path, heads, kv, world, plan)
    assert p.returncode == 0, p.stderr
    if plan == "auto":
        assert json.loads((tmp_path / "tp.plan.json").read_text()) == {k: {"style": v} for k, v in PLAN.items()}
    x = np.random.randn(B, S, heads * D).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", np.full((B, S, heads * D), np.nan, np.float32))  # poison
    p = run(BIN, "launch", "--nproc-per-node", world, "--", BIN, "run", f"{tmp_path}/tp.rank{{rank}}.tsr",
            "--input", f"x={tmp_path}/x.npy", "-o", f"{tmp_path}/y{{rank}}.npy")
    assert p.returncode == 0, p.stdout + p.stderr
    want = reference(x, w, heads, kv)
    for r in range(world):
        assert rel_l2(np.load(tmp_path / f"y{r}.npy"), want) <= 1e-5


def test_kv_projection_holds_one_head_per_rank(tmp_path):
    """2 KV heads on 4 ranks: k/v_proj keep one whole head (D columns) on every rank, as q_proj does."""
    p, w = build(tmp_path, 4, 2, 4)
    assert p.returncode == 0, p.stderr
    for r in range(4):
        text = run(BIN, "inspect", tmp_path / f"tp.rank{r}.tsr").stdout
        for n in "qkv":
            assert re.search(rf"const %attn\.{n}_proj\.weight\.shard\S*: float32\[{4 * D},{D}\]", text), text


@pytest.mark.parametrize("heads,kv,world,node", [
    (6, 3, 2, "/attn/k_Reshape"),   # 3 KV heads on 2 ranks: neither divides the other
    (6, 3, 4, "/attn/q_Reshape"),   # 6 query heads on 4 ranks
    (4, 2, 8, "/attn/k_Expand"),    # 4 query heads on 8 ranks: a query head would be split
])
def test_heads_that_do_not_fit_the_ranks_name_the_node(tmp_path, heads, kv, world, node):
    p, _ = build(tmp_path, heads, kv, world)
    assert_one_line_error(p, node)
    assert not list(tmp_path.glob("tp*.tsr"))


def test_llama_dynamo_auto_plan_at_4_ranks_shards_attention(tmp_path):
    tp_vs_single(tmp_path, "llama_dynamo", "auto", 4)
    assert json.loads((tmp_path / "tp.plan.json").read_text()) == {k: {"style": v} for k, v in LLAMA_PLAN.items()}
