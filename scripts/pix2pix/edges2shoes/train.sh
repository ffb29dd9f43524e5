#!/usr/bin/env bash
# Stage 1: mask search of pix2pix on edges2shoes with the settings of the published results (method.md §11.2).
# Options given to this script are appended (e.g. --gpu_ids -1, or --dataroot elsewhere).
set -euo pipefail
cd "$(dirname "$0")/../../.."
${PYTHON:-python} train.py \
  --dataroot ./datasets/edges2shoes \
  --model pix2pix \
  --mask \
  --mask_weight_decay 0.01 \
  --AtoB_macs_threshold 3.0 \
  --frozen_threshold 0.8 \
  --ngf 48 \
  --ndf 128 \
  --gan_mode hinge \
  --load_size 256 \
  --no_flip \
  --batch_size 4 \
  --save_epoch_freq 5 \
  --name mask_edges2shoes \
  "$@"
