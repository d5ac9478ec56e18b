#!/usr/bin/env bash
# The test command: C++ unit tests and the Python parity tests (ONNX Runtime
# as oracle), all through ctest. Builds first if needed.
set -euo pipefail
cd "$(dirname "$0")/.."
cmake --build build -j "$(nproc)"
ctest --test-dir build --output-on-failure -j "$(nproc)" "$@"
