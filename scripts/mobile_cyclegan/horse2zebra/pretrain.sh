#!/usr/bin/env bash
# Stage 0: the full-size mobilecyclegan teacher on horse2zebra; fine-tuning reads ./pretrain/horse2zebra_mobilecyclegan/model_best.pth.
# Options given to this script are appended (e.g. --gpu_ids -1, or --dataroot elsewhere).
set -euo pipefail
cd "$(dirname "$0")/../../.."
${PYTHON:-python} train.py \
  --dataroot ./datasets/horse2zebra \
  --model mobilecyclegan \
  --checkpoints_dir ./pretrain \
  --name horse2zebra_mobilecyclegan \
  "$@"
