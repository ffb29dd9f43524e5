"""Translate the test split with a trained model and write an HTML page, images and metrics.json.

    python test.py --dataroot datasets/toy/unaligned --model cyclegan --name toy [--load_path ckpt.pth]

Without --load_path it loads ``<checkpoints_dir>/<name>/model_best.pth``, else the run's latest
checkpoint. Results go to ``<results_dir>/<name>/<phase>_<epoch or best>/`` (``test_...`` by default),
replacing those of an earlier run as a whole once complete (a run that fails leaves them as they
were); ``metrics.json`` holds the split (``phase``), the MACs/params of the generators, FID or mIoU when their weights are present and, on aligned data, L1,
PSNR and SSIM of the outputs against the ground truth (the other half of each pair; metrics/paired.py).
"""
from util.cli import before_imports

before_imports()  # before torch loads: OpenMP's idle policy, a quiet Ctrl-C

from options import parse  # noqa: E402
from pipeline.test import run  # noqa: E402
from util.cli import cli_entry  # noqa: E402


@cli_entry
def main(argv=None):
    run(parse("test", argv))


if __name__ == "__main__":
    main()
