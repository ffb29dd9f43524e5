"""Evaluation inside training and test.py with a random-weight FID network: scores are logged, the
best epoch per direction ends up in model_best.pth, a resumed run keeps its best scores, and
test.py writes the scores to metrics.json."""
import json
import os
import re
import shutil

import pytest

import pipeline.train
import torch

from tests.conftest import UNALIGNED, run_main, tiny_args
from tests.helpers import _random_inception
from pipeline.checkpoint import load_checkpoint


@pytest.fixture(scope="module")
def inception_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("weights") / "inception.pth"
    torch.save(_random_inception().state_dict(), path)
    return str(path)


@pytest.fixture()
def small_data(toy_root, tmp_path):
    """Four images per split: evaluation writes real_stat_*.npz into the dataroot."""
    root = tmp_path / "data"
    for split in ("trainA", "trainB", "testA", "testB"):
        os.makedirs(root / split)
        for name in sorted(os.listdir(os.path.join(UNALIGNED, split)))[:4]:
            shutil.copy(os.path.join(UNALIGNED, split, name), root / split / name)
    return root


def _logged_scores(run_dir):
    """{direction: {epoch: score}} from the run's logger.log."""
    scores = {}
    for epoch, direction, value in re.findall(r"epoch (\d+) (AtoB|BtoA) FID: ([0-9.]+)",
                                              open(os.path.join(run_dir, "logger.log")).read()):
        scores.setdefault(direction, {})[int(epoch)] = float(value)
    return scores


def _train(tmp_path, data, inception_path, **extra):
    argv = tiny_args(tmp_path / "exp", "fid", dataroot=data, **extra)
    argv[argv.index("--metric") + 1] = "fid"
    return run_main("train", argv + ["--inception_path", inception_path, "--eval_batch_size", "3"])


def test_training_keeps_the_best_epoch_per_direction_and_resume_remembers_it(tmp_path, small_data,
                                                                            inception_path):
    run_dir = tmp_path / "exp" / "fid"
    assert _train(tmp_path, small_data, inception_path, n_epochs=2, n_epochs_decay=0) == 0
    assert os.path.isfile(small_data / "real_stat_A.npz") and os.path.isfile(small_data / "real_stat_B.npz")
    first = _logged_scores(run_dir)
    assert set(first) == {"AtoB", "BtoA"} and all(len(v) == 2 for v in first.values())

    # resume for a third epoch: the best of epochs 1-2 must still count
    assert _train(tmp_path, small_data, inception_path, n_epochs=3, n_epochs_decay=0, continue_train=True) == 0
    scores = _logged_scores(run_dir)
    assert all(len(v) == 3 for v in scores.values())
    best = load_checkpoint(str(run_dir / "model_best.pth"))
    latest = load_checkpoint(str(run_dir / "checkpoints" / "latest.pth"))
    for direction, by_epoch in scores.items():
        epoch = min(by_epoch, key=lambda e: (by_epoch[e], -e))  # ties: the later epoch wins (<=)
        assert best["epochs"][direction] == epoch
        assert best["scores"][direction] == pytest.approx(by_epoch[epoch], abs=1e-3)
        assert latest["best"][direction]["epoch"] == epoch
        # the networks of that direction come from that epoch's checkpoint
        saved = load_checkpoint(str(run_dir / "checkpoints" / f"model_{epoch}.pth"))
        g, d = ("G_A", "D_A") if direction == "AtoB" else ("G_B", "D_B")
        for name in (g, d):
            for key, value in best["nets"][name].items():
                assert torch.equal(value, saved["nets"][name][key]), (direction, name, key)


def test_test_py_writes_fid_to_metrics_json(tmp_path, small_data, inception_path):
    assert _train(tmp_path, small_data, inception_path) == 0
    argv = tiny_args(tmp_path / "exp", "fid", dataroot=small_data)
    argv[argv.index("--metric") + 1] = "fid"
    assert run_main("test", argv + ["--inception_path", inception_path, "--results_dir", str(tmp_path / "res")]) == 0
    report = json.load(open(tmp_path / "res" / "fid" / "test_best" / "metrics.json"))
    assert set(report["fid"]) == {"AtoB", "BtoA"}
    assert all(value >= 0 for value in report["fid"].values())
    assert report["macs"]["AtoB"] > 0 and report["params"]["BtoA"] > 0


def test_test_py_checks_the_fid_statistics_before_translating(tmp_path, small_data, inception_path, capsys):
    """Single-domain data cannot give the target statistics: a missing file is one line before any
    result is written; a damaged one likewise, for any data."""
    ckpt = tmp_path / "exp" / "fid" / "checkpoints" / "latest.pth"
    assert run_main("train", tiny_args(tmp_path / "exp", "fid", dataroot=small_data)) == 0
    argv = tiny_args(tmp_path / "exp", "fid", dataroot=small_data) + [
        "--load_path", str(ckpt), "--inception_path", inception_path, "--results_dir", str(tmp_path / "res")]
    argv[argv.index("--metric") + 1] = "fid"
    capsys.readouterr()
    assert run_main("test", argv + ["--dataset_mode", "single", "--direction", "BtoA"]) == 2
    assert "real_stat_A.npz is missing" in capsys.readouterr().err
    (small_data / "real_stat_B.npz").write_bytes(b"damaged")
    assert run_main("test", argv) == 2
    assert "cannot read FID statistics" in capsys.readouterr().err
    assert not (tmp_path / "res").exists()


def test_prune_py_without_finetune_scores_the_pruned_generators(tmp_path, small_data, inception_path):
    # pruning alone evaluates the slim generators too, so its "FID is skipped" (no weights) is not idle
    from tests.helpers import prune_args, search_checkpoint

    search_checkpoint(tmp_path / "search.pth")
    argv = prune_args(tmp_path, tmp_path / "search.pth")
    argv[argv.index("--dataroot") + 1] = str(small_data)
    argv[argv.index("--metric") + 1] = "fid"
    assert run_main("prune", argv + ["--inception_path", inception_path]) == 0
    pruned = load_checkpoint(str(tmp_path / "exp" / "pruned" / "checkpoints" / "model_0.pth"))
    assert pruned["metric"] == "FID" and set(pruned["scores"]) == {"AtoB", "BtoA"}


def test_missing_inception_file_is_one_line_error(tmp_path, small_data):
    argv = tiny_args(tmp_path / "exp", "nofile", dataroot=small_data)
    argv[argv.index("--metric") + 1] = "fid"
    assert run_main("train", argv + ["--inception_path", str(tmp_path / "missing.pth")]) == 2
    assert not os.path.exists(tmp_path / "exp" / "nofile")


def test_saved_real_statistics_are_kept_per_image_count_and_inception_weights(tmp_path, small_data, inception_path,
                                                                              caplog):
    """Statistics this project saves record the data and the Inception weights (size and SHA-256) they
    describe. Runs on part of the split (--max_dataset_size) keep their own file next to the whole
    split's, so alternating runs reuse both instead of overwriting one; a file made with other
    weights, or by an earlier version that did not record them, is recomputed with a line saying
    why. Published files without any record are used as they are, for the whole split and its parts."""
    import logging

    import numpy as np

    import options
    from metrics.evaluate import Evaluator
    from metrics.fid import save_statistics, statistics_meta, weights_identity

    whole, part = small_data / "real_stat_B.npz", small_data / "real_stat_B_2.npz"
    assert _train(tmp_path, small_data, inception_path, max_dataset_size=2) == 0
    assert statistics_meta(str(part))["images"] == 2 and not whole.exists()
    assert _train(tmp_path, small_data, inception_path, max_dataset_size="inf", overwrite=True) == 0
    meta = statistics_meta(str(whole))
    assert meta["images"] == 4 and statistics_meta(str(part))["images"] == 2
    identity = weights_identity(inception_path)
    assert {k: meta[k] for k in identity} == identity == {
        "inception_bytes": os.path.getsize(inception_path), "inception_sha256": identity["inception_sha256"]}
    assert len(identity["inception_sha256"]) == 16

    def evaluator(size, weights=inception_path):
        argv = tiny_args(tmp_path / "exp", "fid", dataroot=small_data, max_dataset_size=size)
        argv[argv.index("--metric") + 1] = "fid"
        return Evaluator(options.parse("train", argv + ["--inception_path", str(weights)]), "cpu")

    # both files are what their runs need: nothing to recompute
    assert evaluator(2).check_statistics() == set() and evaluator("inf").check_statistics() == set()

    # other Inception weights: recomputed, saying why
    state = torch.load(inception_path, weights_only=True)
    state["fc.bias"] = state["fc.bias"] + 1
    other = tmp_path / "other_inception.pth"
    torch.save(state, other)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="metrics.evaluate"):
        assert evaluator(2, other).check_statistics() == {"A", "B"}
    why = [r.getMessage() for r in caplog.records if str(part) in r.getMessage()]
    assert len(why) == 1 and "recomputing" in why[0] and f"(now {weights_identity(str(other))['inception_sha256']})" \
        in why[0] and "inception_sha256" in why[0]

    # a file of an earlier version, without the weights' record: recomputed, not a crash
    old = {k: v for k, v in meta.items() if not k.startswith("inception_")}
    save_statistics(str(whole), np.zeros(2048), np.eye(2048), meta=old)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="metrics.evaluate"):
        assert evaluator("inf").check_statistics() == {"B"}
    assert any("inception_sha256 unrecorded" in r.getMessage() for r in caplog.records)

    # a file without any record (like the authors' published ones) is read, also for part of the split
    np.savez(whole, mu=np.zeros(2048), sigma=np.eye(2048))
    os.remove(part)
    assert "B" not in evaluator("inf").check_statistics() and "B" not in evaluator(2).check_statistics()
    stamp = os.path.getmtime(whole)
    assert _train(tmp_path, small_data, inception_path, max_dataset_size=2, overwrite=True) == 0
    assert os.path.getmtime(whole) == stamp and not part.exists()


def test_evaluation_on_images_of_different_sizes_and_the_epoch_is_saved_first(tmp_path, small_data, inception_path,
                                                                             monkeypatch):
    """--preprocess none keeps each test image's size: evaluation batches them by size (no extra option);
    and an evaluation that fails leaves the epoch's checkpoint on disk."""
    from PIL import Image

    for i, name in enumerate(sorted(os.listdir(small_data / "testA"))[:2]):
        with Image.open(small_data / "testA" / name) as image:
            image.resize((48 + 8 * i, 40)).save(small_data / "testA" / name)
    run_dir = tmp_path / "exp" / "fid"
    assert _train(tmp_path, small_data, inception_path, preprocess="none") == 0
    assert set(_logged_scores(run_dir)) == {"AtoB", "BtoA"}

    from metrics.evaluate import Evaluator

    def broken(self, generators, save_dir=None):
        raise RuntimeError("evaluation failed")

    monkeypatch.setattr(Evaluator, "evaluate", broken)
    with pytest.raises(RuntimeError):
        _train(tmp_path / "lost", small_data, inception_path, preprocess="none")
    assert (tmp_path / "lost" / "exp" / "fid" / "checkpoints" / "model_1.pth").is_file()


def test_explicit_miou_without_drn_weights_is_refused_and_auto_skips(toy_root, tmp_path, monkeypatch, caplog):
    """``--metric miou`` asked for by name without the DRN weights stops with one line naming
    --drn_path before anything is written or translated; chosen automatically (a Cityscapes dataroot)
    it is skipped with a warning, as before."""
    import logging

    import options
    from metrics.evaluate import build_evaluator
    from tests.conftest import ALIGNED
    from util.errors import UserError

    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # no ~/pretrain/drn-d-105_ms_cityscapes.pth
    argv = tiny_args(tmp_path / "exp", "miou", "pix2pix", direction="BtoA")
    argv[argv.index("--metric") + 1] = "miou"
    translated = []
    monkeypatch.setattr(pipeline.train.Trainer, "train", lambda self: translated.append(self))
    assert run_main("train", argv) == 2
    assert not translated and not (tmp_path / "exp" / "miou").exists()
    with pytest.raises(UserError, match=r"--metric miou needs the DRN weights.*--drn_path"):
        build_evaluator(options.parse("test", argv), "cpu")

    cityscapes = tmp_path / "cityscapes"
    os.symlink(ALIGNED, cityscapes)
    auto = argv[:argv.index("--metric")] + argv[argv.index("--metric") + 2:]
    auto[auto.index("--dataroot") + 1] = str(cityscapes)
    with caplog.at_level(logging.WARNING):
        evaluator = build_evaluator(options.parse("test", auto), "cpu")
    assert evaluator.metric == "miou" and not evaluator.enabled
    assert any("mIoU is skipped" in r.getMessage() for r in caplog.records)


def test_explicit_fid_without_inception_weights_is_refused_and_auto_skips(tmp_path, monkeypatch, caplog):
    """``--metric fid`` asked for by name without the Inception weights stops with one line naming
    --inception_path before anything is written; chosen automatically it is skipped with a warning."""
    import logging

    import options
    from metrics.evaluate import build_evaluator
    from util.errors import UserError

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # no pt_inception-*.pth in the hub cache
    argv = tiny_args(tmp_path / "exp", "fid", "cyclegan")
    if "--metric" in argv:
        argv[argv.index("--metric") + 1] = "fid"
    else:
        argv += ["--metric", "fid"]
    trained = []
    monkeypatch.setattr(pipeline.train.Trainer, "train", lambda self: trained.append(self))
    assert run_main("train", argv) == 2
    assert not trained and not (tmp_path / "exp" / "fid").exists()
    with pytest.raises(UserError, match=r"--metric fid needs the Inception weights.*--inception_path"):
        build_evaluator(options.parse("test", argv), "cpu")

    auto = argv[:argv.index("--metric")] + argv[argv.index("--metric") + 2:]
    with caplog.at_level(logging.WARNING):
        evaluator = build_evaluator(options.parse("test", auto), "cpu")
    assert evaluator.metric == "fid" and not evaluator.enabled
    assert any("FID is skipped" in r.getMessage() for r in caplog.records)


# ---------------------------------------------------------------- splits too small for FID

def _small_split(toy_root, tmp_path, model, sizes):
    """A copy of the toy data of ``model``'s layout with ``sizes`` images per split folder."""
    from tests.conftest import ALIGNED

    source = UNALIGNED if model == "cyclegan" else ALIGNED
    root = tmp_path / "data"
    for split, n in sizes.items():
        os.makedirs(root / split)
        for name in sorted(os.listdir(os.path.join(source, split)))[:n]:
            shutil.copy(os.path.join(source, split, name), root / split / name)
    return root


SMALL = {"cyclegan": {"trainA": 2, "trainB": 2, "testA": 1, "testB": 3},
         "pix2pix": {"train": 2, "val": 1, "test": 2}}


def _fid_argv(tmp_path, model, data, inception_path, metric):
    argv = tiny_args(tmp_path / "exp", "small", model, dataroot=data)
    i = argv.index("--metric")
    del argv[i:i + 2]
    return argv + ["--inception_path", inception_path] + (["--metric", metric] if metric else [])


@pytest.mark.parametrize("model", ["cyclegan", "pix2pix"])
def test_an_explicit_fid_on_a_split_too_small_is_refused_before_training(toy_root, tmp_path, inception_path,
                                                                          capsys, model):
    data = _small_split(toy_root, tmp_path, model, SMALL[model])
    capsys.readouterr()
    assert run_main("train", _fid_argv(tmp_path, model, data, inception_path, "fid")) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and "at least 2 images" in err[0] and "--no_eval" in err[0] and "--metric none" in err[0]
    assert "1 " in err[0] and not (tmp_path / "exp").exists()


@pytest.mark.parametrize("model", ["cyclegan", "pix2pix"])
def test_fid_chosen_automatically_on_a_split_too_small_is_skipped_and_test_py_says_so(toy_root, tmp_path,
                                                                                      inception_path, capsys, model):
    data = _small_split(toy_root, tmp_path, model, SMALL[model])
    capsys.readouterr()
    assert run_main("train", _fid_argv(tmp_path, model, data, inception_path, None)) == 0
    out = capsys.readouterr()
    warned = [line for line in (out.out + out.err).splitlines() if "FID is not computed" in line]
    assert len(warned) == 1 and "--no_eval" in warned[0]
    run_dir = tmp_path / "exp" / "small"
    assert (run_dir / "checkpoints" / "latest.pth").is_file() and not (run_dir / "model_best.pth").exists()
    # test.py keeps the images and the page and reports FID as not computed, asked for by name or not
    for metric in (None, "fid"):
        argv = _fid_argv(tmp_path, model, data, inception_path, metric) + ["--results_dir", str(tmp_path / "res")]
        assert run_main("test", argv) == 0
        page = tmp_path / "res" / "small" / "test_1"
        report = json.load(open(page / "metrics.json"))
        directions = ["AtoB", "BtoA"] if model == "cyclegan" else ["AtoB"]
        assert report["fid"] == dict.fromkeys(directions) and set(report["fid_not_computed"]) == set(directions)
        assert (page / "index.html").is_file() and any((page / "images").rglob("*_fake_B.png"))


def test_a_direction_with_enough_images_is_still_scored(toy_root, tmp_path, inception_path):
    """testA has 3 images and the real B statistics are stored: AtoB is scored; BtoA (1 image) is not."""
    import numpy as np

    from metrics.fid import save_statistics

    data = _small_split(toy_root, tmp_path, "cyclegan", {"trainA": 2, "trainB": 2, "testA": 3, "testB": 1})
    save_statistics(str(data / "real_stat_B.npz"), np.zeros(2048), np.eye(2048))  # published-style: no record
    assert run_main("train", tiny_args(tmp_path / "exp", "small", dataroot=data)) == 0
    argv = _fid_argv(tmp_path, "cyclegan", data, inception_path, "fid") + ["--results_dir", str(tmp_path / "res")]
    assert run_main("test", argv) == 0
    report = json.load(open(tmp_path / "res" / "small" / "test_1" / "metrics.json"))
    assert report["fid"]["AtoB"] > 0 and report["fid"]["BtoA"] is None
    assert list(report["fid_not_computed"]) == ["BtoA"] and "1 B image" in report["fid_not_computed"]["BtoA"]
