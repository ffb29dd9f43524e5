"""Disk use of a training run's checkpoints at the shipped settings (scripts/cyclegan, scripts/pix2pix).

    .venv/bin/python benchmarks/checkpoint_sizes.py [--epochs 200]

Builds each shipped mask search (CycleGAN ngf 64 on horse2zebra, 256 px, image pools full; pix2pix
ngf 64 / ndf 128 on Cityscapes), takes one optimiser step so that Adam's moments exist, writes the full
resume state (``checkpoints/latest.pth``) and a numbered snapshot (``checkpoints/model_<epoch>.pth``)
exactly as the training loop does (pipeline.checkpoint.training_state / snapshot) into a temporary
folder, and prints their sizes and the checkpoints folder of a whole run: before bounded snapshots
(a full state every epoch) and now (latest.pth + the newest ``--keep_checkpoints`` snapshots). Sizes
are of the files on disk; they do not depend on the machine.
"""
import argparse
import os
import sys
import tempfile

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from compress.mask_search import MaskSearch  # noqa: E402
from models import create_model  # noqa: E402
from options import parse  # noqa: E402
from pipeline.checkpoint import save_checkpoint, snapshot, training_state  # noqa: E402
from util.seed import rng_state  # noqa: E402

RUNS = {
    "CycleGAN search, horse2zebra (scripts/cyclegan/horse2zebra/train.sh)":
        ["--model", "cyclegan", "--mask", "--crop_size", "256", "--load_size", "286"],
    "pix2pix search, Cityscapes (scripts/pix2pix/cityscapes/train.sh)":
        ["--model", "pix2pix", "--mask", "--ndf", "128", "--crop_size", "256", "--load_size", "256",
         "--direction", "BtoA"],
}


def sizes(argv, workdir):
    """(latest.pth bytes, snapshot bytes) of the run ``argv`` describes."""
    opt = parse("train", ["--dataroot", workdir, "--gpu_ids", "-1", *argv])
    torch.manual_seed(0)
    model = create_model(opt, torch.device("cpu"))
    search = MaskSearch(opt, model, n_batches=1000)
    model.add_loss_term(search.loss_term)
    # one step allocates every Adam moment (the parameters do not depend on the image size): the smallest
    # side the generator takes (a U-Net-256 needs 256 px), two images for a BatchNorm at a 1x1 level
    side, n = max(64, opt.min_size_G), 2
    channels = {"A": opt.input_nc, "B": opt.output_nc}
    batch = {s: torch.rand(n, c, side, side) * 2 - 1 for s, c in channels.items()}
    batch.update({f"{s}_paths": ["x"] * n for s in channels})
    model.set_input(batch)
    model.optimize_parameters()
    for pool in getattr(model, "pools", {}).values():  # full pools of crop-size fakes
        while len(pool.images) < pool.size:
            pool.query(torch.rand(1, opt.output_nc, opt.crop_size, opt.crop_size))
    state = training_state(opt, "search", model.state_dict(), epoch=1, iteration=1, images_seen=1, world_size=1,
                           best={}, rng=rng_state(), search=search.state_dict())
    latest, snap = os.path.join(workdir, "latest.pth"), os.path.join(workdir, "model_1.pth")
    save_checkpoint(state, latest)
    save_checkpoint(snapshot(state), snap)
    return os.path.getsize(latest), os.path.getsize(snap)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=200, help="epochs of the run (n_epochs + n_epochs_decay)")
    parser.add_argument("--keep", type=int, default=3, help="--keep_checkpoints of the run. default: 3")
    args = parser.parse_args()
    mb = 1e6
    print("| run | latest.pth (full state, MB) | model_<epoch>.pth snapshot (MB) | "
          f"checkpoints/ after {args.epochs} epochs, a full state per epoch (GB) | now, --keep_checkpoints "
          f"{args.keep} (MB) |")
    print("|---|---:|---:|---:|---:|")
    for label, argv in RUNS.items():
        with tempfile.TemporaryDirectory() as workdir:
            full, snap = sizes(argv, workdir)
        before = (args.epochs + 1) * full
        now = full + min(args.keep or args.epochs, args.epochs) * snap
        print(f"| {label} | {full / mb:.0f} | {snap / mb:.0f} | {before / 1e9:.1f} | {now / mb:.0f} |")


if __name__ == "__main__":
    main()
