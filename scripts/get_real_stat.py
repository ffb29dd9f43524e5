r"""FID statistics (``mu``, ``sigma``) of the real images of one domain, for ``<dataroot>/real_stat_<X>.npz``.

    python scripts/get_real_stat.py --dataroot database/edges2shoes-r \
        --output_path database/edges2shoes-r/real_stat_B.npz

``--direction AtoB`` takes the B images (the targets of an A->B generator), ``BtoA`` the A images.
Images take the same uint8 path as generated ones (method.md §9.2).
"""
import logging
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from util.cli import before_imports  # noqa: E402

before_imports()  # before torch loads: OpenMP's idle policy, a quiet Ctrl-C

from tqdm import tqdm  # noqa: E402

import data  # noqa: E402
import options  # noqa: E402
from data.transforms import MODES as PREPROCESS  # noqa: E402
from metrics.evaluate import SCRIPT_STATISTICS, statistics_record  # noqa: E402
from metrics.fid import (default_inception_path, fake_to_unit, feature_statistics,  # noqa: E402
                         inception_features, load_inception, save_statistics)
from util.device import select_device  # noqa: E402
from util.errors import ArgumentParser, UserError  # noqa: E402
from util.cli import cli_entry  # noqa: E402
from util.logger import setup_logging  # noqa: E402

log = logging.getLogger("dmad")


def build_parser():
    p = ArgumentParser(prog="get_real_stat.py", description=__doc__.splitlines()[0], allow_abbrev=False)
    p.add_argument("--dataroot", required=True, help="dataset root folder")
    p.add_argument("--output_path", required=True, help="the .npz file to write (keys mu, sigma)")
    p.add_argument("--dataset_mode", default="aligned", choices=("aligned", "unaligned", "single"),
                   help="default: aligned")
    p.add_argument("--phase", default="val", help="split: val/ for aligned, <phase>A and <phase>B for unaligned. "
                                                   "default: val")
    p.add_argument("--direction", default="AtoB", choices=("AtoB", "BtoA"),
                   help="AtoB takes the B images, BtoA the A images. default: AtoB")
    p.add_argument("--preprocess", default="none", choices=PREPROCESS, help="default: none")
    p.add_argument("--load_size", type=int, default=256, help="default: 256")
    p.add_argument("--crop_size", type=int, default=256, help="default: 256")
    p.add_argument("--input_nc", type=int, default=3, choices=(1, 3), help="channels of the A images. default: 3")
    p.add_argument("--output_nc", type=int, default=3, choices=(1, 3), help="channels of the B images. default: 3")
    p.add_argument("--max_dataset_size", type=float, default=math.inf, help="at most this many images. default: inf")
    p.add_argument("--gpu_ids", default=None, help="e.g. 0; -1 for the CPU. default: GPU 0 when available")
    p.add_argument("--inception_path", default=None,
                   help=f"FID Inception weights. default: {default_inception_path()}")
    p.add_argument("--batch_size", type=int, default=32, help="Inception batch size. default: 32")
    return p


def dataset_options(args):
    """The full option set the data package reads: parser defaults, then this script's values."""
    opt = options.build_parser("test").parse_args(["--dataroot", args.dataroot])
    for key in ("dataset_mode", "phase", "direction", "preprocess", "load_size", "crop_size", "input_nc",
                "output_nc", "max_dataset_size", "gpu_ids", "batch_size"):
        setattr(opt, key, getattr(args, key))
    opt.script, opt.isTrain, opt.user_set = "test", False, []
    opt.serial_batches, opt.no_flip, opt.num_threads = True, True, 0
    return options.validate(opt)


@cli_entry
def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.batch_size < 1:
        raise UserError(f"--batch_size must be positive, got {args.batch_size}")
    opt = dataset_options(args)
    domain = "B" if args.direction == "AtoB" else "A"
    if args.dataset_mode == "single":
        domain = "A"  # one folder: its images are the statistics
    # the weights are required here: naming the default path makes its absence a UserError too
    inception_path = args.inception_path or default_inception_path()
    model = load_inception(inception_path, "cpu")
    dataset = data.create_dataset(opt, train=False)
    setup_logging()
    device = select_device(opt.gpu_ids)
    model.to(device)
    # images that keep their own sizes (--preprocess none, scale_width) are batched by size
    loader = data.create_dataloader(opt, dataset, shuffle=False, batch_size=args.batch_size, num_workers=0,
                                    by_size=True)
    seen = set()

    def unique_batches():
        # the unaligned index wraps around the smaller domain: keep each file once
        for batch in tqdm(loader, desc="real images", leave=False):
            rows = [i for i, p in enumerate(batch[domain + "_paths"]) if not (p in seen or seen.add(p))]
            if rows:
                yield fake_to_unit(batch[domain][rows])

    feats = inception_features(model, unique_batches(), device)
    mu, sigma = feature_statistics(feats)
    # recorded, so that an evaluation on other data names the difference (it uses the file as it is)
    record = dict(statistics_record(opt, dataset, domain, inception_path), images=len(feats),
                  made_by=SCRIPT_STATISTICS)
    save_statistics(args.output_path, mu, sigma, meta=record)
    log.info("statistics of %d %s images of %s written to %s", len(feats), domain, args.dataroot,
             args.output_path)


if __name__ == "__main__":
    main()
