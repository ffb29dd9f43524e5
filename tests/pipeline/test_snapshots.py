"""Bounded disk use: the full resume state lives in checkpoints/latest.pth only; the numbered
checkpoints are networks-only snapshots, the newest --keep_checkpoints of them kept (0: every one),
and each still serves --continue_train --load_path, test.py and prune.py."""
import pytest
import torch

from pipeline.checkpoint import load_checkpoint
from tests.conftest import run_main, tiny_args


def _names(folder):
    return sorted(p.name for p in folder.iterdir())


def test_numbered_checkpoints_are_snapshots_and_only_the_newest_are_kept(toy_root, tmp_path):
    assert run_main("train", tiny_args(tmp_path, "run", n_epochs=5, mask=True)) == 0
    ckpts = tmp_path / "run" / "checkpoints"
    assert _names(ckpts) == ["latest.pth", "model_3.pth", "model_4.pth", "model_5.pth"]
    latest, snap = load_checkpoint(str(ckpts / "latest.pth")), load_checkpoint(str(ckpts / "model_5.pth"))
    assert latest["kind"] == "training" and {"optimizers", "rng", "pools"} <= set(latest)
    assert snap["kind"] == "snapshot" and not {"optimizers", "rng", "pools"} & set(snap)
    assert snap["epoch"] == 5 and "search" in snap  # a search snapshot keeps the masks' state
    for name, sd in latest["nets"].items():
        for key, value in sd.items():
            assert torch.equal(value, snap["nets"][name][key])


def test_keep_checkpoints_0_keeps_every_one(toy_root, tmp_path):
    assert run_main("train", tiny_args(tmp_path, "all", n_epochs=4, keep_checkpoints=0)) == 0
    assert _names(tmp_path / "all" / "checkpoints") == ["latest.pth"] + [f"model_{e}.pth" for e in range(1, 5)]


@pytest.mark.parametrize("mask", [False, True])
def test_a_snapshot_resumes_with_fresh_optimisers_and_says_so(toy_root, tmp_path, caplog, mask):
    extra = {"mask": True} if mask else {}
    assert run_main("train", tiny_args(tmp_path, "run", n_epochs=3, **extra)) == 0
    snap = tmp_path / "run" / "checkpoints" / "model_2.pth"
    argv = tiny_args(tmp_path, "run", n_epochs=3, continue_train=True, load_path=snap, **extra)
    assert run_main("train", argv) == 0
    assert "numbered snapshot" in caplog.text and "resuming from" in caplog.text
    assert load_checkpoint(str(tmp_path / "run" / "checkpoints" / "latest.pth"))["epoch"] == 3


def test_test_py_and_prune_py_read_a_snapshot(toy_root, tmp_path):
    assert run_main("train", tiny_args(tmp_path, "search", n_epochs=2, mask=True)) == 0
    snap = tmp_path / "search" / "checkpoints" / "model_2.pth"
    assert run_main("test", tiny_args(tmp_path, "search", load_path=snap, results_dir=tmp_path / "r")) == 0
    assert (tmp_path / "r" / "search" / "test_2" / "index.html").is_file()
    assert run_main("prune", tiny_args(tmp_path, "pruned", mask=True, load_path=snap)) == 0
    assert load_checkpoint(str(tmp_path / "pruned" / "checkpoints" / "model_0.pth"))["kind"] == "pruned"


def test_a_fine_tune_never_removes_its_pruned_model(toy_root, tmp_path):
    assert run_main("train", tiny_args(tmp_path, "search", n_epochs=1, mask=True)) == 0
    load = tmp_path / "search" / "checkpoints" / "latest.pth"
    argv = tiny_args(tmp_path, "ft", mask=True, finetune=True, load_path=load, n_epochs=3, keep_checkpoints=1)
    assert run_main("prune", argv) == 0
    assert _names(tmp_path / "ft" / "checkpoints") == ["latest.pth", "model_0.pth", "model_3.pth"]
