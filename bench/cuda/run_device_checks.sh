#!/usr/bin/env bash
# Everything issues 5 and 15 measure on a GPU, in one run: GPU tests, compute-sanitizer (memcheck) on the
# kernel tests, the device benchmark and its PyTorch peers, then a table of ratios.
#
#   bench/cuda/run_device_checks.sh [BIN_DIR] [OUT_DIR]
#
# BIN_DIR holds cachedattn_cuda_tests, cachedattn_device_bench and lib/ (shared libraries they
# need that the GPU machine lacks). scripts/build-device.sh makes it on a Debian machine with the
# project's packages (the GPU machine has nvcc, CMake and PyTorch but none of them); without
# BIN_DIR the script builds here, which needs those packages.
set -uo pipefail
cd "$(dirname "$0")/../.."
BIN=${1:-.devbuild}
OUT_DIR=${2:-${OUT:-out/device}}
mkdir -p "$OUT_DIR"
if [ ! -x "$BIN/cachedattn_cuda_tests" ]; then
  bash scripts/build-device.sh "$BIN" || exit 1
fi
export LD_LIBRARY_PATH="$PWD/$BIN/lib:${LD_LIBRARY_PATH:-}"
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,temperature.gpu --format=csv | tee "$OUT_DIR/gpu.txt"
status=0
echo "== GPU tests"
"$BIN/cachedattn_cuda_tests" >"$OUT_DIR/gpu_tests.log" 2>&1
rc=$?
grep -E "^device:|MESSAGE|ERROR|CHECK|with expansion|values:|CAPTURE|:=|test cases|assertions|Status" "$OUT_DIR/gpu_tests.log" | head -60
echo "GPU tests exit: $rc"
[ $rc -eq 0 ] || status=1
echo "== compute-sanitizer memcheck (kernel tests)"
timeout 300 compute-sanitizer --tool memcheck --error-exitcode 3 "$BIN/cachedattn_cuda_tests" \
  -tc='fused*,append*,rope_inplace*,kernel*' >"$OUT_DIR/memcheck.log" 2>&1
echo "memcheck exit: $?"; tail -4 "$OUT_DIR/memcheck.log"
# Shared-memory races: the key-split kernel merges its warps' states through the K/V buffers.
echo "== compute-sanitizer racecheck (fused attention)"
timeout 300 compute-sanitizer --tool racecheck --error-exitcode 3 "$BIN/cachedattn_cuda_tests" \
  -tc='fused*' >"$OUT_DIR/racecheck.log" 2>&1
echo "racecheck exit: $?"; tail -4 "$OUT_DIR/racecheck.log"
echo "== device benchmark"
"$BIN/cachedattn_device_bench" "$OUT_DIR/ours.json" 2>&1 | tee "$OUT_DIR/bench.log" || status=1
echo "== PyTorch peers"
PYTHONUNBUFFERED=1 python3 bench/cuda/peers.py "$OUT_DIR/ours.json" "$OUT_DIR/peers.json" 2>&1 | tee "$OUT_DIR/peers.log"
exit $status
