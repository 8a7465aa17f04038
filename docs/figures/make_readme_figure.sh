#!/usr/bin/env bash
# Regenerates docs/figures/digits_lt_per_class.png, the README's figure, from the offline digits_lt
# quick start (tiny random-init CLIP: the figure shows the pipeline, not CLIP's accuracy).
#   docs/figures/make_readme_figure.sh [RESULTS_DIR]   (default: a new temporary folder)
set -euo pipefail
cd "$(dirname "$0")/../.."
results="${1:-$(mktemp -d)}"
ltbench() { python -m ltbench "$@"; }  # this checkout's ltbench, installed or not
ltbench run --method zeroshot_clip --dataset digits_lt --out "$results" --no-progress
ltbench run --method linear_probe --dataset digits_lt --out "$results" --no-progress
ltbench plot per-class --dataset digits_lt --results "$results"
cp "$results/plots/digits_lt/per-class.png" docs/figures/digits_lt_per_class.png
ltbench report --results "$results"
echo "figure: docs/figures/digits_lt_per_class.png; report: $results/report/index.html"
