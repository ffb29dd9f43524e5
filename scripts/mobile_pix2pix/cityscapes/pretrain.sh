#!/usr/bin/env bash
# Stage 0: the full-size mobilepix2pix teacher on cityscapes; fine-tuning reads ./pretrain/cityscapes_mobilepix2pix/model_best.pth.
# Options given to this script are appended (e.g. --gpu_ids -1, or --dataroot elsewhere).
set -euo pipefail
cd "$(dirname "$0")/../../.."
${PYTHON:-python} train.py \
  --dataroot ./datasets/cityscapes \
  --model mobilepix2pix \
  --ndf 128 \
  --gan_mode hinge \
  --load_size 256 \
  --no_flip \
  --direction BtoA \
  --save_epoch_freq 5 \
  --checkpoints_dir ./pretrain \
  --name cityscapes_mobilepix2pix \
  "$@"
