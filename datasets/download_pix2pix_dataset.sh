#!/usr/bin/env bash
# Download a paired pix2pix dataset into datasets/NAME (train, val[, test] of A|B images).
set -euo pipefail
source "$(dirname "$0")/download_common.sh"
fetch_dataset "$0" "cityscapes night2day edges2handbags edges2shoes facades maps" \
  "http://efrosgans.eecs.berkeley.edu/pix2pix/datasets" tar.gz "$@"
