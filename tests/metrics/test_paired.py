"""Fidelity to ground truth on aligned data (metrics/paired.py, test.py's metrics.json)."""
import json

import numpy as np
import pytest
import torch

from metrics.paired import PairedMetrics, by_metric, paired_scores
from tests.conftest import run_main, tiny_args


def test_paired_scores_agree_with_scikit_image():
    """An independent implementation (scikit-image) gives the same L1, PSNR and SSIM per image."""
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    g = torch.Generator().manual_seed(0)
    real = torch.rand(3, 3, 64, 64, generator=g) * 2 - 1
    fake = (real + 0.3 * torch.randn(3, 3, 64, 64, generator=g)).clamp(-1, 1)
    scores = paired_scores(fake, real)
    for i in range(3):
        f = ((fake[i] + 1) / 2).permute(1, 2, 0).double().numpy()
        r = ((real[i] + 1) / 2).permute(1, 2, 0).double().numpy()
        assert scores["L1"][i] == pytest.approx(np.abs(f - r).mean(), rel=1e-5)
        assert scores["PSNR"][i] == pytest.approx(peak_signal_noise_ratio(r, f, data_range=1.0), abs=1e-3)
        ssim = structural_similarity(r, f, data_range=1.0, channel_axis=2, gaussian_weights=True, sigma=1.5,
                                     use_sample_covariance=False)
        # the two treat the 5-px border differently (reflection padding vs cropping): about 1e-3 apart
        assert scores["SSIM"][i] == pytest.approx(ssim, abs=3e-3)


def test_paired_scores_known_values_and_running_means():
    real = torch.zeros(2, 3, 16, 16) - 0.5  # 0.25 on the [0, 1] scale
    same = paired_scores(real, real)
    assert same["L1"].tolist() == [0.0, 0.0] and same["SSIM"].tolist() == pytest.approx([1.0, 1.0])
    shifted = paired_scores(real + 0.2, real)  # +0.1 on the [0, 1] scale: MSE 0.01 -> 20 dB
    assert shifted["L1"].tolist() == pytest.approx([0.1, 0.1]) and shifted["PSNR"].tolist() == pytest.approx([20, 20])
    running = PairedMetrics()
    running.update(real + 0.2, real)
    running.update(real[:1] + 0.4, real[:1])  # 0.2 off: 13.98 dB
    means = by_metric({"AtoB": running})
    assert means["L1"]["AtoB"] == pytest.approx((0.1 + 0.1 + 0.2) / 3)
    assert means["PSNR"]["AtoB"] == pytest.approx((20 + 20 + 20 * np.log10(1 / 0.2)) / 3)
    with pytest.raises(ValueError, match="shape"):
        paired_scores(real, real[:, :1])
    with pytest.raises(ValueError, match="no image"):
        PairedMetrics().compute()


def test_test_py_reports_fidelity_on_aligned_data_only(tmp_path, toy_root):
    """pix2pix on aligned data: metrics.json holds L1/PSNR/SSIM of the outputs against the B halves,
    the same numbers as recomputed from the generator; unaligned data has no ground truth."""
    from data import create_dataset
    from pipeline.checkpoint import load_generator
    from options import parse

    args = tiny_args(tmp_path / "exp", "p2p", "pix2pix")
    assert run_main("train", args) == 0
    assert run_main("test", args + ["--results_dir", str(tmp_path / "res"), "--ntest", "3"]) == 0
    report = json.load(open(tmp_path / "res" / "p2p" / "test_1" / "metrics.json"))
    net = load_generator(str(tmp_path / "exp" / "p2p" / "checkpoints" / "latest.pth"))
    dataset = create_dataset(parse("test", args + ["--phase", "test"]), train=False)
    with torch.no_grad():
        items = [dataset[i] for i in range(3)]
        fake = net(torch.stack([item["A"] for item in items]))
    expected = paired_scores(fake, torch.stack([item["B"] for item in items]))
    for name in ("L1", "PSNR", "SSIM"):
        assert report[name]["AtoB"] == pytest.approx(expected[name].mean().item(), rel=1e-4), name

    args = tiny_args(tmp_path / "exp", "cyc")
    assert run_main("train", args) == 0
    assert run_main("test", args + ["--results_dir", str(tmp_path / "res"), "--ntest", "2"]) == 0
    report = json.load(open(tmp_path / "res" / "cyc" / "test_1" / "metrics.json"))
    assert not {"L1", "PSNR", "SSIM"} & set(report)
