"""Time the pruning of an ngf-64 ResNet-9 mask generator, and the CPU latency it buys.

    python benchmarks/bench_prune.py [--threads 2] [--repeats 10] [--runs 5] [--size 256]

The masks are random at bound 0 and search-like: about a third of each layer kept, a third of the
residual stream kept, three blocks removed. Prints the mean/min pruning time (after one warm-up; the
target is <= 0.1 s on 2 cores) and, at ``--size`` px (batch 1, eval, no_grad, median of ``--runs``
after a warm-up), the latency of the full masked, the full plain and the pruned generator next to
their MACs, so the real speed-up per MAC saved shows.
"""
import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402

from models.layers import masks  # noqa: E402
from compress.pruning import prune_generator  # noqa: E402
from models.families.resnet import ResnetGenerator  # noqa: E402
from util.flops import count_macs_params  # noqa: E402
from util.timing import median_ms  # noqa: E402

REMOVED_BLOCKS = (2, 5, 7)


def search_like(ngf, seed=0, keep=0.35, stream_keep=0.3, removed=REMOVED_BLOCKS):
    """A mask ResNet-9 at bound 0 whose masks look like the end of a search: about ``keep`` of each
    layer's channels on, ``stream_keep`` of the residual stream, the blocks ``removed`` switched off."""
    g = torch.Generator().manual_seed(seed)
    net = ResnetGenerator(ngf=ngf, mask=True)
    stream = net.down2.mask.num_channels
    stream_on = torch.rand(stream, generator=g) < stream_keep
    with torch.no_grad():
        for name, m in masks(net).items():
            on = torch.rand(m.num_channels, generator=g) < keep
            if name == "down2.mask" or name.endswith("conv2.mask"):
                on &= stream_on
            m.mask_weight.copy_(torch.where(on, 0.5, -0.5) + 0.1 * torch.randn(m.num_channels, generator=g))
            m.update(0)
        for i in removed:
            net.blocks[str(i)].conv1.mask.mask_weight.fill_(-1.0)
    return net.eval()


def median_latency(net, x, runs):
    """Median seconds of one forward pass (util.timing.median_ms)."""
    with torch.no_grad():
        return median_ms(lambda: net(x), runs) / 1e3


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--ngf", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=10, help="pruning runs timed")
    parser.add_argument("--runs", type=int, default=5, help="forward passes per latency median")
    parser.add_argument("--size", type=int, default=256)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    net = search_like(args.ngf)
    prune_generator(net)  # warm-up
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        slim, report = prune_generator(net)
        times.append(time.perf_counter() - start)
    slim.eval()

    plain = ResnetGenerator(ngf=args.ngf).eval()
    shape = (1, 3, args.size, args.size)
    x = torch.randn(*shape)
    rows = []
    for label, model in (("full, masked", net), ("full, plain", plain), ("pruned", slim)):
        macs, params = count_macs_params(model, shape)
        rows.append((label, macs, params, median_latency(model, x, args.runs)))

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    # other processes on the same cores make every multi-threaded op wait: the load average says
    print(f"threads: {args.threads} (load average {load:.1f} on {os.cpu_count()} cores)   torch {torch.__version__}   "
          f"ngf {args.ngf}   removed blocks {report['removed']}")
    print(f"prune one ResNet-9 mask generator: mean {statistics.mean(times) * 1e3:.1f} ms, "
          f"min {min(times) * 1e3:.1f} ms over {args.repeats} runs (target <= 100 ms)")
    print()
    print(f"{'generator':<14}{'MACs (G)':>10}{'params (M)':>12}{'latency (ms)':>14}")
    for label, macs, params, latency in rows:
        print(f"{label:<14}{macs / 1e9:>10.3f}{params / 1e6:>12.3f}{latency * 1e3:>14.1f}")
    _, macs_full, params_full, lat_full = rows[1]
    _, macs_slim, params_slim, lat_slim = rows[2]
    mac_ratio, speed_up = macs_full / macs_slim, lat_full / lat_slim
    print()
    print(f"plain full / pruned: MACs {mac_ratio:.2f}×, params {params_full / params_slim:.2f}×, "
          f"latency {speed_up:.2f}× at {args.size} px (batch 1, median of {args.runs})")
    print(f"real speed-up per MAC saved: {speed_up / mac_ratio:.2f} (1.00 = latency falls as fast as MACs)")


if __name__ == "__main__":
    main()
