"""metrics/evaluate.py: the Evaluator's FID of both CycleGAN directions and of pix2pix's target domain,
its mIoU on a tiny Cityscapes, and what it does without weights or with --metric none."""
import logging
import os
import shutil

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from metrics import drn as drn_mod
from metrics import fid, miou
from metrics.evaluate import Evaluator, image_stem
from tests.conftest import assert_user_error, run_script
from tests.metrics.conftest import SIZE, _make_aligned, _parse
from util.frozen import replace
from util.errors import UserError


class Recorder(nn.Module):
    """Identity generator with dropout (active only in train mode) that records its inputs."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Identity(), nn.Dropout(0.5))
        self.seen = 0

    def forward(self, x):
        self.seen += x.shape[0]
        return self.body(x)


def _folder_features(inception, folder):
    from data.transforms import to_tensor
    images = [to_tensor(Image.open(os.path.join(folder, n)).convert("RGB")) for n in sorted(os.listdir(folder))]
    return fid.inception_features(inception, [fid.fake_to_unit(torch.stack(images))], "cpu")


# ---------------------------------------------------------------- FID

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


# ---------------------------------------------------------------- mIoU

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


def test_evaluator_miou_weights_missing(cityscapes_root, tmp_path, caplog):
    out, _ = cityscapes_root
    opt = _parse(out, "--model", "pix2pix", "--direction", "BtoA")
    opt = replace(opt, drn_path=str(tmp_path / "default_drn.pth"))  # the default, not given by the user
    with caplog.at_level(logging.WARNING, logger="metrics.evaluate"):
        assert not Evaluator(opt, "cpu").enabled
    assert any("mIoU is skipped" in r.getMessage() for r in caplog.records)
    opt = _parse(out, "--model", "pix2pix", "--direction", "BtoA", "--drn_path", str(tmp_path / "given.pth"))
    with pytest.raises(UserError, match="drn-d-105_ms_cityscapes.pth"):
        Evaluator(opt, "cpu")
    opt = _parse(out, "--model", "pix2pix", "--direction", "AtoB", "--drn_path", str(tmp_path / "given.pth"))
    with pytest.raises(UserError, match="BtoA"):
        Evaluator(opt, "cpu")
