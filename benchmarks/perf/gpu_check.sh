#!/usr/bin/env bash
# One GPU check of ltbench's speed and memory: what a CPU cannot show (see gpu_check.py for
# every section). Under 8 minutes on one H100 / H200: each section starts only while the
# 420 s budget lasts, and the whole run is cut at 470 s; the JSON is rewritten after every
# section, so a cut run keeps what it measured.
#
#   bash benchmarks/perf/gpu_check.sh [OUT.json]      (default: gpu_check.json)
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT="${1:-gpu_check.json}"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export HF_HUB_OFFLINE=1            # random-init models only: never wait on the network
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
timeout 470 python benchmarks/perf/gpu_check.py --device cuda --out "$OUT" --budget-s 420 "${@:2}"
status=$?
echo "wrote $OUT (exit $status)"
exit $status
