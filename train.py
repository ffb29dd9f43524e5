"""Train a CycleGAN or pix2pix model: a plain (teacher) run, or the mask search with --mask.

    python train.py --dataroot datasets/toy/unaligned --model cyclegan --name toy --crop_size 64 ...
"""
import os

# Idle OpenMP threads sleep instead of spinning: on a shared or busy CPU, spinning threads make
# training many times slower. Must be set before torch loads OpenMP; an explicit setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
from util.cli import quiet_start  # noqa: E402

quiet_start()  # before torch loads: a Ctrl-C meanwhile ends without a traceback

from options import parse  # noqa: E402
from pipeline.train import run  # noqa: E402
from util.cli import cli_entry  # noqa: E402

@cli_entry
def main(argv=None):
    run(parse("train", argv))


if __name__ == "__main__":
    main()
