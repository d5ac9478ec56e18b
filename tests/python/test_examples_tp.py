"""The tensor-parallel examples under `tessera launch` on CPU ranks (gloo):
tensor_parallel_rotary_embedding (the seed's RoPE module sharded by its
DTensor plan) and tensor_parallel_llama3 (a tiny random Llama 3 sharded per
rank, greedy generation), each checking itself against the single-rank
engine; and the errors a rank count that does not fit gives."""
import re

import pytest

from tsr_cli import binary_path


def example(name):
    path = binary_path().parent / name
    if not path.is_file():
        pytest.skip(f"{path} not built")
    return path


def launch(tessera, world, name, *args, timeout=300):
    return tessera("launch", "--nproc-per-node", world, "--", example(name), *args, timeout=timeout)


@pytest.mark.parametrize("world", [2, 4])
def test_rotary_embedding_matches_single_rank(tessera, world):
    p = launch(tessera, world, "tensor_parallel_rotary_embedding")
    assert p.returncode == 0, p.stdout + p.stderr
    lines = [ln for ln in p.stdout.splitlines() if "rel. L2 vs single rank" in ln]
    assert sorted(re.search(r"rank (\d+/\d+): output", ln).group(1) for ln in lines) == [f"{r}/{world}" for r in range(world)], p.stdout
    # output_layouts=Shard(0): each rank holds batch / world rows of the [4, 128, 4, 128] output.
    assert all(f"output [{4 // world},128,4,128]" in ln for ln in lines), p.stdout
    assert all("ms sharded vs" in ln for ln in lines)


def test_rotary_embedding_other_sizes(tessera):
    p = launch(tessera, 2, "tensor_parallel_rotary_embedding", "--batch", 2, "--seq", 16, "--heads", 2, "--dim", 32)
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stdout.count("output [1,16,2,32]") == 2, p.stdout


def test_rotary_embedding_indivisible_rank_count(tessera):
    # The default batch 4 does not split 3 ways for Shard(0): refused before building.
    p = launch(tessera, 3, "tensor_parallel_rotary_embedding")
    assert p.returncode != 0 and "--batch 4 does not divide by 3 ranks" in p.stderr, p.stderr
    # With a batch that does, dim 128 does not: the plan's colwise weight slicing names the layer and the degree.
    p = launch(tessera, 3, "tensor_parallel_rotary_embedding", "--batch", 6)
    assert p.returncode != 0
    assert "tensor_parallel_rotary_embedding: error:" in p.stderr and "'/wq/MatMul' (wq, colwise)" in p.stderr, p.stderr
    assert "does not divide by the TP degree 3" in p.stderr, p.stderr


def test_rotary_embedding_bad_arguments(tessera):
    p = launch(tessera, 2, "tensor_parallel_rotary_embedding", "--batch", 3)  # Shard(0) of 3 rows over 2 ranks
    assert p.returncode != 0 and "--batch 3 does not divide by 2 ranks" in p.stderr, p.stderr
    p = launch(tessera, 2, "tensor_parallel_rotary_embedding", "--dim", 33)
    assert p.returncode != 0 and "must be even" in p.stderr, p.stderr
    p = launch(tessera, 2, "tensor_parallel_rotary_embedding", "--depth", 2)
    assert p.returncode != 0 and "unknown argument '--depth'" in p.stderr, p.stderr


@pytest.mark.parametrize("world", [2, 4])
def test_llama3_matches_single_rank(tessera, world):
    # world 4 > the tiny model's 2 KV heads: each rank keeps a replica of the KV head its query head reads.
    p = launch(tessera, world, "tensor_parallel_llama3")
    assert p.returncode == 0, p.stdout + p.stderr
    prompts = [ln for ln in p.stdout.splitlines() if "[rank 0] prompt " in ln]
    assert len(prompts) == 4 and all("(= single rank)" in ln for ln in prompts), p.stdout
    assert all(len(ln.split("->")[1].split("(")[0].split()) == 16 for ln in prompts), p.stdout
    summary = [ln for ln in p.stdout.splitlines() if "tokens/s decoding sharded" in ln]
    assert sorted(re.search(r"\[rank (\d+/\d+)\] 4 prompts", ln).group(1) for ln in summary) == [f"{r}/{world}" for r in range(world)], p.stdout
    assert not any("MISMATCH" in ln or "DIFFERS" in ln for ln in p.stdout.splitlines())


def test_llama3_heads_indivisible_by_rank_count(tessera):
    p = launch(tessera, 3, "tensor_parallel_llama3")
    assert p.returncode != 0
    assert "tensor_parallel_llama3: error: attention heads (4) do not divide by the TP degree 3" in p.stderr, p.stderr


def test_llama3_not_a_llama_checkpoint(tessera, tmp_path):
    assert tessera("make-checkpoint", "--model-type", "gpt2", "--preset", "tiny", "-o", tmp_path / "gpt2").returncode == 0
    p = launch(tessera, 2, "tensor_parallel_llama3", tmp_path / "gpt2")
    assert p.returncode != 0 and "this example runs Llama models" in p.stderr, p.stderr
