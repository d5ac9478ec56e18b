"""GPU parity (the CUDA backend's half of the per-op harness, and the model
families): every op case of test_ops.py and every model fixture of
test_models.py is built for --target cuda and run, all in ONE process
(`tessera batch`, so the GPU is initialised once), then compared here with
ONNX Runtime exactly as the CPU tests compare: fp32 rel. L2 <= 1e-5 (ops and
models), autocast fp16/bf16 model builds <= 2e-2 against the fp32 reference.
Each case runs twice in the batch: the compared run replays the CUDA graph
captured after the first.

Skips cleanly where no GPU is visible (CI); on the GPU machine
`bench/run_gpu.sh` runs it.
"""
import json
import math
import shutil
import subprocess

import numpy as np
import onnx
import pytest

import test_models as tm
import test_ops as to
from tsr_compare import assert_outputs_close


def gpu_present():
    smi = shutil.which("nvidia-smi")
    if not smi:
        return False
    p = subprocess.run([smi, "-L"], capture_output=True, text=True)
    return p.returncode == 0 and "GPU" in p.stdout


pytestmark = pytest.mark.skipif(not gpu_present(), reason="no GPU visible: the CUDA parity harness runs on the GPU machine")

OP_PARAMS = to._params()
# Attention shapes that reach the CUDA flash kernel (head dim 64/128, f16), which
# the small model fixtures (head dim 16) do not: (B, Hq, Hkv, T, D, causal).
# The last two have more flash blocks (one per 128 query rows of a head) than the H200
# has SMs, so cuDNN's fused attention runs them (the flash_batch cases run tessera's).
ATTN_SHAPES = [(1, 8, 2, 100, 128, True), (2, 4, 4, 64, 64, True), (1, 4, 1, 200, 128, False), (1, 2, 2, 17, 64, True),
               (4, 8, 2, 600, 64, True), (2, 16, 16, 600, 128, False)]
ATTN_PARAMS = [pytest.param(*sh, id="attention/B{}_Hq{}_Hkv{}_T{}_D{}_{}".format(*sh[:5], "causal" if sh[5] else "full"))
               for sh in ATTN_SHAPES]
# Decode-shaped attention (few query rows against a long, partly written
# cache): the CUDA decode kernel. (B, Hq, Hkv, Tq, Tk, D, dtype, visible keys
# for query row 0; row i sees one more.) The last four have at most 32 keys
# (warp_fwd: a warp per query row), the first of them one key per row (the
# Llama layer at B64 T1).
DECODE_SHAPES = [(1, 12, 12, 1, 256, 64, "float16", 129), (8, 32, 8, 1, 300, 128, "float16", 300),
                 (2, 4, 4, 3, 70, 64, "float16", 40), (1, 4, 2, 1, 200, 64, "float32", 77),
                 (2, 8, 2, 2, 1000, 128, "float32", 999),
                 (64, 32, 8, 1, 1, 128, "float16", 1), (3, 8, 2, 2, 20, 64, "float16", 11),
                 (2, 4, 4, 1, 32, 128, "float32", 32), (1, 6, 3, 4, 9, 64, "float32", 3)]
DECODE_PARAMS = [pytest.param(*sh, id="decode_attention/B{}_Hq{}_Hkv{}_Tq{}_Tk{}_D{}_{}_vis{}".format(*sh))
                 for sh in DECODE_SHAPES]
# The layout attribute (attention_layout absorbs the head Transposes the
# models below are given around attention): (B, Hq, Hkv, Tq, Tk, D, dtype,
# visible keys for query row 0 or None for no mask, layout of Q, K, V, out as
# 0 = [B, H, T, D], 1 = [B, T, H, D]). Visible 1 with Tq == Tk is causal. Flash
# (f16, Tq > 8), decode (Tq <= 8, one split and several, f16 and f32) and
# simple (f32 with Tq > 8, an odd head dim) each with all of Q, K, V, out in
# layout 1 and mixed.
LAYOUT_SHAPES = [(1, 8, 2, 100, 100, 128, "float16", 1, (1, 1, 1, 1)), (2, 4, 4, 64, 64, 64, "float16", 1, (1, 0, 1, 0)),
                 (1, 4, 1, 200, 200, 128, "float16", None, (0, 1, 1, 1)), (1, 2, 2, 17, 40, 64, "float16", 30, (1, 1, 0, 1)),
                 (1, 12, 12, 1, 256, 64, "float16", 129, (1, 1, 1, 1)), (8, 32, 8, 1, 300, 128, "float16", 300, (1, 0, 0, 1)),
                 (2, 4, 4, 3, 70, 64, "float16", 40, (0, 1, 1, 0)), (2, 8, 2, 2, 1000, 128, "float32", 999, (1, 1, 1, 1)),
                 (1, 4, 2, 1, 200, 64, "float32", 77, (0, 0, 0, 1)),
                 (1, 4, 2, 20, 20, 64, "float32", 1, (1, 1, 1, 1)), (2, 4, 2, 12, 9, 40, "float16", 5, (1, 0, 1, 1)),
                 (1, 3, 3, 5, 7, 24, "float32", None, (0, 0, 1, 1)), (1, 32, 8, 640, 640, 128, "float16", 1, (1, 1, 1, 1))]
LAYOUT_PARAMS = [pytest.param(*sh, id="layout_attention/B{}_Hq{}_Hkv{}_Tq{}_Tk{}_D{}_{}_vis{}_L{}".format(
                     *sh[:8], "".join(map(str, sh[8])))) for sh in LAYOUT_SHAPES]
# Packed Q, K, V (one [B, T, (Hq + 2 Hkv)·D] input split three ways, GPT-2's fused projection):
# (B, Hq, Hkv, T, D, causal, output layout). The last has more flash blocks than the H200 has SMs
# (cuDNN's attention by default).
PACKED_SHAPES = [(1, 12, 12, 128, 64, True, 1), (2, 8, 2, 100, 128, True, 0), (1, 4, 4, 40, 64, False, 1),
                 (4, 12, 12, 384, 64, True, 1)]
PACKED_PARAMS = [pytest.param(*sh, id="packed_attention/B{}_Hq{}_Hkv{}_T{}_D{}_causal{}_out{}".format(*sh))
                 for sh in PACKED_SHAPES]
# Llama's attention: packed Q, K, V with Q and K rotated (rotate-half), which pack_attention_qkv
# makes one Attention taking the rope tables: (B, Hq, Hkv, T, D, dtype). The first three rotate as
# warp_fwd loads them (the Llama layer at B64 T1 first); the others are rotated into scratch by
# Rope's kernel first: flash_fwd, cuDNN's attention (more flash blocks than the H200 has SMs),
# simple_fwd (f32, T > 8).
ROPE_ATTN_SHAPES = [(64, 32, 8, 1, 128, "float16"), (3, 8, 2, 5, 64, "float16"), (2, 4, 2, 7, 128, "float32"),
                    (2, 8, 2, 100, 128, "float16"), (4, 16, 4, 384, 128, "float16"), (1, 4, 2, 20, 64, "float32")]
ROPE_ATTN_PARAMS = [pytest.param(*sh, id="rope_attention/B{}_Hq{}_Hkv{}_T{}_D{}_{}".format(*sh)) for sh in ROPE_ATTN_SHAPES]
# Llama's merged q/k/v projection output [B, T, (Hq + 2 Hkv)·D], Split, q and k Reshaped to
# heads and rotated (the exporters' rotate-half chain, which fuse_rope makes a Rope): rope_blocks
# has the Ropes read the merged tensor's columns and slices v. (B, T, Hq, Hkv, D)
ROPE_BLOCK_SHAPES = [(2, 33, 4, 2, 128), (1, 7, 3, 1, 64)]
ROPE_BLOCK_PARAMS = [pytest.param(*sh, id="rope_block/B{}_T{}_Hq{}_Hkv{}_D{}".format(*sh)) for sh in ROPE_BLOCK_SHAPES]
# A linear layer with an unaligned N (GPT-2's LM head, 50257): Gemm(x, W [N, K], b, transB = 1),
# then an activation (fuse_gemm_epilogue makes a FusedMatMul) or none. The padded N by default;
# with TESSERA_GEMM_ROW_PHASES=1 (bench/run_gpu.sh lmhead_variants), enough rows make the CUDA
# kernel split them into row phases instead (gemm_lt.h, GemmPlan::phases: N mod 8 = 1 in f16
# gives 8 phases, N mod 8 = 6 gives 4; the last case keeps the padded N). (M, N, K, dtype, activation)
LINEAR_SHAPES = [(301, 1001, 64, "float32", "Relu"), (300, 1006, 64, "float16", "Gelu_tanh"),
                 (300, 1001, 64, "float16", "Gelu"), (129, 1001, 32, "float16", None), (300, 1003, 40, "float16", "Relu"),
                 (20, 1001, 64, "float16", None)]
LINEAR_PARAMS = [pytest.param(*sh, id="linear_unaligned_n/M{}_N{}_K{}_{}_{}".format(*sh)) for sh in LINEAR_SHAPES]
MODEL_PARAMS = [pytest.param(name, ac, id=f"{name}/{ac or 'fp32'}") for name in tm.NAMES for ac in ("", "fp16", "bf16")]
FP32_MODEL_TOL = 1e-5
HALF_TOL = 2e-2


def _save_inputs(path, feeds):
    np.savez(path, **feeds)


def attention_case(B, Hq, Hkv, Tq, Tk, D, dt, mask, layout=(0, 0, 0, 0), packed=False, rope=False):
    """The exporters' pattern: softmax(Q·Kᵀ·s + mask)·V, Q [B, Hq, Tq, D] against
    K, V [B, Hkv, Tk, D] repeated to Hq heads (Unsqueeze → Expand → Reshape);
    fuse_attention turns it into Attention. An entry of `layout` (Q, K, V, out)
    that is 1 makes that graph input (output) [B, T, H, D], with a
    Transpose(perm = [0, 2, 1, 3]) to (from) the pattern, which attention_layout
    absorbs. packed (Tq == Tk, layout (1, 1, 1, x)): the one graph input is a fused
    projection's qkv [B, T, (Hq + 2 Hkv)·D], Split into Q, K, V and Reshaped to
    [B, T, H, D] (GPT-2's c_attn), which attention_layout reads packed. rope (with packed):
    Q and K are rotated first by the exporters' rotate-half chain with cos/sin inputs
    [1, T, 1, D] (Llama's merged q/k/v: the Attention takes the tables). Returns the
    model, fresh inputs and a float64 reference from those inputs, cast to `dt`."""
    from onnx import TensorProto as TP, helper as h, numpy_helper as nh
    r, dt = Hq // Hkv, np.dtype(dt)
    et = TP.FLOAT16 if dt == np.float16 else TP.FLOAT
    inits = [nh.from_array(np.array([2], np.int64), "ax"), nh.from_array(np.array([B, Hkv, r, Tk, D], np.int64), "to"),
             nh.from_array(np.array([B, Hq, Tk, D], np.int64), "shape"), nh.from_array(np.array(1 / np.sqrt(D), dt), "scale"),
             nh.from_array(mask.astype(dt), "mask")]
    nodes, src = [], {}
    if packed:
        inits += [nh.from_array(np.array([Hq * D, Hkv * D, Hkv * D], np.int64), "sizes")]
        nodes.append(h.make_node("Split", ["qkv", "sizes"], ["q_flat", "k_flat", "v_flat"], axis=2))
        for x, H in (("q", Hq), ("k", Hkv), ("v", Hkv)):
            inits.append(nh.from_array(np.array([B, Tq, H, D], np.int64), x + "_heads"))
            nodes.append(h.make_node("Reshape", [x + "_flat", x + "_heads"], [x + "_pre" if rope and x != "v" else x]))
        if rope:
            i64 = lambda name, v: nh.from_array(np.array(v, np.int64), name)
            inits += [i64("r_zero", [0]), i64("r_half", [D // 2]), i64("r_end", [D]), i64("r_last", [-1])]
            for x in ("q", "k"):
                a = x + "_pre"
                n = lambda suffix: f"{x}_rope_{suffix}"
                nodes += [h.make_node("Slice", [a, "r_zero", "r_half", "r_last"], [n("lo")]),
                          h.make_node("Slice", [a, "r_half", "r_end", "r_last"], [n("hi")]),
                          h.make_node("Neg", [n("hi")], [n("neg")]),
                          h.make_node("Concat", [n("neg"), n("lo")], [n("rot")], axis=-1),
                          h.make_node("Mul", [a, "cos"], [n("cos")]), h.make_node("Mul", [n("rot"), "sin"], [n("sin")]),
                          h.make_node("Add", [n("cos"), n("sin")], [x])]
    for x, l in zip("qkv", layout):
        src[x] = x + "_bhtd" if l else x
        if l:
            nodes.append(h.make_node("Transpose", [x], [src[x]], perm=[0, 2, 1, 3]))
    for x in ("k", "v"):
        nodes += [h.make_node("Unsqueeze", [src[x], "ax"], [x + "u"]), h.make_node("Expand", [x + "u", "to"], [x + "e"]),
                  h.make_node("Reshape", [x + "e", "shape"], [x + "r"])]
    nodes += [h.make_node("Transpose", ["kr"], ["kt"], perm=[0, 1, 3, 2]), h.make_node("MatMul", [src["q"], "kt"], ["s"]),
              h.make_node("Mul", ["s", "scale"], ["ss"]), h.make_node("Add", ["ss", "mask"], ["sm"]),
              h.make_node("Softmax", ["sm"], ["p"], axis=-1), h.make_node("MatMul", ["p", "vr"], ["o_bhtd" if layout[3] else "out"])]
    if layout[3]:
        nodes.append(h.make_node("Transpose", ["o_bhtd"], ["out"], perm=[0, 2, 1, 3]))
    stored = lambda l, H, T: [B, T, H, D] if l else [B, H, T, D]
    ins = [h.make_tensor_value_info("q", et, stored(layout[0], Hq, Tq))] + [
        h.make_tensor_value_info(x, et, stored(l, Hkv, Tk)) for x, l in (("k", layout[1]), ("v", layout[2]))]
    if packed:
        ins = [h.make_tensor_value_info("qkv", et, [B, Tq, (Hq + 2 * Hkv) * D])]
        if rope:
            ins += [h.make_tensor_value_info(t, et, [1, Tq, 1, D]) for t in ("cos", "sin")]
    g = h.make_graph(nodes, "attn", ins, [h.make_tensor_value_info("out", et, stored(layout[3], Hq, Tq))], inits)
    m = h.make_model(g, opset_imports=[h.make_opsetid("", 18)])
    rng = np.random.default_rng()
    feeds = {"q": rng.standard_normal((B, Hq, Tq, D)).astype(dt),
             "k": rng.standard_normal((B, Hkv, Tk, D)).astype(dt),
             "v": rng.standard_normal((B, Hkv, Tk, D)).astype(dt)}
    q, k, v = (feeds[x].astype(np.float64) for x in ("q", "k", "v"))
    if rope:  # the tables [1, T, 1, D] as the [B, H, T, D] operands see them: [1, 1, T, D]; rounded to dt as Rope's output
        ang = rng.uniform(0, 6.3, (1, Tq, 1, D // 2))
        tables = {"cos": np.cos(np.concatenate([ang, ang], -1)).astype(dt), "sin": np.sin(np.concatenate([ang, ang], -1)).astype(dt)}
        cs, sn = (tables[t].astype(np.float64).transpose(0, 2, 1, 3) for t in ("cos", "sin"))
        rot = lambda a: np.concatenate([-a[..., D // 2:], a[..., :D // 2]], -1)
        q, k = ((a * cs + rot(a) * sn).astype(dt).astype(np.float64) for a in (q, k))
    k, v = np.repeat(k, r, axis=1), np.repeat(v, r, axis=1)
    sc = q @ k.transpose(0, 1, 3, 2) / np.sqrt(D) + mask.astype(dt).astype(np.float64)
    p = np.exp(sc - sc.max(-1, keepdims=True))
    ref = (p / p.sum(-1, keepdims=True)) @ v
    swap = lambda a, l: np.ascontiguousarray(a.transpose(0, 2, 1, 3)) if l else a
    feeds = {x: swap(feeds[x], l) for x, l in zip("qkv", layout)}
    if packed:  # [B, T, H, D] each -> one [B, T, W]
        feeds = {"qkv": np.concatenate([feeds[x].reshape(B, Tq, -1) for x in "qkv"], axis=2)}
        if rope:
            feeds.update(tables)
    return m, feeds, {"out": swap(ref, layout[3]).astype(dt)}


def attention_model(B, Hq, Hkv, T, D, causal):
    """Self-attention in f16, causal or full."""
    mask = np.where(np.tril(np.ones((T, T), bool)), 0, -np.inf) if causal else np.zeros((T, T))
    return attention_case(B, Hq, Hkv, T, T, D, np.float16, mask)


def packed_attention_model(B, Hq, Hkv, T, D, causal, out_layout):
    """Self-attention in f16 on a packed qkv input, causal or full."""
    mask = np.where(np.tril(np.ones((T, T), bool)), 0, -np.inf) if causal else np.zeros((T, T))
    return attention_case(B, Hq, Hkv, T, T, D, np.float16, mask, (1, 1, 1, out_layout), packed=True)


def rope_attention_model(B, Hq, Hkv, T, D, dtype):
    """Causal self-attention on a packed qkv input, Q and K rotated first."""
    mask = np.where(np.tril(np.ones((T, T), bool)), 0, -np.inf)
    model, feeds, ref = attention_case(B, Hq, Hkv, T, T, D, dtype, mask, (1, 1, 1, 1), packed=True, rope=True)
    return model, feeds, ref, (HALF_TOL if np.dtype(dtype) == np.float16 else FP32_MODEL_TOL)


def linear_model(M, N, K, dtype, act):
    """y = act(x·Wᵀ + b), W [N, K] and b constants; act Relu, Gelu (erf), Gelu_tanh or None."""
    from onnx import TensorProto as TP, helper as h, numpy_helper as nh
    dt = np.dtype(dtype)
    et = TP.FLOAT16 if dt == np.float16 else TP.FLOAT
    rng = np.random.default_rng()
    w, b = (rng.standard_normal(s).astype(dt) for s in ((N, K), (N,)))
    nodes = [h.make_node("Gemm", ["x", "w", "b"], ["y" if act is None else "z"], transB=1)]
    if act is not None:
        attrs = {"approximate": "tanh"} if act == "Gelu_tanh" else {}
        nodes.append(h.make_node(act.split("_")[0], ["z"], ["y"], **attrs))
    g = h.make_graph(nodes, "linear", [h.make_tensor_value_info("x", et, [M, K])],
                     [h.make_tensor_value_info("y", et, [M, N])], [nh.from_array(w, "w"), nh.from_array(b, "b")])
    m = h.make_model(g, opset_imports=[h.make_opsetid("", 20)])
    feeds = {"x": rng.standard_normal((M, K)).astype(dt)}
    z = feeds["x"].astype(np.float64) @ w.astype(np.float64).T + b.astype(np.float64)
    erf = np.vectorize(math.erf)
    y = {None: z, "Relu": np.maximum(z, 0), "Gelu": 0.5 * z * (1 + erf(z / np.sqrt(2))),
         "Gelu_tanh": 0.5 * z * (1 + np.tanh(np.sqrt(2 / np.pi) * (z + 0.044715 * z ** 3)))}[act]
    return m, feeds, {"y": y.astype(dt)}, (HALF_TOL if dt == np.float16 else FP32_MODEL_TOL)


def rope_block_model(B, T, Hq, Hkv, D):
    """x [B, T, W] -> Split -> q, k to [B, T, H, D], x·cos + rotate_half(x)·sin; v as it is. f16."""
    from onnx import TensorProto as TP, helper as h, numpy_helper as nh
    W, half = (Hq + 2 * Hkv) * D, D // 2
    i64 = lambda name, v: nh.from_array(np.array(v, np.int64), name)
    inits = [i64("sizes", [Hq * D, Hkv * D, Hkv * D]), i64("zero", [0]), i64("half", [half]), i64("end", [D]), i64("last", [-1])]
    nodes = [h.make_node("Split", ["x", "sizes"], ["qf", "kf", "v"], axis=-1)]
    for x, H in (("q", Hq), ("k", Hkv)):
        inits.append(i64(x + "_heads", [B, T, H, D]))
        nodes += [h.make_node("Reshape", [x + "f", x + "_heads"], [x]),
                  h.make_node("Slice", [x, "zero", "half", "last"], [x + "1"]),
                  h.make_node("Slice", [x, "half", "end", "last"], [x + "2"]),
                  h.make_node("Neg", [x + "2"], [x + "n"]),
                  h.make_node("Concat", [x + "n", x + "1"], [x + "r"], axis=-1),
                  h.make_node("Mul", [x, "cos"], [x + "c"]), h.make_node("Mul", [x + "r", "sin"], [x + "s"]),
                  h.make_node("Add", [x + "c", x + "s"], [x + "_rot"])]
    ins = [h.make_tensor_value_info("x", TP.FLOAT16, [B, T, W])] + [
        h.make_tensor_value_info(t, TP.FLOAT16, [1, T, 1, D]) for t in ("cos", "sin")]
    outs = [h.make_tensor_value_info("q_rot", TP.FLOAT16, [B, T, Hq, D]), h.make_tensor_value_info("k_rot", TP.FLOAT16, [B, T, Hkv, D]),
            h.make_tensor_value_info("v", TP.FLOAT16, [B, T, Hkv * D])]
    m = h.make_model(h.make_graph(nodes, "rope_block", ins, outs, inits), opset_imports=[h.make_opsetid("", 18)])
    rng = np.random.default_rng()
    ang = rng.uniform(0, 6.3, (1, T, 1, half))
    feeds = {"x": rng.standard_normal((B, T, W)).astype(np.float16),
             "cos": np.cos(np.concatenate([ang, ang], -1)).astype(np.float16),
             "sin": np.sin(np.concatenate([ang, ang], -1)).astype(np.float16)}
    x, cs, sn = (feeds[t].astype(np.float64) for t in ("x", "cos", "sin"))
    rot = lambda a: np.concatenate([-a[..., half:], a[..., :half]], -1)
    q = x[..., :Hq * D].reshape(B, T, Hq, D)
    k = x[..., Hq * D:(Hq + Hkv) * D].reshape(B, T, Hkv, D)
    ref = {"q_rot": (q * cs + rot(q) * sn).astype(np.float16), "k_rot": (k * cs + rot(k) * sn).astype(np.float16),
           "v": feeds["x"][..., (Hq + Hkv) * D:]}
    return m, feeds, ref


def decode_attention_model(B, Hq, Hkv, Tq, Tk, D, dtype, visible, layout=(0, 0, 0, 0)):
    """Few query rows against a longer cache; key j is visible to query row i when j < visible + i
    (no mask when visible is None)."""
    vis = np.arange(Tk)[None, :] < (Tk if visible is None else visible) + np.arange(Tq)[:, None]
    model, feeds, ref = attention_case(B, Hq, Hkv, Tq, Tk, D, dtype, np.where(vis, 0, -np.inf), layout)
    return model, feeds, ref, (HALF_TOL if np.dtype(dtype) == np.float16 else FP32_MODEL_TOL)


def _add_attention_cases(d, manifest, refs):
    """Every attention case (fresh inputs) into `manifest`, its expected output into `refs`."""
    cases = [(p, *attention_model(*p.values), HALF_TOL) for p in ATTN_PARAMS]
    cases += [(p, *decode_attention_model(*p.values)) for p in DECODE_PARAMS]
    cases += [(p, *decode_attention_model(*p.values)) for p in LAYOUT_PARAMS]
    cases += [(p, *packed_attention_model(*p.values), HALF_TOL) for p in PACKED_PARAMS]
    cases += [(p, *rope_block_model(*p.values), HALF_TOL) for p in ROPE_BLOCK_PARAMS]
    cases += [(p, *rope_attention_model(*p.values)) for p in ROPE_ATTN_PARAMS]
    _add_model_cases(d, manifest, refs, cases)


def _add_model_cases(d, manifest, refs, cases):
    """(param, model, feeds, expected, tol) each into `manifest` and `refs`."""
    for param, model, feeds, expected, tol in cases:
        tag = param.id.replace("/", "_")
        onnx.save(model, d / f"{tag}.onnx")
        _save_inputs(d / f"{tag}.inputs.npz", feeds)
        out = d / f"{tag}.out.npz"
        manifest.append({"model": str(d / f"{tag}.onnx"), "inputs": str(d / f"{tag}.inputs.npz"), "output": str(out), "target": "cuda"})
        refs[param.id] = (out, expected, tol)


@pytest.fixture(scope="session")
def flash_batch(tessera, tmp_path_factory):
    """The attention cases again with TESSERA_ATTENTION=flash: tessera's own kernels where cuDNN's
    fused attention runs them by default."""
    d = tmp_path_factory.mktemp("cuda_parity_flash")
    manifest, refs = [], {}
    _add_attention_cases(d, manifest, refs)
    (d / "manifest.json").write_text(json.dumps(manifest))
    p = tessera("batch", d / "manifest.json", timeout=600, env={"TESSERA_ATTENTION": "flash"})
    assert p.returncode == 0, f"tessera batch failed: {p.stderr.strip()[-2000:]}"
    return refs


@pytest.fixture(scope="session")
def batch(tessera, tmp_path_factory):
    """Export every case, run them all in one `tessera batch` process, return id -> (output path, expected, tol)."""
    d = tmp_path_factory.mktemp("cuda_parity")
    manifest, refs = [], {}
    for i, param in enumerate(OP_PARAMS):
        case = param.values[0]
        try:
            model = to.make_model(case)
        except Exception as e:  # a malformed case fails in test_ops.py too
            refs[param.id] = ("invalid", str(e), None)
            continue
        feeds = to.feeds_of(case)
        onnx.save(model, d / f"op{i}.onnx")
        _save_inputs(d / f"op{i}.inputs.npz", feeds)
        out = d / f"op{i}.out.npz"
        manifest.append({"model": str(d / f"op{i}.onnx"), "inputs": str(d / f"op{i}.inputs.npz"), "output": str(out), "target": "cuda"})
        refs[param.id] = (out, to.run_ort(model, feeds), getattr(case, "tol", None))
    _add_attention_cases(d, manifest, refs)
    _add_model_cases(d, manifest, refs, [(p, *linear_model(*p.values)) for p in LINEAR_PARAMS])
    for param in MODEL_PARAMS:
        name, ac = param.values
        model, inputs, _ = tm.fixture_paths(name)
        fresh = tm.fresh_inputs(tm.load_npz(inputs))
        tag = f"{name}.{ac or 'fp32'}"
        _save_inputs(d / f"{tag}.inputs.npz", fresh)
        out = d / f"{tag}.out.npz"
        manifest.append({"model": str(model), "inputs": str(d / f"{tag}.inputs.npz"), "output": str(out), "target": "cuda", "autocast": ac})
        refs[param.id] = (out, tm.run_ort(name, fresh), HALF_TOL if ac else FP32_MODEL_TOL)
    (d / "manifest.json").write_text(json.dumps(manifest))
    p = tessera("batch", d / "manifest.json", timeout=1200)
    assert p.returncode == 0, f"tessera batch failed: {p.stderr.strip()[-2000:]}"
    return refs


def _check(batch, pid):
    out, expected, tol = batch[pid]
    if out == "invalid":
        pytest.fail(f"case could not be made: {expected}")
    err = out.with_name(out.name + ".err")
    if err.exists():
        pytest.fail(f"tessera (cuda) failed: {err.read_text().strip()}")
    actual = tm.load_npz(out)
    assert_outputs_close(actual, expected, tol=tol, label=f"{pid} (cuda)")


@pytest.mark.parametrize("pid", [p.id for p in OP_PARAMS])
def test_op_cuda(batch, pid):
    _check(batch, pid)


# The fused patterns' own cases: attention (prefill, decode, layouts, packed) and Rope blocks.
@pytest.mark.parametrize("pid", [p.id for p in ATTN_PARAMS + DECODE_PARAMS + LAYOUT_PARAMS + PACKED_PARAMS + ROPE_BLOCK_PARAMS +
                                 ROPE_ATTN_PARAMS + LINEAR_PARAMS])
def test_pattern_cuda(batch, pid):
    _check(batch, pid)


@pytest.mark.parametrize("pid", [p.id for p in MODEL_PARAMS])
def test_model_cuda(batch, pid):
    _check(batch, pid)


@pytest.mark.parametrize("pid", [p.id for p in ATTN_PARAMS + LAYOUT_PARAMS + PACKED_PARAMS + ROPE_ATTN_PARAMS])
def test_attention_cuda_own_kernels(flash_batch, pid):
    _check(flash_batch, pid)
