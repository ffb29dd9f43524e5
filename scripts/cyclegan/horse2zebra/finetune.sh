#!/usr/bin/env bash
# Stages 2-3: prune the search result of train.sh and fine-tune it with distillation from the
# cyclegan teacher of pretrain.sh (PRETRAIN=<file> names another teacher of the same architecture).
# Options given to this script are appended (e.g. --gpu_ids -1, or --dataroot elsewhere).
set -euo pipefail
cd "$(dirname "$0")/../../.."
${PYTHON:-python} prune.py \
  --dataroot ./datasets/horse2zebra \
  --model cyclegan \
  --mask \
  --checkpoints_dir ./experiments/mask_horse2zebra \
  --name pruned_horse2zebra \
  --load_path ./experiments/mask_horse2zebra/model_best.pth \
  --finetune \
  --lambda_attention_distill 100.0 \
  --lambda_discriminator_distill 0.0001 \
  --pretrain_path "${PRETRAIN:-./pretrain/horse2zebra_cyclegan/model_best.pth}" \
  "$@"
