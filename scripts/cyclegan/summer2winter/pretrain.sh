#!/usr/bin/env bash
# Stage 0: the full-size cyclegan teacher on summer2winter; fine-tuning reads ./pretrain/summer2winter_cyclegan/model_best.pth.
# Options given to this script are appended (e.g. --gpu_ids -1, or --dataroot elsewhere).
set -euo pipefail
cd "$(dirname "$0")/../../.."
${PYTHON:-python} train.py \
  --dataroot ./datasets/summer2winter \
  --model cyclegan \
  --checkpoints_dir ./pretrain \
  --name summer2winter_cyclegan \
  "$@"
