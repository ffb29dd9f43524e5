#!/usr/bin/env bash
# Download an unpaired CycleGAN dataset into datasets/NAME (trainA, trainB, testA, testB).
set -euo pipefail

NAMES="apple2orange summer2winter_yosemite horse2zebra monet2photo cezanne2photo ukiyoe2photo vangogh2photo maps cityscapes facades iphone2dslr_flower ae_photos"
usage() {
  echo "usage: $0 NAME   (NAME one of: $NAMES)" >&2
  exit 2
}
[[ $# -eq 1 ]] || usage
NAME=$1
known=0
for n in $NAMES; do if [[ $n == "$NAME" ]]; then known=1; fi; done
[[ $known == 1 ]] || usage

HERE=$(cd "$(dirname "$0")" && pwd)
URL="http://efrosgans.eecs.berkeley.edu/cyclegan/datasets/$NAME.zip"
ZIP="$HERE/$NAME.zip"
echo "downloading $URL"
if command -v wget >/dev/null 2>&1; then
  fetch() { wget -q --show-progress -O "$ZIP" "$URL"; }
else
  fetch() { curl -fL --progress-bar -o "$ZIP" "$URL"; }
fi
if ! fetch; then
  rm -f "$ZIP"
  echo "error: could not download $URL" >&2
  if [[ $NAME == cityscapes ]]; then
    echo "Cityscapes is licensed: get gtFine_trainvaltest.zip and leftImg8bit_trainvaltest.zip from https://www.cityscapes-dataset.com and pair them with prepare_cityscapes_dataset.py from pytorch-CycleGAN-and-pix2pix" >&2
  fi
  exit 1
fi
unzip -q -o "$ZIP" -d "$HERE"
rm -f "$ZIP"
echo "dataset in $HERE/$NAME"
