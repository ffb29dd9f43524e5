#!/usr/bin/env bash
# Download an unpaired CycleGAN dataset into datasets/NAME (trainA, trainB, testA, testB).
set -euo pipefail
source "$(dirname "$0")/download_common.sh"
fetch_dataset "$0" "apple2orange summer2winter_yosemite horse2zebra monet2photo cezanne2photo ukiyoe2photo vangogh2photo maps cityscapes facades iphone2dslr_flower ae_photos" \
  "http://efrosgans.eecs.berkeley.edu/cyclegan/datasets" zip "$@"
