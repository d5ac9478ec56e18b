"""Shared pytest fixtures: the tessera binary (skip only if it is not built)."""
import pytest

from tsr_cli import Tessera, binary_path


@pytest.fixture(scope="session")
def tessera():
    path = binary_path()
    if not path.is_file():
        pytest.skip(f"tessera binary not found at {path} (build it, or point TESSERA_BIN at it)")
    return Tessera(path)
