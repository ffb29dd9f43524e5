#!/usr/bin/env bash
# Stages 2-3: prune the search result of train.sh and fine-tune it with distillation from the
# pix2pix teacher of pretrain.sh (PRETRAIN=<file> names another teacher of the same architecture).
# Options given to this script are appended (e.g. --gpu_ids -1, or --dataroot elsewhere).
set -euo pipefail
cd "$(dirname "$0")/../../.."
${PYTHON:-python} prune.py \
  --dataroot ./datasets/cityscapes \
  --model pix2pix \
  --mask \
  --ngf 48 \
  --ndf 128 \
  --gan_mode hinge \
  --load_size 256 \
  --no_flip \
  --direction BtoA \
  --save_epoch_freq 5 \
  --checkpoints_dir ./experiments/mask_cityscapes \
  --name pruned_cityscapes \
  --load_path ./experiments/mask_cityscapes/model_best.pth \
  --finetune \
  --lambda_attention_distill 10.0 \
  --lambda_discriminator_distill 0.0001 \
  --pretrain_path "${PRETRAIN:-./pretrain/cityscapes_pix2pix/model_best.pth}" \
  "$@"
