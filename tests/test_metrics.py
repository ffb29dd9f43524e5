"""Tests for metrics/ (FID, DRN, mIoU, Evaluator), scripts/get_real_stat.py and the Cityscapes preparation.

The feature networks have the real architectures with random weights, written to temporary files and
loaded through the same functions as the published weights. Images are 32 px.
"""
import logging
import os
import shutil

import numpy as np
import pytest
import torch
from PIL import Image
from pytorch_fid.fid_score import calculate_frechet_distance
from torch import nn

import options
from tests.conftest import assert_user_error, run_main, run_script
from metrics import drn as drn_mod
from metrics import fid, miou
from metrics.evaluate import Evaluator, image_stem
from util.errors import UserError

SIZE = 32


# ---------------------------------------------------------------- fixtures and helpers

def _random_inception():
    """The FID network with He-initialised convolutions, so that pool3 features are O(1), not ~1e-8."""
    torch.manual_seed(0)
    net = fid.fid_inception_network()
    for module in net.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
    return net


@pytest.fixture(scope="module")
def inception_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("weights") / "inception_random.pth"
    torch.save(_random_inception().state_dict(), path)
    return str(path)


@pytest.fixture(scope="module")
def inception(inception_file):
    return fid.load_inception(inception_file, "cpu")


@pytest.fixture(scope="module")
def drn_file(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "drn_random.pth"
    torch.save(drn_mod.DRNSeg().state_dict(), path)
    return str(path)


@pytest.fixture(autouse=True)
def _empty_torch_hub(tmp_path, monkeypatch):
    """No test may find (or depend on) weights in the real torch hub folder."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)


def _images(n, seed, shift=0.0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, 3, SIZE, SIZE, generator=g) * 0.7 + shift).clamp(0, 1)


def _save_rgb(path, array):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(array.astype(np.uint8)).save(path)


def _random_rgb(rng, h, w):
    return rng.integers(0, 256, size=(h, w, 3))


def _parse(root, *extra):
    return options.parse("train", ["--dataroot", str(root), "--crop_size", str(SIZE), "--load_size", str(SIZE),
                                   "--gpu_ids", "-1", "--eval_batch_size", "4", *extra])


class Recorder(nn.Module):
    """Identity generator with dropout (active only in train mode) that records its inputs."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Identity(), nn.Dropout(0.5))
        self.seen = 0

    def forward(self, x):
        self.seen += x.shape[0]
        return self.body(x)


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


# ---------------------------------------------------------------- DRN

def test_drn_layout_matches_the_published_cityscapes_weights():
    net = drn_mod.DRNSeg()
    state = net.state_dict()
    assert len(net.base) == 9  # layer0 ... layer8
    expected_shapes = {
        "base.0.0.weight": (16, 3, 7, 7), "base.1.0.weight": (16, 16, 3, 3), "base.2.0.weight": (32, 16, 3, 3),
        "base.3.0.downsample.0.weight": (256, 32, 1, 1), "base.4.3.conv3.weight": (512, 128, 1, 1),
        "base.5.22.conv2.weight": (256, 256, 3, 3), "base.6.0.downsample.1.running_var": (2048,),
        "base.7.0.weight": (512, 2048, 3, 3), "base.8.1.bias": (512,), "seg.weight": (19, 512, 1, 1),
        "seg.bias": (19,), "up.weight": (19, 1, 16, 16)}
    for key, shape in expected_shapes.items():
        assert tuple(state[key].shape) == shape, key
    assert "base.5.23.conv1.weight" not in state and "up.bias" not in state
    convs = {name: m for name, m in net.named_modules() if isinstance(m, nn.Conv2d)}
    assert convs["base.5.0.conv2"].dilation == (2, 2) and convs["base.6.1.conv2"].dilation == (4, 4)
    assert convs["base.7.0"].dilation == (2, 2) and convs["base.4.0.conv2"].stride == (2, 2)


def test_drn_up_is_bilinear_and_output_is_log_softmax():
    net = drn_mod.DRNSeg().eval()
    with torch.no_grad():
        flat = net.up(torch.ones(1, 19, 4, 4))
        assert flat.shape == (1, 19, 32, 32)
        assert torch.allclose(flat[..., 4:-4, 4:-4], torch.ones(1), atol=1e-6)  # constant stays constant
        out = net(torch.randn(2, 3, SIZE, SIZE))
    assert out.shape == (2, 19, SIZE, SIZE)
    assert torch.allclose(out.exp().sum(1), torch.ones(2, SIZE, SIZE), atol=1e-5)


def test_load_drn(tmp_path, drn_file):
    with pytest.raises(UserError, match="--drn_path"):
        drn_mod.load_drn(str(tmp_path / "missing.pth"), "cpu")
    assert drn_mod.load_drn(str(tmp_path / "missing.pth"), "cpu", explicit=False) is None
    net = drn_mod.load_drn(drn_file, "cpu")
    assert not net.training and not any(p.requires_grad for p in net.parameters())
    state = torch.load(drn_file, weights_only=True)
    assert torch.equal(net.base[5][7].conv2.weight, state["base.5.7.conv2.weight"])
    wrapped = tmp_path / "dataparallel.pth"
    torch.save({"module." + k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}, wrapped)
    assert torch.equal(drn_mod.load_drn(str(wrapped), "cpu").seg.weight, state["seg.weight"])


# ---------------------------------------------------------------- mIoU

def test_fast_hist_and_mean_iou_on_hand_made_maps():
    label = np.array([[0, 0, 1, 255], [1, 2, 2, 2]])
    pred = np.array([[0, 1, 1, 0], [1, 2, 2, 0]])
    hist = miou.fast_hist(pred, label, 3)
    assert hist.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 2]]  # rows: label; the 255 pixel is ignored
    np.testing.assert_allclose(miou.per_class_iou(hist), [1 / 3, 2 / 3, 2 / 3])
    assert miou.mean_iou(hist) == 55.56
    full = miou.fast_hist(pred, label)  # 19 classes: absent ones are NaN and left out of the mean
    assert full.shape == (19, 19) and miou.mean_iou(full) == 55.56
    assert np.isnan(miou.mean_iou(np.zeros((19, 19))))


def test_label_ids_map_to_train_ids():
    lut = miou.label_id_to_train_id()
    assert lut[7] == 0 and lut[26] == 13 and lut[33] == 18
    assert lut[0] == lut[6] == lut[9] == lut[34] == 255
    assert sorted(set(lut.tolist()) - {255}) == list(range(19))


class _HalfAndHalf(nn.Module):
    """A stand-in segmenter: class 3 on the left half, class 5 on the right (at input resolution)."""

    def forward(self, x):
        n, _, h, w = x.shape
        out = torch.full((n, 19, h, w), -10.0)
        out[:, 3, :, : w // 2] = 0
        out[:, 5, :, w // 2:] = 0
        return out


def test_segment_resizes_to_the_label_size_and_normalises():
    image = np.zeros((8, 8, 3), dtype=np.uint8)
    pred = miou.segment_image(_HalfAndHalf(), image, "cpu", (6, 16))
    assert pred.shape == (6, 16)
    assert (pred[:, :8] == 3).all() and (pred[:, 8:] == 5).all()
    seen = {}

    class Probe(nn.Module):
        def forward(self, x):
            seen["x"] = x
            return torch.zeros(x.shape[0], 19, *x.shape[2:])

    miou.segment_image(Probe(), torch.full((3, 8, 8), 255, dtype=torch.uint8), "cpu", (8, 8))
    expected = (1 - torch.tensor(miou.DRN_MEAN)) / torch.tensor(miou.DRN_STD)
    assert torch.allclose(seen["x"][0, :, 0, 0], expected)


def test_read_table_and_find_label(tmp_path):
    (tmp_path / "table.txt").write_text(
        "0 gtFine/val/a/a_1_gtFine_trainIds.png leftImg8bit/val/a/a_1_leftImg8bit.png\n"
        "\n1 gtFine/val/b/b_2_gtFine_trainIds.png leftImg8bit/val/b/b_2_leftImg8bit.png\n")
    table = miou.read_table(str(tmp_path))
    assert miou.find_label(table, "1") == os.path.join(str(tmp_path), "gtFine/val/b/b_2_gtFine_trainIds.png")
    assert miou.find_label(table, "a_1_leftImg8bit").endswith("a_1_gtFine_trainIds.png")
    with pytest.raises(UserError, match="'7'"):
        miou.find_label(table, "7")
    with pytest.raises(UserError, match="table.txt"):
        miou.read_table(str(tmp_path / "nowhere"))


# ---------------------------------------------------------------- scripts/get_real_stat.py

def _make_aligned(root, n, rng):
    for i in range(n):
        _save_rgb(os.path.join(root, "val", f"{i}.png"), _random_rgb(rng, SIZE, 2 * SIZE))


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


# ---------------------------------------------------------------- Evaluator, FID

@pytest.fixture
def unaligned_root(tmp_path):
    rng = np.random.default_rng(1)
    root = tmp_path / "tiny"
    for i in range(4):
        _save_rgb(str(root / "testA" / f"a{i}.png"), _random_rgb(rng, SIZE, SIZE))
    for i in range(2):  # fewer B images: the index wraps around them
        _save_rgb(str(root / "testB" / f"b{i}.v2.png"), _random_rgb(rng, SIZE, SIZE) // 2)
    return root


def _folder_features(inception, folder):
    from data.transforms import to_tensor
    images = [to_tensor(Image.open(os.path.join(folder, n)).convert("RGB")) for n in sorted(os.listdir(folder))]
    return fid.inception_features(inception, [fid.fake_to_unit(torch.stack(images))], "cpu")


@pytest.mark.slow
def test_evaluator_cyclegan_fid_both_directions(unaligned_root, inception_file, inception, tmp_path, caplog):
    opt = _parse(unaligned_root, "--model", "cyclegan", "--inception_path", inception_file)
    evaluator = Evaluator(opt, "cpu")
    assert evaluator.enabled and not evaluator.higher_is_better and evaluator.metric_name == "FID"
    g_a, g_b = Recorder().train(), Recorder().train()
    with caplog.at_level(logging.INFO, logger="metrics.evaluate"):
        scores = evaluator.evaluate({"AtoB": g_a, "BtoA": g_b}, save_dir=str(tmp_path / "out"))
    assert set(scores) == {"AtoB", "BtoA"} and all(np.isfinite(v) for v in scores.values())
    assert g_a.seen == 4 and g_b.seen == 2  # duplicates of the wrap-around are not generated twice
    assert g_a.training and g_a.body[1].training  # modes restored
    assert (unaligned_root / "real_stat_A.npz").is_file() and (unaligned_root / "real_stat_B.npz").is_file()
    assert sum("computed from" in r.getMessage() for r in caplog.records) == 2
    assert sorted(os.listdir(tmp_path / "out" / "fake_B")) == [f"a{i}_fake_B.png" for i in range(4)]
    assert sorted(os.listdir(tmp_path / "out" / "fake_A")) == [f"b{i}_fake_A.png" for i in range(2)]
    # identity generators: G_A(testA) vs testB statistics is the FID between the two folders
    feats_a = _folder_features(inception, unaligned_root / "testA")
    feats_b = _folder_features(inception, unaligned_root / "testB")
    stats_a, stats_b = fid.feature_statistics(feats_a), fid.feature_statistics(feats_b)
    assert scores["AtoB"] == pytest.approx(fid.fid_from_features(feats_a, *stats_b), rel=1e-4)
    assert scores["BtoA"] == pytest.approx(fid.fid_from_features(feats_b, *stats_a), rel=1e-4)
    saved = fid.load_statistics(str(unaligned_root / "real_stat_B.npz"))
    np.testing.assert_allclose(saved[1], stats_b[1], rtol=1e-6, atol=1e-12)
    # a later evaluator reads the file instead of recomputing it
    fid.save_statistics(str(unaligned_root / "real_stat_B.npz"), *stats_a)
    again = Evaluator(opt, "cpu").evaluate({"AtoB": g_a})
    assert abs(again["AtoB"]) < 1e-6 * np.trace(stats_a[1])


def test_evaluator_without_weights_is_disabled_and_cheap(unaligned_root, tmp_path, caplog):
    opt = _parse(unaligned_root, "--model", "cyclegan")
    with caplog.at_level(logging.WARNING, logger="metrics.evaluate"):
        evaluator = Evaluator(opt, "cpu")
    assert not evaluator.enabled
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "FID is skipped" in warnings[0] and "--inception_path" in warnings[0]
    g = Recorder()
    assert evaluator.evaluate({"AtoB": g}) == {} and g.seen == 0
    # still writes images when asked to
    assert evaluator.evaluate({"AtoB": g}, save_dir=str(tmp_path / "out")) == {}
    assert len(os.listdir(tmp_path / "out" / "fake_B")) == 4
    with pytest.raises(KeyError):
        evaluator.evaluate({"sideways": g})
    opt = _parse(unaligned_root, "--model", "cyclegan", "--inception_path", str(tmp_path / "missing.pth"))
    with pytest.raises(UserError, match="missing.pth"):
        Evaluator(opt, "cpu")


def test_evaluator_metric_none_loads_nothing(unaligned_root, inception_file):
    evaluator = Evaluator(_parse(unaligned_root, "--metric", "none", "--inception_path", inception_file), "cpu")
    assert not evaluator.enabled and evaluator.net is None
    assert evaluator.sides == {"AtoB": ("A", "B"), "BtoA": ("B", "A")}
    # the CycleGAN model swaps its inputs under --direction BtoA: G_A then reads testB
    swapped = Evaluator(_parse(unaligned_root, "--metric", "none", "--direction", "BtoA"), "cpu")
    assert swapped.sides == {"AtoB": ("B", "A"), "BtoA": ("A", "B")}


def test_evaluator_pix2pix_compares_with_the_target_domain(tmp_path, inception_file):
    root = tmp_path / "pairs"
    _make_aligned(str(root), 3, np.random.default_rng(4))
    opt = _parse(root, "--model", "pix2pix", "--direction", "BtoA", "--inception_path", inception_file)
    evaluator = Evaluator(opt, "cpu")
    assert evaluator.directions == ("BtoA",)
    scores = evaluator.evaluate({"BtoA": Recorder()})
    assert np.isfinite(scores["BtoA"])
    # B halves are mapped to A, so the statistics are those of the real A halves
    assert (root / "real_stat_A.npz").is_file() and not (root / "real_stat_B.npz").exists()


# ---------------------------------------------------------------- Cityscapes preparation and mIoU

def _fake_cityscapes(root, rng, n=3):
    """gtFine/ and leftImg8bit/ trees like the Cityscapes downloads, 64x32 px."""
    ids = np.array([7, 8, 26, 23, 0, 33])
    for phase in ("train", "val"):
        for i in range(n):
            ident = f"city_{i:06d}_000019"
            gt = os.path.join(root, "gtFine", phase, "city")
            _save_rgb(os.path.join(gt, f"{ident}_gtFine_color.png"), _random_rgb(rng, 32, 64))
            os.makedirs(gt, exist_ok=True)
            Image.fromarray(rng.choice(ids, size=(32, 64)).astype(np.uint8)).save(
                os.path.join(gt, f"{ident}_gtFine_labelIds.png"))
            _save_rgb(os.path.join(root, "leftImg8bit", phase, "city", f"{ident}_leftImg8bit.png"),
                      _random_rgb(rng, 32, 64))


@pytest.fixture
def cityscapes_root(tmp_path):
    origin = tmp_path / "origin"
    _fake_cityscapes(str(origin), np.random.default_rng(2))
    out = tmp_path / "cityscapes"
    status = run_main("datasets/prepare_cityscapes_dataset",
                      ["--gtFine_dir", str(origin / "gtFine"), "--leftImg8bit_dir", str(origin / "leftImg8bit"),
                       "--output_dir", str(out), "--size", str(SIZE)])
    assert status == 0
    return out, origin


def test_prepare_cityscapes_writes_pairs_labels_and_table(cityscapes_root):
    out, origin = cityscapes_root
    assert sorted(os.listdir(out / "val")) == ["0.jpg", "1.jpg", "2.jpg"]
    assert len(os.listdir(out / "train")) == 3
    with Image.open(out / "val" / "1.jpg") as pair:
        assert pair.size == (2 * SIZE, SIZE)
        left = np.asarray(pair)[:, :SIZE].astype(float)
    with Image.open(origin / "leftImg8bit" / "val" / "city" / "city_000001_000019_leftImg8bit.png") as photo:
        expected = np.asarray(photo.resize((SIZE, SIZE), Image.Resampling.BICUBIC)).astype(float)
    assert np.abs(left - expected).mean() < 8  # photo on the left (JPEG at quality 100)
    lines = (out / "table.txt").read_text().splitlines()
    assert lines[1] == ("1 gtFine/val/city/city_000001_000019_gtFine_trainIds.png "
                        "leftImg8bit/val/city/city_000001_000019_leftImg8bit.png")
    train_ids = np.array(Image.open(out / "gtFine/val/city/city_000001_000019_gtFine_trainIds.png"))
    label_ids = np.array(Image.open(origin / "gtFine/val/city/city_000001_000019_gtFine_labelIds.png"))
    assert train_ids.shape == (32, 64)
    assert np.array_equal(train_ids, miou.label_id_to_train_id()[label_ids])
    assert set(np.unique(train_ids)) <= {0, 1, 13, 10, 255, 18}


@pytest.mark.slow
def test_evaluator_miou_on_tiny_cityscapes(cityscapes_root, drn_file, tmp_path):
    out, _ = cityscapes_root
    opt = _parse(out, "--model", "pix2pix", "--direction", "BtoA", "--drn_path", drn_file)
    assert opt.metric == "miou"
    evaluator = Evaluator(opt, "cpu")
    assert evaluator.enabled and evaluator.higher_is_better and evaluator.metric_name == "mIoU"
    g = Recorder()
    scores = evaluator.evaluate({"BtoA": g}, save_dir=str(tmp_path / "res"))
    assert list(scores) == ["BtoA"] and 0 <= scores["BtoA"] <= 100 and g.seen == 3
    assert sorted(os.listdir(tmp_path / "res" / "fake_A")) == ["0_fake_A.png", "1_fake_A.png", "2_fake_A.png"]
    # the same score by hand: the identity output is the B half, segmented and compared at label size
    net = drn_mod.load_drn(drn_file, "cpu")
    table = miou.read_table(str(out))
    hist = np.zeros((19, 19), dtype=np.int64)
    for name in ("0", "1", "2"):
        with Image.open(out / "val" / f"{name}.jpg") as pair:
            b_half = np.ascontiguousarray(np.asarray(pair.convert("RGB"))[:, SIZE:])
        fake = torch.from_numpy(b_half).permute(2, 0, 1).float().div(255).sub(0.5).div(0.5)[None]
        image = fid.to_uint8(fake)[0]
        label = miou.read_label(miou.find_label(table, image_stem(f"{name}.jpg")))
        hist += miou.fast_hist(miou.segment_image(net, image, "cpu", label.shape), label)
    assert scores["BtoA"] == miou.mean_iou(hist)


def _label_ids_as_train_ids(out, origin, rename=False, only=None):
    """Put the raw label ids of the fake Cityscapes under the labels table.txt names (or, with
    ``rename``, under other names that table.txt is rewritten to), for the val images ``only`` (all)."""
    lines = (out / "table.txt").read_text().splitlines()
    rewritten = []
    for line in lines:
        name, label, photo = line.split()
        ident = os.path.basename(label)[:-len("_gtFine_trainIds.png")]
        if only is None or name in only:
            if rename:
                label = f"labels/{name}.png"
                os.makedirs(out / "labels", exist_ok=True)
            shutil.copy(origin / "gtFine" / "val" / "city" / f"{ident}_gtFine_labelIds.png", out / label)
        rewritten.append(f"{name} {label} {photo}")
    (out / "table.txt").write_text("\n".join(rewritten) + "\n")


@pytest.mark.parametrize("rename, only", [(False, None), (True, None), (False, {"2"})])
def test_label_ids_stop_the_miou_when_the_evaluator_is_built(cityscapes_root, drn_file, rename, only):
    """Labels holding Cityscapes label ids (0..33) instead of train ids would be scored silently (a
    perfect segmentation: 7.86): whatever the files are called, one line names the conversion."""
    out, origin = cityscapes_root
    _label_ids_as_train_ids(out, origin, rename=rename, only=only)
    opt = _parse(out, "--model", "pix2pix", "--direction", "BtoA", "--drn_path", drn_file)
    with pytest.raises(UserError, match=r"not Cityscapes train ids.*label ids.*prepare_cityscapes_dataset\.py"):
        Evaluator(opt, "cpu")


def test_colour_labels_stop_the_miou_when_the_evaluator_is_built(cityscapes_root, drn_file):
    out, _ = cityscapes_root
    label = out / (out / "table.txt").read_text().split()[1]
    Image.fromarray(np.zeros((32, 64, 3), dtype=np.uint8)).save(label)
    opt = _parse(out, "--model", "pix2pix", "--direction", "BtoA", "--drn_path", drn_file)
    with pytest.raises(UserError, match=r"RGB image, not a single-channel train-id image.*prepare_cityscapes"):
        Evaluator(opt, "cpu")


def test_train_py_refuses_label_ids_before_it_writes_anything(cityscapes_root, drn_file, tmp_path):
    out, origin = cityscapes_root
    _label_ids_as_train_ids(out, origin, rename=True)
    proc = run_script("train", ["--dataroot", out, "--model", "pix2pix", "--direction", "BtoA", "--drn_path", drn_file,
                                "--crop_size", SIZE, "--load_size", SIZE, "--ngf", 8, "--ndf", 8, "--gpu_ids", -1,
                                "--display_id", 0, "--checkpoints_dir", tmp_path / "exp", "--name", "c",
                                "--n_epochs", 1, "--n_epochs_decay", 0])
    line = assert_user_error(proc)
    assert "labels/0.png" in line and "get_trainIds.py" in line
    assert not (tmp_path / "exp").exists()


def test_check_labels_reads_the_values_of_a_sample_and_every_header(tmp_path):
    paths = []
    for i in range(20):
        paths.append(str(tmp_path / f"{i}.png"))
        Image.fromarray(np.full((4, 4), i % 19, dtype=np.uint8)).save(paths[-1])
    miou.check_labels(paths)
    Image.fromarray(np.full((4, 4), 26, dtype=np.uint8)).save(paths[-1])  # the last one is always read
    with pytest.raises(UserError, match="19.png holds values \\(26\\)"):
        miou.check_labels(paths)


def test_evaluator_miou_weights_missing(cityscapes_root, tmp_path, caplog):
    out, _ = cityscapes_root
    opt = _parse(out, "--model", "pix2pix", "--direction", "BtoA")
    opt.drn_path = str(tmp_path / "default_drn.pth")  # the default, not given by the user
    with caplog.at_level(logging.WARNING, logger="metrics.evaluate"):
        assert not Evaluator(opt, "cpu").enabled
    assert any("mIoU is skipped" in r.getMessage() for r in caplog.records)
    opt = _parse(out, "--model", "pix2pix", "--direction", "BtoA", "--drn_path", str(tmp_path / "given.pth"))
    with pytest.raises(UserError, match="drn-d-105_ms_cityscapes.pth"):
        Evaluator(opt, "cpu")
    opt = _parse(out, "--model", "pix2pix", "--direction", "AtoB", "--drn_path", str(tmp_path / "given.pth"))
    with pytest.raises(UserError, match="BtoA"):
        Evaluator(opt, "cpu")
