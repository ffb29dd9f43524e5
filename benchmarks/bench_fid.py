"""Time the FID trace term: pytorch-fid's scipy ``sqrtm`` against ``metrics.fid``.

    python benchmarks/bench_fid.py [--dims 2048] [--samples 500 1000 5000] [--repeats 3]

One row per number of generated samples (the reference set has 5000): best-of-``repeats`` seconds of
``calculate_frechet_distance`` (sqrtm), ``frechet_distance`` (two symmetric eigendecompositions) and
``fid_from_features`` (N x N eigenproblem when N <= D), the speed-ups and the largest relative
difference from the sqrtm value.
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
from pytorch_fid.fid_score import calculate_frechet_distance  # noqa: E402

from metrics.fid import feature_statistics, fid_from_features, frechet_distance  # noqa: E402


def _best_time(fn, repeats):
    best, value = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        value = fn()
        best = min(best, time.perf_counter() - start)
    return best, value


def _features(rng, n, d, shift):
    # correlated, non-negative features like pool3 activations
    mix = rng.standard_normal((d, d)) / np.sqrt(d)
    return np.maximum(rng.standard_normal((n, d)) @ mix + shift, 0)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dims", type=int, default=2048)
    parser.add_argument("--samples", type=int, nargs="+", default=[500, 1000, 5000])
    parser.add_argument("--reference", type=int, default=5000, help="samples behind the reference statistics")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    mu2, s2 = feature_statistics(_features(rng, args.reference, args.dims, 0.1))
    print(f"{'samples':>8} {'dims':>5} {'sqrtm s':>8} {'eigh s':>7} {'x':>5} {'features s':>10} {'x':>6} "
          f"{'max rel. diff':>13}")
    for n in args.samples:
        feats = _features(rng, n, args.dims, 0.0)
        mu1, s1 = feature_statistics(feats)
        t_ref, ref = _best_time(lambda: calculate_frechet_distance(mu1, s1, mu2, s2), args.repeats)
        t_eig, eig = _best_time(lambda: frechet_distance(mu1, s1, mu2, s2), args.repeats)
        # includes the covariance np.cov would otherwise need, so the comparison is end to end
        t_feat, from_feats = _best_time(lambda: fid_from_features(feats, mu2, s2), args.repeats)
        t_cov, _ = _best_time(lambda: feature_statistics(feats), 1)
        diff = max(abs(eig - ref), abs(from_feats - ref)) / abs(ref)
        print(f"{n:>8} {args.dims:>5} {t_ref:>8.2f} {t_eig:>7.2f} {t_ref / t_eig:>5.1f} {t_feat:>10.3f} "
              f"{(t_ref + t_cov) / t_feat:>6.1f} {diff:>13.1e}")


if __name__ == "__main__":
    main()
