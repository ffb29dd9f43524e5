"""metrics/fid.py: the Fréchet distance, the Inception network and its features, statistics files, and
scripts/get_real_stat.py, which writes the real images' statistics."""
import logging
import os
import shutil

import numpy as np
import pytest
import torch
from pytorch_fid.fid_score import calculate_frechet_distance

from metrics import fid
from metrics.evaluate import Evaluator
from tests.conftest import assert_user_error, run_script
from tests.helpers import _random_inception
from tests.metrics.conftest import SIZE, _make_aligned, _parse
from util.errors import UserError


def _images(n, seed, shift=0.0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, 3, SIZE, SIZE, generator=g) * 0.7 + shift).clamp(0, 1)


# ---------------------------------------------------------------- Fréchet distance

def test_frechet_distance_closed_form_for_commuting_covariances():
    rng = np.random.default_rng(0)
    d = 6
    q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    a, b = rng.uniform(0.5, 3, d), rng.uniform(0.1, 2, d)
    mu1, mu2 = rng.standard_normal(d), rng.standard_normal(d)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum(a + b - 2 * np.sqrt(a * b))
    got = fid.frechet_distance(mu1, q @ np.diag(a) @ q.T, mu2, q @ np.diag(b) @ q.T)
    assert got == pytest.approx(expected, rel=1e-10)


def test_frechet_distance_closed_form_against_identity_and_itself():
    rng = np.random.default_rng(1)
    m = rng.standard_normal((5, 5))
    s = m @ m.T + np.eye(5)
    # tr sqrt(I S) = sum of square roots of the eigenvalues of S
    expected = 5 + np.trace(s) - 2 * np.sqrt(np.linalg.eigvalsh(s)).sum()
    assert fid.frechet_distance(np.zeros(5), np.eye(5), np.zeros(5), s) == pytest.approx(expected, rel=1e-10)
    assert abs(fid.frechet_distance(np.ones(5), s, np.ones(5), s)) < 1e-9


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::scipy.linalg.LinAlgWarning")
@pytest.mark.parametrize("n", [200, 40])  # full-rank and singular covariances
def test_frechet_distance_matches_pytorch_fid(n):
    rng = np.random.default_rng(n)
    a = rng.standard_normal((n, 64))
    b = rng.standard_normal((n, 64)) * 1.3 + 0.2 + 0.5 * a[:, ::-1]
    stats = (a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))
    assert fid.frechet_distance(*stats) == pytest.approx(calculate_frechet_distance(*stats), rel=1e-3)


@pytest.mark.parametrize("n", [12, 64, 90])  # fewer, as many and more samples than dimensions
def test_fid_from_features_equals_the_distance_of_their_statistics(n):
    rng = np.random.default_rng(n)
    feats = rng.standard_normal((n, 64)) * rng.uniform(0.2, 2, 64)
    other = rng.standard_normal((150, 64)) + 0.3
    mu2, sigma2 = fid.feature_statistics(other)
    expected = fid.frechet_distance(*fid.feature_statistics(feats), mu2, sigma2)
    assert fid.fid_from_features(feats, mu2, sigma2) == pytest.approx(expected, rel=1e-6)
    mu1, sigma1 = fid.feature_statistics(feats)
    assert abs(fid.fid_from_features(feats, mu1, sigma1)) < 1e-7 * np.trace(sigma1)
    with pytest.raises(UserError, match="at least 2"):
        fid.fid_from_features(feats[:1], mu2, sigma2)


def test_frechet_distance_rejects_mismatched_shapes():
    with pytest.raises(ValueError):
        fid.frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))


# ---------------------------------------------------------------- image pipeline, statistics files

def test_fake_to_unit_truncates_through_uint8_and_makes_rgb():
    x = torch.tensor([-1.0, -2.0, 0.0, 1.0, 3.0, 0.999, -0.999]).view(1, 1, 1, 7)
    out = fid.fake_to_unit(x)
    assert out.shape == (1, 3, 1, 7)
    expected = torch.tensor([0, 0, 127, 255, 255, 254, 0], dtype=torch.float32) / 255  # 127.5 -> 127
    assert torch.equal(out[0, 0, 0], expected)
    assert torch.equal(out[0, 0], out[0, 2])
    rgb = torch.rand(2, 3, 4, 4) * 2 - 1
    assert fid.fake_to_unit(rgb).shape == (2, 3, 4, 4)


def test_statistics_roundtrip_and_bad_files(tmp_path):
    mu, sigma = np.arange(3.0), np.eye(3) * 2
    path = tmp_path / "sub" / "stat.npz"
    fid.save_statistics(str(path), mu, sigma)
    got_mu, got_sigma = fid.load_statistics(str(path), dim=3)
    assert np.array_equal(got_mu, mu) and np.array_equal(got_sigma, sigma)
    assert sorted(os.listdir(path.parent)) == ["stat.npz"]  # no temporary file left behind
    with pytest.raises(UserError, match=r"expected the features' \[2048\]"):
        fid.load_statistics(str(path))  # Inception's pool3 size by default
    np.savez(tmp_path / "wrong.npz", mean=mu, cov=sigma)
    with pytest.raises(UserError, match="'mu' and 'sigma'"):
        fid.load_statistics(str(tmp_path / "wrong.npz"), dim=3)
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(UserError, match="junk.npz"):
        fid.load_statistics(str(tmp_path / "junk.npz"))
    (tmp_path / "text.npz").write_bytes(b"some text, not arrays\n" * 20)  # numpy reads it as a pickle
    with pytest.raises(UserError, match="damaged, or not an .npz of arrays") as refused:
        fid.load_statistics(str(tmp_path / "text.npz"))
    assert "allow_pickle" not in str(refused.value)
    np.savez(tmp_path / "nan.npz", mu=mu, sigma=sigma * np.nan)
    with pytest.raises(UserError, match="NaN or infinite"):
        fid.load_statistics(str(tmp_path / "nan.npz"), dim=3)


def test_feature_statistics_needs_two_images():
    mu, sigma = fid.feature_statistics(np.array([[0.0, 1.0], [2.0, 3.0], [4.0, 2.0]]))
    assert np.allclose(mu, [2.0, 2.0]) and np.allclose(sigma, [[4.0, 1.0], [1.0, 1.0]])
    with pytest.raises(UserError, match="at least 2"):
        fid.feature_statistics(np.zeros((1, 2048)))


# ---------------------------------------------------------------- Inception loading and features

def test_inception_keys_are_those_of_the_published_file():
    keys = fid.fid_inception_network().state_dict().keys()
    assert "Mixed_7c.branch_pool.conv.weight" in keys and "fc.weight" in keys
    assert not any(k.startswith("AuxLogits") for k in keys)
    assert fid.fid_inception_network().fc.out_features == 1008
    assert fid.default_inception_path().endswith(os.path.join("checkpoints", fid.INCEPTION_FILE))


def test_load_inception_errors(tmp_path):
    with pytest.raises(UserError, match="releases/download/fid_weights"):
        fid.load_inception(str(tmp_path / "missing.pth"), "cpu")
    assert fid.load_inception(None, "cpu") is None  # default location empty: the caller skips FID
    bad = tmp_path / "bad.pth"
    torch.save({"conv.weight": torch.zeros(1)}, bad)
    with pytest.raises(UserError, match="bad.pth"):
        fid.load_inception(str(bad), "cpu")


def test_load_inception_from_file_is_frozen_and_matches(inception):
    assert not inception.training
    assert not any(p.requires_grad for p in inception.parameters())
    reference = _random_inception().state_dict()
    assert torch.equal(inception.net.Mixed_6e.branch7x7_2.conv.weight, reference["Mixed_6e.branch7x7_2.conv.weight"])


def test_inception_features_do_not_depend_on_batch_size(inception):
    x = _images(4, seed=3)
    one = fid.inception_features(inception, [x[i:i + 1] for i in range(4)], "cpu")
    four = fid.inception_features(inception, iter([x[:3], x[3:]]), "cpu")
    assert one.shape == (4, 2048) and one.dtype == np.float64
    assert np.abs(four).max() > 0.1  # a real signal, not vanishing activations
    np.testing.assert_allclose(one, four, rtol=1e-4, atol=1e-5 * np.abs(four).max())


@pytest.mark.slow
def test_fid_of_a_set_with_itself_is_zero_and_grows_with_a_shift(inception):
    base = fid.inception_features(inception, [_images(6, seed=5)], "cpu")
    mu, sigma = fid.feature_statistics(base)
    scores = []
    for shift in (0.05, 0.1):
        shifted = fid.inception_features(inception, [_images(6, seed=5, shift=shift)], "cpu")
        scores.append(fid.fid_from_features(shifted, mu, sigma))
    itself = fid.fid_from_features(base, mu, sigma)
    assert abs(itself) < 1e-7 * np.trace(sigma)  # sqrt of the rounding noise of a zero eigenvalue
    assert scores[0] > 1e-3 * np.trace(sigma)
    assert scores[1] > 2 * scores[0]  # small shifts: the distance grows about quadratically


# ---------------------------------------------------------------- scripts/get_real_stat.py

def _run_script(*args):
    return run_script("scripts/get_real_stat", args, timeout=300)


@pytest.mark.slow
def test_get_real_stat_writes_mu_and_sigma(tmp_path, inception_file, caplog):
    root = tmp_path / "pairs"
    _make_aligned(str(root), 3, np.random.default_rng(0))
    out = tmp_path / "stats" / "real_stat_B.npz"
    proc = _run_script("--dataroot", str(root), "--output_path", str(out), "--inception_path", inception_file,
                       "--gpu_ids", "-1", "--batch_size", "2")
    assert proc.returncode == 0, proc.stderr
    mu, sigma = fid.load_statistics(str(out))
    assert mu.shape == (2048,) and sigma.shape == (2048, 2048)
    assert np.allclose(sigma, sigma.T) and np.abs(mu).max() > 0
    record = fid.statistics_meta(str(out))
    assert record["made_by"] == "scripts/get_real_stat.py" and record["images"] == 3
    assert (record["split"], record["preprocess"], record["crop_size"]) == ("val", "none", 256)

    # an evaluation on other preprocessing uses the user's file as it is, names the difference, keeps the file
    shutil.copy(out, root / "real_stat_B.npz")
    before = (root / "real_stat_B.npz").read_bytes()
    evaluator = Evaluator(_parse(root, "--model", "pix2pix", "--inception_path", inception_file), "cpu")
    with caplog.at_level(logging.WARNING, logger="metrics.evaluate"):
        assert not evaluator.check_statistics()
    warned = [r.getMessage() for r in caplog.records if "were made by scripts/get_real_stat.py" in r.getMessage()]
    assert len(warned) == 1 and "preprocess none (now resize_and_crop)" in warned[0], warned
    np.testing.assert_array_equal(evaluator._real["B"][0], mu)
    assert (root / "real_stat_B.npz").read_bytes() == before


def test_get_real_stat_without_weights_is_one_line(tmp_path):
    _make_aligned(str(tmp_path / "pairs"), 2, np.random.default_rng(0))
    proc = _run_script("--dataroot", str(tmp_path / "pairs"), "--output_path", str(tmp_path / "s.npz"),
                       "--inception_path", str(tmp_path / "nope.pth"), "--gpu_ids", "-1")
    assert "nope.pth" in assert_user_error(proc)
    assert not (tmp_path / "s.npz").exists()
