"""The per-op harness: every Case in tests/python/op_cases/<family>.py becomes a
one-node ONNX model; ONNX Runtime (CPU, graph optimisations off) is the
oracle, tessera build + run through the CLI is checked against it with
tsr_compare (dtype and shape equal, rel. L2 for floats, exact for ints/bools,
NaN/Inf never pass).

Family modules are found by listing the package, so a new op_cases/<family>.py
is picked up without touching this file.
"""
import importlib
import pkgutil
import traceback

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import helper, numpy_helper

import op_cases
from tsr_compare import assert_outputs_close

# Registered ops that are not ONNX default-domain ops, so a one-node model for
# ONNX Runtime cannot hold them. Each needs a reason; the collectives are
# checked by the multi-rank C++ tests (tests/cpp/collectives_test.cc).
NOT_IN_HARNESS = {
    **{op: "collective: multi-rank C++ tests" for op in (
        "AllGather", "AllGatherStart", "AllReduce", "AllReduceStart", "AllToAll", "AllToAllStart",
        "Broadcast", "BroadcastStart", "ReduceScatter", "ReduceScatterStart", "RootGather",
        "RootGatherStart", "RootScatter", "RootScatterStart", "CollectiveWait")},
    "Attention": "tessera's fused op (made by fuse_attention; not ONNX's opset-23 Attention): "
                 "checked by tests/cpp/attention_test.cc and model parity",
    "FusedElementwise": "made by the fuse_elementwise pass; checked by tests/cpp/fuse_elementwise_test.cc and model parity",
    "FusedMatMul": "made by the fuse_gemm_epilogue pass (no ONNX op); checked by tests/cpp/fused_matmul_test.cc and model parity",
    "Rope": "tessera's rotary embedding (emitted by the Hugging Face builders; not ONNX's RotaryEmbedding): "
            "checked by tests/cpp/rope_test.cc and Llama generation vs transformers",
}


def _load_families():
    families, errors = {}, {}
    for info in sorted(pkgutil.iter_modules(op_cases.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        try:
            module = importlib.import_module(f"op_cases.{info.name}")
            families[info.name] = list(module.CASES)
        except Exception:  # reported by test_case_modules_import; the other families still run
            errors[info.name] = traceback.format_exc()
    return families, errors


FAMILIES, FAMILY_ERRORS = _load_families()


def _params():
    params, seen = [], {}
    for family, cases in FAMILIES.items():
        for case in cases:
            base = f"{family}/{case.label()}"
            seen[base] = seen.get(base, 0) + 1
            pid = base if seen[base] == 1 else f"{base}#{seen[base]}"
            params.append(pytest.param(case, id=pid))
    return params


def make_model(case):
    """One node, inputs in the order given; `constants` become initializers and
    None inputs are left out as empty names. Output types come from ONNX shape
    inference, which also rejects a malformed case."""
    unknown = set(case.constants) - {k for k, v in case.inputs.items() if v is not None}
    assert not unknown, f"constants {sorted(unknown)} are not inputs of the case"
    node_inputs, graph_inputs, initializers = [], [], []
    for name, value in case.inputs.items():
        if value is None:
            node_inputs.append("")
            continue
        value = np.asarray(value)
        node_inputs.append(name)
        if name in case.constants:
            initializers.append(numpy_helper.from_array(value, name))
        else:
            elem = helper.np_dtype_to_tensor_dtype(value.dtype)
            graph_inputs.append(helper.make_tensor_value_info(name, elem, value.shape))
    outputs = ["" if i in case.omit_outputs else f"output{i}" for i in range(case.n_outputs)]
    assert not set(outputs) & set(case.inputs), "an input is named like an output (output0, ...)"
    node = helper.make_node(case.op, node_inputs, outputs, name=f"{case.op}_node", domain=case.domain or None, **case.attrs)
    if case.domain:  # ONNX's shape inference does not know contrib ops: outputs typed like the first input
        first = np.asarray(next(iter(case.inputs.values())))
        out_info = [helper.make_tensor_value_info(o, helper.np_dtype_to_tensor_dtype(first.dtype), first.shape) for o in outputs if o]
    else:
        out_info = [onnx.ValueInfoProto(name=o) for o in outputs if o]
    graph = helper.make_graph([node], f"{case.label()}", graph_inputs, out_info, initializers)
    opset = [helper.make_opsetid("", case.opset)] + ([helper.make_opsetid(case.domain, 1)] if case.domain else [])
    model = helper.make_model(graph, opset_imports=opset, ir_version=helper.find_min_ir_version_for(opset[:1]))
    if case.domain:
        onnx.checker.check_model(model)
        return model
    model = onnx.shape_inference.infer_shapes(model, strict_mode=True, data_prop=True)
    untyped = [o.name for o in model.graph.output if not o.type.tensor_type.elem_type]
    assert not untyped, f"ONNX shape inference gave no type for outputs {untyped}"
    onnx.checker.check_model(model, full_check=True)
    return model


def run_ort(model, feeds):
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, feeds)))


def feeds_of(case):
    return {k: np.asarray(v) for k, v in case.inputs.items() if v is not None and k not in case.constants}


def test_case_modules_import():
    assert FAMILIES, "no op_cases/<family>.py module found"
    assert not FAMILY_ERRORS, "\n".join(f"op_cases/{f}.py failed to import:\n{tb}" for f, tb in FAMILY_ERRORS.items())


@pytest.mark.parametrize("case", _params())
def test_op(case, tessera, tmp_path):
    model = make_model(case)
    feeds = feeds_of(case)
    expected = run_ort(model, feeds)

    model_path, engine = tmp_path / "model.onnx", tmp_path / "model.tsr"
    onnx.save(model, model_path)
    tessera.build_ok(model_path, engine)
    inputs = {}
    for name, value in feeds.items():
        inputs[name] = tmp_path / f"in_{len(inputs)}.npy"
        np.save(inputs[name], value)
    actual = tessera.run_ok(engine, tmp_path / "out.npz", inputs=inputs)
    assert_outputs_close(actual, expected, tol=getattr(case, "tol", None), label=case.label())


def test_every_registered_op_has_a_case(tessera):
    p = tessera("ops", timeout=60)
    if p.returncode != 0:
        pytest.skip(f"`tessera ops` failed ({p.returncode}): {p.stderr.strip()}")
    registered = {ln.strip() for ln in p.stdout.splitlines() if ln.strip()}
    assert registered, "`tessera ops` printed no ops"
    covered = {case.op for cases in FAMILIES.values() for case in cases}
    missing = sorted(registered - covered - set(NOT_IN_HARNESS))
    assert not missing, (f"registered ops with no case in tests/python/op_cases/: {missing} "
                         "(add cases, or list a non-ONNX op in NOT_IN_HARNESS with the reason)")
