#!/usr/bin/env bash
# ltbench's smoke check on this machine's devices: every registered method on digits_lt, the
# 2-process torchrun runs and CUDA contexts per GPU (with 2 or more GPUs), a CMYK JPEG through
# gpu_jpeg, deterministic mode. About 3 minutes on one GPU; on the CPU (--device cpu: the CI
# check that it still works) the CUDA-only checks print SKIP. One PASS / FAIL / SKIP line per
# check (see gpu_smoke.py); exits non-zero when a check failed or the run was cut.
#
#   bash benchmarks/perf/gpu_smoke.sh [--device cuda|cuda:N|cpu] [--out DIR] [gpu_smoke.py options]
#   (default: --device cuda, --out a new temporary folder; on a lent GPU machine: --out "$OUT/smoke")
set -uo pipefail
cd "$(dirname "$0")/../.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export HF_HUB_OFFLINE=1            # digits_lt with the tiny backbone: never wait on the network
status=0
timeout "${GPU_SMOKE_TIMEOUT_S:-420}" python benchmarks/perf/gpu_smoke.py "$@" || status=$?
if [[ $status == 124 || $status == 137 ]]; then
    echo "FAIL gpu_smoke: cut at ${GPU_SMOKE_TIMEOUT_S:-420} s (smoke.json in the --out folder holds the checks that finished)"
fi
exit $status
