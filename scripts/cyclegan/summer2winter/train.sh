#!/usr/bin/env bash
# Stage 1: mask search of cyclegan on summer2winter with the settings of the published results (method.md §11.2).
# Options given to this script are appended (e.g. --gpu_ids -1, or --dataroot elsewhere).
set -euo pipefail
cd "$(dirname "$0")/../../.."
${PYTHON:-python} train.py \
  --dataroot ./datasets/summer2winter \
  --model cyclegan \
  --mask \
  --mask_weight_decay 0.001 \
  --lambda_update_coeff 1.0 \
  --upconv_bound \
  --upconv_coeff 100.0 \
  --AtoB_macs_threshold 4.0 \
  --BtoA_macs_threshold 4.0 \
  --name mask_summer2winter \
  "$@"
