"""Train a CycleGAN or pix2pix model: a plain (teacher) run, or the mask search with --mask.

    python train.py --dataroot datasets/toy/unaligned --model cyclegan --name toy --crop_size 64 ...
"""
from util.cli import before_imports

before_imports()  # before torch loads: OpenMP's idle policy, a quiet Ctrl-C

from options import parse  # noqa: E402
from pipeline.train import run  # noqa: E402
from util.cli import cli_entry  # noqa: E402


@cli_entry
def main(argv=None):
    run(parse("train", argv))


if __name__ == "__main__":
    main()
