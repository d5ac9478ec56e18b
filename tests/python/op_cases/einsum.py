"""Cases for Einsum (src/ops/einsum.cc): the contractions torch exports
(attention scores and values, batched matmul, outer product), implicit
outputs, transposes, traces and diagonals, and a shared ellipsis.
"""
import numpy as np

from . import Case, rng


def f32(*shape):
    return rng().standard_normal(shape).astype(np.float32)


def case(equation, *operands, id):
    names = "abcdefgh"
    return Case("Einsum", {names[i]: x for i, x in enumerate(operands)}, {"equation": equation}, id=id)


CASES = [
    case("bhqd,bhkd->bhqk", f32(2, 3, 5, 8), f32(2, 3, 7, 8), id="attn_scores"),
    case("bhqk,bhkd->bhqd", f32(2, 3, 5, 7), f32(2, 3, 7, 8), id="attn_values"),
    case("bij,bjk->bik", f32(3, 4, 5), f32(3, 5, 6), id="bmm"),
    case("i,j->ij", f32(4), f32(6), id="outer"),
    case("ij,jk", f32(3, 4), f32(4, 2), id="implicit_matmul"),
    case("ba", f32(3, 4), id="implicit_transpose"),
    case("ij->ji", f32(3, 5), id="transpose"),
    case("ii", f32(4, 4), id="trace"),
    case("ii->i", f32(5, 5), id="diagonal"),
    case("ij->", f32(3, 4), id="sum_all"),
    case("...ij,...jk->...ik", f32(2, 3, 4, 5), f32(2, 3, 5, 2), id="ellipsis"),
    case("bn,anm,bm->ba", f32(2, 3), f32(4, 3, 5), f32(2, 5), id="bilinear_three"),
    case("ij,ij->i", rng().integers(-5, 5, (3, 4)), rng().integers(-5, 5, (3, 4)), id="int64_rowdot"),
]
