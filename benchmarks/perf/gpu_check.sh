#!/usr/bin/env bash
# One GPU check of ltbench's speed and memory: what a CPU cannot show (see gpu_check.py for
# every section). Under 8 minutes on one H100 / H200: each section starts only while the
# budget lasts (GPU_CHECK_BUDGET_S, 420 s), and the whole run is cut at GPU_CHECK_TIMEOUT_S
# (470 s); the JSON is rewritten after every section, so a cut run keeps what it measured.
# A failing section is recorded and the others still run; the summary lines always print, and
# the exit status is non-zero when a section failed or the run was cut.
#
#   bash benchmarks/perf/gpu_check.sh [OUT.json] [gpu_check.py options]   (default: gpu_check.json)
#   (a CPU dry run: ... OUT.json --device cpu --backbones tiny --clip tiny --batch 2 ...)
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT="${1:-gpu_check.json}"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export HF_HUB_OFFLINE=1            # random-init models only: never wait on the network
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "(no nvidia-smi)"
status=0
timeout "${GPU_CHECK_TIMEOUT_S:-470}" python benchmarks/perf/gpu_check.py --device cuda --out "$OUT" \
    --budget-s "${GPU_CHECK_BUDGET_S:-420}" "${@:2}" || status=$?
case $status in
    0) verdict="every section passed" ;;
    124|137) verdict="cut at ${GPU_CHECK_TIMEOUT_S:-470} s: $OUT holds the sections that finished" ;;
    *) verdict="some sections failed: see 'errors' in $OUT" ;;
esac
echo "gpu_check: wrote $OUT (exit $status: $verdict)"
exit $status
