#!/usr/bin/env bash
# One prepared GPU session (issue 27): under one timeout, in order,
#   1. smoke   benchmarks/perf/gpu_smoke.sh (every method on digits_lt, DDP, CMYK, deterministic)
#   2. check   benchmarks/perf/gpu_check.sh (speed and memory sections, a JSON)
#   3. ballad  ltbench run --method ballad --dataset digits_lt --backbone ViT-B-16:none --device cuda
#   4. lift    ltbench run --method lift   --dataset digits_lt --backbone ViT-B-16:none --device cuda
# each with its own timeout inside the whole one, its log in the output folder; a step that fails
# or is cut does not stop the next. The last lines are one PASS / FAIL per step; the exit status
# is non-zero when a step failed. Everything (logs, records, the feature cache, smoke.json,
# gpu_check.json) goes under --out DIR, by default $OUT (a lent device machine's output folder),
# else a new temporary folder.
#
#   bash benchmarks/perf/gpu_session.sh [--device cuda|cpu] [--small] [--out DIR] [--timeout-s S]
#                                        [--steps smoke,check,ballad,lift] [--dry-run]
#   --small      the CPU rehearsal's sizes: the tiny backbone, short schedules, gpu_check at toy sizes
#   --dry-run    print the plan (each step's command and timeout) and run nothing
#
# Budget (default --timeout-s 570, under a 600 s device call): smoke 200 s, check 170 s (its
# sections start within 120 s), ballad 90 s, lift 90 s.
set -uo pipefail
cd "$(dirname "$0")/../.."

usage() { sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

DEVICE=cuda SMALL=0 DRY=0 STEPS="smoke,check,ballad,lift" TOTAL_S=570
RESULTS="${OUT:-}"
while [[ $# -gt 0 ]]; do
    case "$1" in
        --device) [[ $# -ge 2 ]] || usage; DEVICE="$2"; shift 2 ;;
        --out) [[ $# -ge 2 ]] || usage; RESULTS="$2"; shift 2 ;;
        --timeout-s) [[ $# -ge 2 && "$2" =~ ^[0-9]+$ ]] || usage; TOTAL_S="$2"; shift 2 ;;
        --steps) [[ $# -ge 2 ]] || usage; STEPS="$2"; shift 2 ;;
        --small) SMALL=1; shift ;;
        --dry-run) DRY=1; shift ;;
        -h|--help) usage ;;
        *) echo "gpu_session.sh: unknown argument '$1'" >&2; usage ;;
    esac
done
[[ "$DEVICE" =~ ^(cuda(:[0-9]+)?|cpu)$ ]] || { echo "gpu_session.sh: --device $DEVICE: cuda, cuda:N or cpu" >&2; exit 2; }
for step in ${STEPS//,/ }; do
    [[ "$step" =~ ^(smoke|check|ballad|lift)$ ]] || { echo "gpu_session.sh: unknown step '$step' (smoke, check, ballad, lift)" >&2; exit 2; }
done
RESULTS="${RESULTS:-$(mktemp -d -t ltbench-gpu-session-XXXXXX)}"
mkdir -p "$RESULTS" && RESULTS="$(cd "$RESULTS" && pwd)"

# The whole session under one timeout: run again inside it (the steps below have their own).
if [[ $DRY == 0 && -z "${GPU_SESSION_INNER:-}" ]]; then
    status=0
    GPU_SESSION_INNER=1 timeout "$TOTAL_S" bash "$0" --device "$DEVICE" --out "$RESULTS" --steps "$STEPS" \
        $([[ $SMALL == 1 ]] && echo --small) || status=$?
    [[ $status == 124 ]] && echo "FAIL session: cut at $TOTAL_S s; the logs in $RESULTS hold what finished"
    exit $status
fi

export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export HF_HUB_OFFLINE=1 LTBENCH_CACHE="$RESULTS/cache"
BACKBONE="ViT-B-16:none" RUN_OPTIONS=() CHECK_OPTIONS=()
if [[ $SMALL == 1 ]]; then
    BACKBONE=tiny
    RUN_OPTIONS=(--cfg-options phase_a.epochs=2 phase_b.epochs=2)
    CHECK_OPTIONS=(--backbones tiny --clip tiny --batch 2 --phase-a-batch 4 --steps 1 --text-classes 2
                   --jpegs 8 --prompt-classes 4 --sections extraction,phase_a,decoder,text_classifier,jpeg)
fi
LIFT_OPTIONS=()
[[ $SMALL == 1 ]] && LIFT_OPTIONS=(--cfg-options train.epochs=2)

declare -A LIMIT=([smoke]=200 [check]=170 [ballad]=90 [lift]=90)
command_of() {
    case "$1" in
        smoke) echo env GPU_SMOKE_TIMEOUT_S="${LIMIT[smoke]}" bash benchmarks/perf/gpu_smoke.sh --device "$DEVICE" \
                    --out "$RESULTS/smoke" ;;
        check) echo env GPU_CHECK_TIMEOUT_S="${LIMIT[check]}" GPU_CHECK_BUDGET_S=120 bash benchmarks/perf/gpu_check.sh \
                    "$RESULTS/gpu_check.json" --device "$DEVICE" "${CHECK_OPTIONS[@]}" ;;
        ballad) echo python -m ltbench run --method ballad --dataset digits_lt --backbone "$BACKBONE" \
                    --device "$DEVICE" --out "$RESULTS/results" --no-progress "${RUN_OPTIONS[@]}" ;;
        lift) echo python -m ltbench run --method lift --dataset digits_lt --backbone "$BACKBONE" \
                    --device "$DEVICE" --out "$RESULTS/results" --no-progress "${LIFT_OPTIONS[@]}" ;;
    esac
}

echo "gpu_session on $DEVICE$([[ $SMALL == 1 ]] && echo ' (--small)'), steps $STEPS, results in $RESULTS, under $TOTAL_S s"
if [[ $DRY == 1 ]]; then
    for step in ${STEPS//,/ }; do
        echo "plan $step (timeout ${LIMIT[$step]} s): $(command_of "$step")"
    done
    exit 0
fi
{ nvidia-smi 2>/dev/null || echo "(no nvidia-smi)"; uptime; } > "$RESULTS/machine.txt"
summary=() failed=0
for step in ${STEPS//,/ }; do
    started=$SECONDS status=0
    echo "== $step: $(command_of "$step")"
    # shellcheck disable=SC2046  # the command is words built above, none with spaces
    timeout "${LIMIT[$step]}" $(command_of "$step") > >(tee "$RESULTS/$step.log") 2> "$RESULTS/$step.err" || status=$?
    seconds=$((SECONDS - started))
    if [[ $status == 0 ]]; then verdict=PASS; else verdict=FAIL; failed=1; fi
    [[ $status == 124 ]] && note=", cut at ${LIMIT[$step]} s" || note=""
    summary+=("$verdict $step (exit $status, $seconds s$note; $RESULTS/$step.log)")
done
printf '%s\n' "${summary[@]}" | tee "$RESULTS/session.txt"
exit $failed
