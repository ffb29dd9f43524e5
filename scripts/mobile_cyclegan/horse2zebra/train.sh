#!/usr/bin/env bash
# Stage 1: mask search of mobilecyclegan on horse2zebra with the settings of the published results (method.md §11.2).
# Options given to this script are appended (e.g. --gpu_ids -1, or --dataroot elsewhere).
set -euo pipefail
cd "$(dirname "$0")/../../.."
${PYTHON:-python} train.py \
  --dataroot ./datasets/horse2zebra \
  --model mobilecyclegan \
  --mask \
  --mask_weight_decay 0.002 \
  --lambda_update_coeff 5.0 \
  --upconv_bound \
  --upconv_coeff 200.0 \
  --AtoB_macs_threshold 2.5 \
  --BtoA_macs_threshold 4.0 \
  --ngf 32 \
  --name mobile_mask_horse2zebra \
  "$@"
