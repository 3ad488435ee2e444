#!/usr/bin/env bash
# Builds the GPU tests and the device benchmark for Hopper (sm_90a) into a small folder that can
# travel to a GPU machine without the project's Debian packages: the two binaries plus the
# shared libraries they need that a CUDA image lacks (fmt, liburing, xxhash, OpenMP).
#
#   scripts/build-device.sh [DEST=.devbuild]
set -euo pipefail
cd "$(dirname "$0")/.."
DEST=${1:-.devbuild}
cmake -S . -B build/device -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_CUDA_COMPILER=/usr/local/cuda/bin/nvcc -DCMAKE_CUDA_ARCHITECTURES=90a \
  -DCACHEDATTN_ENABLE_CUDA=ON -DCACHEDATTN_BUILD_BENCHMARKS=ON -DCACHEDATTN_BUILD_EXAMPLES=OFF \
  -DCACHEDATTN_BUILD_LEVEL_TESTS=OFF >/dev/null
cmake --build build/device --target cachedattn_cuda_tests cachedattn_device_bench
rm -rf "$DEST" && mkdir -p "$DEST/lib"
cp build/device/tests/cachedattn_cuda_tests build/device/bench/cuda/cachedattn_device_bench "$DEST/"
for lib in $(ldd "$DEST/cachedattn_cuda_tests" | awk '/=>/{print $3}' | grep -E 'libfmt|liburing|libxxhash|libgomp'); do
  cp -L "$lib" "$DEST/lib/"
done
ls -la "$DEST" "$DEST/lib"
