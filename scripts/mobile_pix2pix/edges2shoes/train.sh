#!/usr/bin/env bash
# Stage 1: mask search of mobilepix2pix on edges2shoes with the settings of the published results (method.md §11.2).
# Options given to this script are appended (e.g. --gpu_ids -1, or --dataroot elsewhere).
set -euo pipefail
cd "$(dirname "$0")/../../.."
${PYTHON:-python} train.py \
  --dataroot ./datasets/edges2shoes \
  --model mobilepix2pix \
  --mask \
  --mask_weight_decay 0.006 \
  --lambda_update_coeff 2.0 \
  --upconv_bound \
  --upconv_coeff 100.0 \
  --AtoB_macs_threshold 4.5 \
  --ngf 48 \
  --ndf 128 \
  --gan_mode hinge \
  --load_size 256 \
  --no_flip \
  --name mobile_mask_edges2shoes \
  "$@"
