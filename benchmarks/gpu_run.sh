#!/usr/bin/env bash
# The prepared GPU benchmark: one command that ends within 5 minutes (each part has a time
# limit; a part cut short still printed every variant it finished, one JSON line each).
#   bash benchmarks/gpu_run.sh [OUT_DIR]
# 1. DS-CNN-S, every speed-up alone and all together; 2. BC-ResNet-1, baseline and all;
# 3. with 2+ GPUs, a 2-process torchrun epoch of DS-CNN-S (baseline and all).
# Dry run of the same commands on a CPU (small epochs, no CUDA-graph variants):
#   KWS_BENCH_DEVICE=cpu KWS_BENCH_CLIPS=300 KWS_BENCH_PROCS=2 bash benchmarks/gpu_run.sh /tmp/b
set -uo pipefail
out="${1:-${OUT:-.}}"
mkdir -p "$out"
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
python="${PYTHON:-python3}"
device="${KWS_BENCH_DEVICE:-auto}"
clips="${KWS_BENCH_CLIPS:-85511}"
s_variants="${KWS_BENCH_VARIANTS:-baseline all fused_optimizer compile_data compile graphs channels_last}"
procs="${KWS_BENCH_PROCS:-0}"
if command -v nvidia-smi >/dev/null 2>&1; then
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  [ "$procs" = 0 ] && procs=$(nvidia-smi -L | grep -c '^GPU')
fi
run() {  # run LIMIT_S NAME COMMAND...: a part with a time limit
  local limit=$1 name=$2; shift 2
  echo "== $name (limit ${limit} s)"
  timeout "$limit" "$@" || echo "== $name ended early (exit $?); the lines above are complete"
}
common=(--device "$device" --clips "$clips")
run 170 "DS-CNN-S" "$python" benchmarks/gpu_epoch.py "${common[@]}" --models ds_cnn_s \
  --variants $s_variants --json "$out/gpu_epoch_ds_cnn_s.json"
run 70 "BC-ResNet-1" "$python" benchmarks/gpu_epoch.py "${common[@]}" --models bc_resnet_1 \
  --variants baseline all --json "$out/gpu_epoch_bc_resnet_1.json"
if [ "$procs" -ge 2 ]; then
  run 50 "DS-CNN-S, 2 processes" "$python" -m torch.distributed.run --standalone \
    --nproc-per-node 2 benchmarks/gpu_epoch.py "${common[@]}" --models ds_cnn_s \
    --variants baseline all --json "$out/gpu_epoch_ds_cnn_s_2proc.json"
fi
