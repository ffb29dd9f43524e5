"""Time a convolution with 3 output channels (the generators' 7x7 RGB head) as it is and as the ONNX
export writes it (:class:`pipeline.export.RowColumnConv2d`: a 1x7 and a grouped one-hot 7x1 convolution).

    python benchmarks/bench_narrow_conv.py [--threads 2] [--runs 20] [--size 256] [--channels 18 64]

For each input width (18: the pruned ResNet-9 of run_all.py's 12x row; 64: the full ngf-64 one),
prints the median latency at ``--size`` px, batch 1, of both forms in eager PyTorch and in onnxruntime,
and the largest difference between them.
"""
import argparse
import os
import sys
import tempfile
import warnings

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402
from torch import nn  # noqa: E402

from pipeline.export import onnx_session, split_narrow_convs  # noqa: E402
from util import timing  # noqa: E402


def median_ms(run, runs):
    """Median ms of ``run()`` after two warm-up calls (caches, thread pools)."""
    return timing.median_ms(run, runs, warmup=2)


def onnx_ms(net, x, threads, runs, tmp):
    path = os.path.join(tmp, "head.onnx")
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (x,), path, dynamo=False, opset_version=17, input_names=["input"])
    session = onnx_session(path, threads=threads)
    feed = {"input": x.numpy()}
    return median_ms(lambda: session.run(None, feed), runs)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--channels", type=int, nargs="+", default=[18, 64])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print("| input channels | form | eager PyTorch (ms) | onnxruntime (ms) | max difference |")
    print("|---:|---|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for channels in args.channels:
            plain = nn.Sequential(nn.ReflectionPad2d(3), nn.Conv2d(channels, 3, 7), nn.Tanh()).eval()
            split = split_narrow_convs(plain)
            x = torch.rand(1, channels, args.size, args.size) * 2 - 1
            with torch.no_grad():
                diff = (split(x) - plain(x)).abs().max().item()
            for form, net in (("7x7", plain), ("1x7 + grouped 7x1", split)):
                with torch.no_grad():
                    eager = median_ms(lambda: net(x), args.runs)
                ort = onnx_ms(net, x, args.threads, args.runs, tmp)
                shown = diff if net is split else 0.0
                print(f"| {channels} | {form} | {eager:.1f} | {ort:.1f} | {shown:.1e} |", flush=True)


if __name__ == "__main__":
    main()
