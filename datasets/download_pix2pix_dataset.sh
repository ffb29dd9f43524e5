#!/usr/bin/env bash
# Download a paired pix2pix dataset into datasets/NAME (train, val[, test] of A|B images).
set -euo pipefail

NAMES="cityscapes night2day edges2handbags edges2shoes facades maps"
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
URL="http://efrosgans.eecs.berkeley.edu/pix2pix/datasets/$NAME.tar.gz"
TAR="$HERE/$NAME.tar.gz"
echo "downloading $URL"
if command -v wget >/dev/null 2>&1; then
  fetch() { wget -q --show-progress -O "$TAR" "$URL"; }
else
  fetch() { curl -fL --progress-bar -o "$TAR" "$URL"; }
fi
if ! fetch; then
  rm -f "$TAR"
  echo "error: could not download $URL" >&2
  if [[ $NAME == cityscapes ]]; then
    echo "Cityscapes is licensed: get gtFine_trainvaltest.zip and leftImg8bit_trainvaltest.zip from https://www.cityscapes-dataset.com and pair them with prepare_cityscapes_dataset.py from pytorch-CycleGAN-and-pix2pix" >&2
  fi
  exit 1
fi
tar -xzf "$TAR" -C "$HERE"
rm -f "$TAR"
echo "dataset in $HERE/$NAME"
