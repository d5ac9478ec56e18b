#!/usr/bin/env bash
# Install what tessera needs on a fresh Debian 12 machine (CUDA toolkit optional
# for now), then configure and build. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=0
for pkg in cmake ninja-build g++ ccache protobuf-compiler libprotobuf-dev libonnx-dev zlib1g-dev libopenblas-dev \
           nlohmann-json3-dev libcli11-dev libgtest-dev libgloo-dev libpcre2-dev python3-pip; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need_apt=1
done
if [ "$need_apt" = 1 ]; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    cmake ninja-build g++ ccache protobuf-compiler libprotobuf-dev libonnx-dev zlib1g-dev libopenblas-dev \
    nlohmann-json3-dev libcli11-dev libgtest-dev libgloo-dev libpcre2-dev python3-pip >/dev/null
fi
# The test oracles (ONNX Runtime) and the ONNX model builder used by the tests.
python3 -c "import onnx, onnxruntime, numpy, pytest" 2>/dev/null ||
  python3 -m pip install -q -r requirements-test.txt
# cudnn-frontend's headers (cuDNN's fused attention in the CUDA backend; header-only, found by CMake).
python3 -c "import importlib.util as u, sys; sys.exit(u.find_spec('cudnn') is None)" 2>/dev/null ||
  python3 -m pip install -q nvidia-cudnn-frontend

cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$(nproc)"
