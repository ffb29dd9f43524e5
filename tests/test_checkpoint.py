"""Tests of the checkpoint schema in pipeline/checkpoint.py: every writer states its kind, the one reader
reads version 1 and 2 files, refuses newer or unknown ones, and test.py reads its checkpoint once."""
import pytest
import torch

import options
import pipeline.checkpoint
from tests.conftest import run_main, tiny_args
from models import create_model
from pipeline.checkpoint import VERSION, header, load_checkpoint, options_dict, read_checkpoint, save_checkpoint
from util.errors import UserError

CPU = torch.device("cpu")


def tiny_model(tmp_path):
    opt = options.parse("train", tiny_args(tmp_path, "ck", "cyclegan"))
    torch.manual_seed(0)
    return opt, create_model(opt, CPU)


def same_weights(a, b):
    return set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)


def test_version_1_files_read_by_kind(tmp_path):
    opt, model = tiny_model(tmp_path)
    own = model.state_dict()
    v1_best = {"format": "dmad", "version": 1, "model": "cyclegan", "stage": "train", "best": True,
               "nets": own["nets"], "configs": own["configs"], "scores": {"AtoB": 41.0}, "epochs": {"AtoB": 2},
               "options": options_dict(opt)}
    save_checkpoint(v1_best, str(tmp_path / "best_v1.pth"))
    record = read_checkpoint(str(tmp_path / "best_v1.pth"))
    assert (record.kind, record.version, record.label) == ("best", 1, "best")
    assert record.scores() == {"AtoB": 41.0} and set(record.nets) == {"G_A", "G_B", "D_A", "D_B"}
    net = record.generator("BtoA")
    assert same_weights(net.state_dict(), own["nets"]["G_B"]) and not net.training

    v1_pruned = {"format": "dmad", "version": 1, "model": "cyclegan", "stage": "pruned", "epoch": 0,
                 "nets": own["nets"], "configs": own["configs"], "options": options_dict(opt)}
    save_checkpoint(v1_pruned, str(tmp_path / "model_0.pth"))
    record = read_checkpoint(str(tmp_path / "model_0.pth"))
    assert (record.kind, record.label) == ("pruned", "0")

    v1_latest = {"format": "dmad", "version": 1, "model": "cyclegan", "stage": "train", "epoch": 3,
                 "best": {"AtoB": {"score": 4.0, "epoch": 2}}, "options": options_dict(opt), **own}
    save_checkpoint(v1_latest, str(tmp_path / "latest.pth"))
    record = read_checkpoint(str(tmp_path / "latest.pth"))
    assert (record.kind, record.epoch, record.label, record.stage) == ("training", 3, "3", "train")
    assert record.scores() == {"AtoB": 4.0}  # the best epoch's score of a training state
    assert record.options["model"] == "cyclegan"


def test_header_states_kind_and_version(tmp_path):
    opt, _ = tiny_model(tmp_path)
    for kind in ("training", "snapshot", "best", "pruned"):
        state = header(kind, "cyclegan", "train", opt)
        assert state["kind"] == kind and state["version"] == VERSION == 3 and state["format"] == "dmad"
    with pytest.raises(AssertionError):
        header("odd", "cyclegan", "train", opt)


def test_newer_and_foreign_files_are_user_errors(tmp_path):
    path = str(tmp_path / "future.pth")
    save_checkpoint({"format": "dmad", "version": VERSION + 1, "kind": "training", "model": "cyclegan",
                     "nets": {}, "configs": {}}, path)
    with pytest.raises(UserError, match="newer version"):
        read_checkpoint(path)
    save_checkpoint({"format": "dmad", "version": VERSION, "kind": "training", "model": "stylegan",
                     "nets": {}, "configs": {}}, path)
    with pytest.raises(UserError, match="unknown model 'stylegan'"):
        read_checkpoint(path)
    save_checkpoint({"format": "dmad", "version": VERSION, "kind": "odd", "model": "cyclegan",
                     "nets": {}, "configs": {}}, path)
    with pytest.raises(UserError, match="unknown checkpoint kind"):
        read_checkpoint(path)


def test_runs_write_version_2_and_test_py_reads_once(tmp_path, monkeypatch):
    assert run_main("train", tiny_args(tmp_path / "ckpt", "once", "cyclegan")) == 0
    latest = load_checkpoint(str(tmp_path / "ckpt" / "once" / "checkpoints" / "latest.pth"))
    assert latest["kind"] == "training" and latest["version"] == VERSION
    reads = []
    original = pipeline.checkpoint.load_checkpoint
    monkeypatch.setattr(pipeline.checkpoint, "load_checkpoint",
                        lambda path, *a, **k: reads.append(path) or original(path, *a, **k))
    argv = tiny_args(tmp_path / "ckpt", "once", "cyclegan") + ["--results_dir", str(tmp_path / "res")]
    assert run_main("test", argv) == 0
    assert len(reads) == 1 and reads[0].endswith("latest.pth")
    assert (tmp_path / "res" / "once" / "test_1" / "metrics.json").is_file()


def test_save_checkpoint_is_atomic_and_flushed(tmp_path, monkeypatch):
    """Checkpoints go through util.files.atomic_path with fsync: the file is flushed before it is
    renamed into place, a failing save leaves the previous file as it was and no temporary."""
    import os

    path = tmp_path / "run" / "latest.pth"
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append(os.readlink(f"/proc/self/fd/{fd}")) or real_fsync(fd))
    save_checkpoint({"format": "dmad", "w": torch.ones(3)}, str(path))
    assert len(synced) == 1 and os.path.basename(synced[0]).startswith(".tmp-latest.pth.")
    assert torch.equal(torch.load(path, weights_only=True)["w"], torch.ones(3))

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("cannot pickle")

    with pytest.raises(RuntimeError):
        save_checkpoint({"w": torch.zeros(3), "bad": Unpicklable()}, str(path))
    assert torch.equal(torch.load(path, weights_only=True)["w"], torch.ones(3))
    assert os.listdir(path.parent) == ["latest.pth"]


@pytest.mark.parametrize("how", ["OSError", "RuntimeError during the OSError"])
def test_a_full_disk_during_a_save_is_one_line_and_keeps_the_earlier_file(tmp_path, monkeypatch, how):
    import errno

    path = tmp_path / "latest.pth"
    save_checkpoint({"epoch": 1}, str(path))
    before = path.read_bytes()

    def full_disk(state, handle):
        handle.write(b"half a checkpoint")
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError:
            if how == "OSError":
                raise
            raise RuntimeError("[enforce fail at inline_container.cc] unexpected pos")  # as torch's writer does

    monkeypatch.setattr(pipeline.checkpoint.torch, "save", full_disk)
    with pytest.raises(UserError, match=r"No space left on device\): free disk space .* --continue_train"):
        save_checkpoint({"epoch": 2}, str(path))
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["latest.pth"]

    def bug(state, handle):
        raise RuntimeError("not a disk problem")

    monkeypatch.setattr(pipeline.checkpoint.torch, "save", bug)
    with pytest.raises(RuntimeError, match="not a disk problem"):  # other failures are not disguised
        save_checkpoint({"epoch": 2}, str(path))
