#!/usr/bin/env bash
# Stages 2-3: prune the search result of train.sh and fine-tune it with distillation from the
# cyclegan teacher of pretrain.sh (PRETRAIN=<file> names another teacher of the same architecture).
# Options given to this script are appended (e.g. --gpu_ids -1, or --dataroot elsewhere).
set -euo pipefail
cd "$(dirname "$0")/../../.."
${PYTHON:-python} prune.py \
  --dataroot ./datasets/summer2winter \
  --model cyclegan \
  --mask \
  --checkpoints_dir ./experiments/mask_summer2winter \
  --name pruned_summer2winter \
  --load_path ./experiments/mask_summer2winter/model_best.pth \
  --finetune \
  --lambda_attention_distill 100.0 \
  --lambda_discriminator_distill 0.0001 \
  --pretrain_path "${PRETRAIN:-./pretrain/summer2winter_cyclegan/model_best.pth}" \
  "$@"
