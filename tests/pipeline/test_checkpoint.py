"""Tests of the checkpoint schema in pipeline/checkpoint.py: every writer states its kind, the one reader
reads version 1 and 2 files, refuses newer or unknown ones, and test.py reads its checkpoint once; saves
are atomic, and both stages resume through the one resume_state."""
import pytest
import torch

import options
import pipeline.checkpoint
from tests.conftest import run_main, tiny_args
from models import create_model
from pipeline.checkpoint import (FORMAT, VERSION, header, load_checkpoint, options_dict, read_checkpoint,
                                 resume_state, save_checkpoint, with_generators)
from pipeline.run import Run
from tests.pipeline.conftest import load
from util.errors import UserError
from util.seed import rng_state

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


# ---------------------------------------------------------------- atomic saves

def test_atomic_save_leaves_no_temp_files(tmp_path):
    target = tmp_path / "model.pth"
    save_checkpoint({"format": "dmad", "x": torch.ones(3)}, str(target))
    good = target.read_bytes()
    with pytest.raises(Exception):
        save_checkpoint({"format": "dmad", "bad": lambda: None}, str(target))
    assert target.read_bytes() == good
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pth"]
    assert torch.equal(load(target)["x"], torch.ones(3))


# ---------------------------------------------------------------- one resume path for both stages

def _checkpoint(path, stage, epoch, model="cyclegan", **extra):
    state = {"format": FORMAT, "version": VERSION, "kind": "pruned" if stage == "pruned" else "training",
             "model": model, "stage": stage, "epoch": epoch,
             "iteration": 1, "nets": {}, "configs": {}, "optimizers": {}, "rng": rng_state(), **extra}
    save_checkpoint(state, str(path))


def test_one_resume_path_for_both_stages(tmp_path):
    opt = options.parse("prune", tiny_args(tmp_path, "run", mask=True, finetune=True))
    run = Run(opt)
    ckpt = tmp_path / "run" / "checkpoints"
    _checkpoint(ckpt / "model_0.pth", "pruned", 0)

    def finetune_resume():
        return resume_state(opt, run, run.resume_candidates(), stages=("finetune",), kind="fine-tune checkpoint",
                            fix="run prune.py --finetune without --continue_train first")

    with pytest.raises(UserError, match="found no fine-tune checkpoint in .*: run prune.py --finetune"):
        finetune_resume()  # the pruned model_0.pth does not count
    _checkpoint(ckpt / "model_2.pth", "finetune", 2)
    _checkpoint(ckpt / "model_1.pth", "finetune", 1)
    resume = finetune_resume()
    assert resume.path == str(ckpt / "model_2.pth")  # newest epoch first
    # the one record the loop takes back: no stage reads the dict
    assert (resume.epoch, resume.iteration, resume.full, resume.world_size, resume.search) == (2, 1, True, 1, None)
    assert resume.record.model == "cyclegan" and resume.process_states[0]["rng"].keys() >= {"torch", "numpy"}
    _checkpoint(ckpt / "latest.pth", "finetune", 2, model="pix2pix")
    with pytest.raises(UserError, match="holds a pix2pix model but --model cyclegan"):
        finetune_resume()  # latest.pth first, and checked like train.py's
    _checkpoint(ckpt / "latest.pth", "finetune", 2, rng={})
    with pytest.raises(UserError, match="random-generator state lacks"):
        finetune_resume()

    # train.py: the first candidate counts, and must be a training checkpoint of the right kind
    _checkpoint(tmp_path / "other.pth", "train", 1, format="other")
    with pytest.raises(UserError, match="not a training checkpoint of this project"):
        resume_state(opt, run, [str(tmp_path / "other.pth")], stages=None, kind="checkpoint", fix="x")
    with pytest.raises(UserError, match=r"holds pruned generators \(a prune.py checkpoint\): resume it with prune.py"):
        resume_state(opt, run, [str(ckpt / "model_1.pth")], stages=None, kind="checkpoint", fix="x", search=False)
    _checkpoint(tmp_path / "plain.pth", "train", 1)
    with pytest.raises(UserError, match=r"plain \(no --mask\) checkpoint: resume it without --mask"):
        resume_state(opt, run, [str(tmp_path / "plain.pth")], stages=None, kind="checkpoint", fix="x", search=True)
    assert resume_state(opt, run, [str(tmp_path / "plain.pth")], stages=None, kind="checkpoint", fix="x",
                        search=False).path == str(tmp_path / "plain.pth")
    with pytest.raises(UserError, match="found no checkpoint in .*: give --load_path"):
        resume_state(opt, run, [], stages=None, kind="checkpoint", fix="give --load_path")


def test_with_generators_is_a_copy_with_other_generators_and_no_scores(tmp_path):
    opt, model = tiny_model(tmp_path)
    state = dict(header("training", opt.model, "search", opt), **model.state_dict(), scores={"AtoB": 1.0})
    torch.manual_seed(1)
    other = create_model(opt, CPU).nets["G_A"]
    changed = with_generators(state, {"G_A": other})
    assert same_weights(changed["nets"]["G_A"], other.state_dict()) and changed["scores"] == {}
    assert same_weights(changed["nets"]["G_B"], state["nets"]["G_B"])
    assert same_weights(state["nets"]["G_A"], model.nets["G_A"].state_dict()) and state["scores"] == {"AtoB": 1.0}
