#!/usr/bin/env bash
# Pack this machine's build for the GPU machine (same x86-64, CUDA 13.0):
# the binaries, stripped, under .carry/gpu, and under .carry/gpu/lib the
# shared libraries they link that the device image lacks (gloo, OpenBLAS,
# protobuf, ...: everything outside libc and the CUDA toolkit, which the image
# has). The peer scripts of ../shared/bench go to .carry/peers.
set -euo pipefail
cd "$(dirname "$0")/.."
G=.carry/gpu
rm -rf "$G"; mkdir -p "$G/lib" .carry/peers
cp build/tessera build/libtessera.so build/tests/tessera_tests build/tensor_parallel_simple_example build/data_parallel_simple_example "$G/"
strip --strip-unneeded "$G"/tessera "$G"/libtessera.so "$G"/tessera_tests "$G"/*_example
for f in "$G"/tessera "$G"/libtessera.so "$G"/tessera_tests; do
  ldd "$f" | awk '/=> \// {print $3}'
done | sort -u | grep -vE '/(libc|libm|libdl|librt|libpthread|libgcc_s|libstdc\+\+|ld-linux[^/]*)\.so|/usr/local/cuda|libcuda\.so|libcudnn|libcublas|libnccl|libtessera' |
  while read -r lib; do cp -L "$lib" "$G/lib/"; done
# Compressed: the carried tree is limited to 64 MiB (run_gpu.sh unpacks it).
tar -C "$G" -cJf "$G/lib.tar.xz" lib && rm -rf "$G/lib"
cp ../shared/bench/*.py .carry/peers/
du -sh "$G" .carry/peers
