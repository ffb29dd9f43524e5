#!/usr/bin/env bash
# Stage 1: mask search of pix2pix on cityscapes with the settings of the published results (method.md §11.2).
# Options given to this script are appended (e.g. --gpu_ids -1, or --dataroot elsewhere).
set -euo pipefail
cd "$(dirname "$0")/../../.."
${PYTHON:-python} train.py \
  --dataroot ./datasets/cityscapes \
  --model pix2pix \
  --mask \
  --mask_weight_decay 0.01 \
  --AtoB_macs_threshold 4.0 \
  --frozen_threshold 0.7 \
  --ngf 48 \
  --ndf 128 \
  --gan_mode hinge \
  --load_size 256 \
  --no_flip \
  --direction BtoA \
  --save_epoch_freq 5 \
  --name mask_cityscapes \
  "$@"
