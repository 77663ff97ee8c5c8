#!/usr/bin/env bash
# The prepared GPU benchmark: one command, under 5 minutes on an H100/H200.
#   bash benchmarks/gpu_run.sh [OUT_DIR]
set -euo pipefail
out="${1:-${OUT:-.}}"
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
python3 benchmarks/gpu_epoch.py --json "$out/gpu_epoch_b100.json"
python3 benchmarks/gpu_epoch.py --batch-size 512 --json "$out/gpu_epoch_b512.json"
