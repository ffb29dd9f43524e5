"""Time the mask-search update point of a CycleGAN search and check its MACs estimate.

    .venv/bin/python benchmarks/bench_mask_update.py [--ngf 64] [--crop_size 256] [--searches 3] [--threads 2]

Builds the CycleGAN mask model (two ResNet-9 generators, early stop at 4 G MACs per direction, the
shipped search flags) and times ``MaskSearch.update`` (sparsity report, coefficients, early-stop check,
folding, new bounds, plot record) over the update points of a 200-epoch schedule with ~1000 images per
epoch. Then prints the early-stop candidate's MACs, counted from channel counts, next to
``util.flops.count_macs_params`` of the pruned-width generator actually built.
"""
import argparse
import logging
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from models import create_model  # noqa: E402
from compress.mask_search import MaskSearch, candidate_macs  # noqa: E402
from models.families.resnet import ResnetGenerator  # noqa: E402
from options import parse  # noqa: E402
from util.flops import count_macs_params  # noqa: E402

TARGET_MS = 8.0


def build(ngf, crop_size):
    opt = parse("train", ["--dataroot", "datasets/toy/unaligned", "--model", "cyclegan", "--mask", "--gpu_ids", "-1",
                          "--ngf", str(ngf), "--crop_size", str(crop_size), "--load_size", str(crop_size),
                          "--mask_weight_decay", "0.001", "--lambda_update_coeff", "1", "--upconv_bound",
                          "--upconv_coeff", "100", "--AtoB_macs_threshold", "4", "--BtoA_macs_threshold", "4"])
    model = create_model(opt, torch.device("cpu"))
    return opt, model


def time_schedule(opt, model, n_batches, seed):
    """Milliseconds per update point over one 200-epoch schedule: (while searching, after the bound hit 0)."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for name in model.generator_names:
            for p, m in model.nets[name].named_modules():
                if hasattr(m, "mask_weight"):
                    m.mask_weight.normal_(0, 0.2)
                    m.update(1.0)
    search = MaskSearch(opt, model, n_batches=n_batches)  # only its update points are timed: no loss attached
    searching, settled = [], []
    for it in range(search.freq, n_batches * 200 + 1, search.freq):
        start = time.perf_counter()
        search.after_iteration(it, 1 + (it - 1) // n_batches, it * opt.batch_size)
        elapsed = (time.perf_counter() - start) * 1e3
        (searching if search.records[-1]["bound"] > 0 else settled).append(elapsed)
    return searching, settled


def sparse_pattern(net, seed):
    """Mask weights whose candidate keeps 10-70 % of each layer and drops two whole blocks."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for path in net.structure().mask_names():
            w = net.get_submodule(path).mask_weight
            keep = float(torch.rand(1, generator=g)) * 0.6 + 0.1
            if path in ("blocks.2.conv1.mask", "blocks.5.conv1.mask"):
                keep = 0.0
            w.copy_(torch.where(torch.rand(w.shape, generator=g) < keep, 0.5, -1.0))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ngf", type=int, default=64)
    parser.add_argument("--crop_size", type=int, default=256)
    parser.add_argument("--n_batches", type=int, default=1000, help="batches per epoch (horse2zebra: 1067)")
    parser.add_argument("--searches", type=int, default=3, help="schedules to time")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    logging.getLogger("dmad").setLevel(logging.WARNING)  # the report is still computed, not written

    opt, model = build(args.ngf, args.crop_size)
    searching, settled = [], []
    for seed in range(args.searches):
        a, b = time_schedule(opt, model, args.n_batches, seed)
        searching += a
        settled += b
    print(f"mask update point, CycleGAN ngf {args.ngf}, 9 blocks, both generators, {args.crop_size} px crop, "
          f"{torch.get_num_threads()} threads (target <= {TARGET_MS:.0f} ms)")
    print(f"{'phase':<36}{'updates':>8}{'mean ms':>10}{'median ms':>11}{'max ms':>9}")
    for label, values in (("searching (b > 0, early-stop check)", searching), ("settled (b = 0)", settled)):
        print(f"{label:<36}{len(values):>8}{statistics.mean(values):>10.2f}{statistics.median(values):>11.2f}"
              f"{max(values):>9.2f}")

    print()
    print(f"early-stop candidate MACs at {args.crop_size} px: channel counts vs count_macs_params of the built model")
    print(f"{'weights':<28}{'from counts (G)':>16}{'built model (G)':>17}{'equal':>7}")
    net = ResnetGenerator(ngf=args.ngf, n_blocks=9, mask=True)
    size = (args.crop_size, args.crop_size)
    for label, seed in (("all kept", None), ("sparse pattern 1", 1), ("sparse pattern 2", 2)):
        if seed is not None:
            sparse_pattern(net, seed)
        else:
            with torch.no_grad():
                for m in net.modules():
                    if hasattr(m, "mask_weight"):
                        m.mask_weight.fill_(0.5)
        structure = net.structure()
        weights = {p: net.get_submodule(p).mask_weight for p in structure.mask_names()}
        macs, widths = candidate_macs(structure, weights, 0.3, 0, size)
        built, _ = count_macs_params(ResnetGenerator(ngf=args.ngf, n_blocks=9, widths=widths),
                                     (1, 3, args.crop_size, args.crop_size))
        print(f"{label:<28}{macs / 1e9:>16.4f}{built / 1e9:>17.4f}{str(macs == built):>7}")


if __name__ == "__main__":
    main()
