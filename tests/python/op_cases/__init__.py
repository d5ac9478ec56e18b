"""Per-op cases for the ONNX Runtime harness (tests/python/test_ops.py).

Each module in this package (one per op family, named after src/ops/<family>.cc)
exports CASES, a list of Case. The harness turns every Case into a one-node ONNX
model with onnx.helper, runs it with ONNX Runtime (the oracle) and with the
tessera CLI (build + run), and compares every output: relative L2 <= 1e-5 for
floats, exact equality for integers and bools, NaN/Inf never pass.
"""
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

import numpy as np


@dataclass
class Case:
    op: str                               # ONNX op type, default domain
    inputs: Dict[str, Optional[np.ndarray]]  # in order; None = omitted optional input
    attrs: Dict[str, Any] = field(default_factory=dict)
    n_outputs: int = 1
    constants: List[str] = field(default_factory=list)  # input names stored as initializers
    opset: int = 18
    id: str = ""                          # short label for pytest ids
    domain: str = ""                      # "com.microsoft": an ONNX Runtime contrib op (outputs typed like inputs[0])
    omit_outputs: List[int] = field(default_factory=list)  # optional outputs left empty

    def label(self):
        return f"{self.op}-{self.id}" if self.id else self.op


def rng(seed=None):
    """Fresh randomness each run unless a seed is given (DESIGN.md §5)."""
    return np.random.default_rng(seed)
