"""pipeline/run.py: what a run leaves in its folder on short runs, the messages around an existing run
folder, and --overwrite, which never loses the earlier run or the files a command reads: the earlier
checkpoints go only once the new run has saved its first one, every image of the split is decoded
before anything is written, and a checkpoint the command reads may not be one of the folder it would
clear."""
import os
import shlex
import shutil
import subprocess
import sys

import pytest

from tests.conftest import ALIGNED, REPO, UNALIGNED, hash_tree, run_main, tiny_args
from tests.helpers import prune_args, search_checkpoint
from util.files import FolderLock


def test_short_run_still_writes_the_html_page_and_a_loss_line(toy_root, tmp_path):
    """--display_freq 400 and --print_freq 100 (the defaults) are longer than a 4-image epoch: the
    epoch's last batch reports anyway."""
    argv = tiny_args(tmp_path, "short", display_freq=400, print_freq=100)
    assert run_main("train", argv) == 0
    web = tmp_path / "short" / "web"
    assert (web / "index.html").is_file()
    assert any(name.startswith("epoch001_") for name in os.listdir(web / "images"))
    lines = (tmp_path / "short" / "loss_log.txt").read_text().splitlines()
    assert any(line.startswith("(epoch: 1, iters: 4") for line in lines)


def test_a_fresh_run_on_an_existing_name_warns(toy_root, tmp_path, caplog):
    argv = tiny_args(tmp_path, "again")
    assert run_main("train", argv) == 0
    assert "already holds checkpoints" not in caplog.text
    assert run_main("train", argv + ["--overwrite"]) == 0
    assert "already holds checkpoints of an earlier run" in caplog.text


# ---------------------------------------------------------------- every run folder safe

def _one_line_error(capsys):
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and len(err.splitlines()) == 1, err
    return err


def test_a_finished_run_is_not_overwritten_without_an_explicit_option(toy_root, tmp_path, capsys):
    assert run_main("train", tiny_args(tmp_path, "done", n_epochs=2)) == 0
    run = tmp_path / "done"
    before = hash_tree(run)
    assert run_main("train", tiny_args(tmp_path, "done")) == 2
    err = _one_line_error(capsys)
    assert "--continue_train" in err and "--name" in err and "--overwrite" in err
    assert hash_tree(run) == before  # nothing of the finished run changed
    assert run_main("train", tiny_args(tmp_path, "done", overwrite=True)) == 0
    assert sorted(os.listdir(run / "checkpoints")) == ["latest.pth", "model_1.pth"]  # model_2 of the old run gone


def test_checkpoints_dir_that_is_a_file_is_one_line(toy_root, tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    assert run_main("train", tiny_args(tmp_path / "file", "run")) == 2
    assert "is a file" in _one_line_error(capsys)


def test_read_only_checkpoints_dir_is_one_line(toy_root, tmp_path, capsys, monkeypatch):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    if os.geteuid() == 0:  # root writes anywhere: make the check see the folder as read-only
        real_access = os.access
        monkeypatch.setattr(os, "access", lambda p, mode: False if os.path.abspath(p) == str(ro) else real_access(p, mode))
    try:
        assert run_main("train", tiny_args(ro, "run")) == 2
        assert "not writable" in _one_line_error(capsys)
        assert os.listdir(ro) == []
    finally:
        ro.chmod(0o755)


def test_a_second_run_on_a_busy_folder_stops_and_a_killed_ones_lock_does_not_block(toy_root, tmp_path, capsys):
    run = tmp_path / "busy"
    run.mkdir()
    lock = FolderLock(str(run))
    assert lock.acquire()
    try:
        assert run_main("train", tiny_args(tmp_path, "busy")) == 2
        assert "in use by another run" in _one_line_error(capsys)
        assert os.listdir(run) == []
    finally:
        lock.release()
    # a run killed while holding the lock (kill -9) leaves nothing that blocks the next
    code = ("import os, sys; sys.path.insert(0, %r); from util.files import FolderLock; "
            "assert FolderLock(%r).acquire(); os.kill(os.getpid(), 9)") % (REPO, str(run))
    assert subprocess.run([sys.executable, "-c", code]).returncode == -9
    assert run_main("train", tiny_args(tmp_path, "busy")) == 0


def test_partial_files_are_removed_and_ctrl_c_says_how_to_resume(toy_root, tmp_path, capsys, monkeypatch):
    from pipeline.trainer import Trainer

    argv = tiny_args(tmp_path, "stop", n_epochs=3)
    real_epoch = Trainer.train_epoch

    def interrupted_epoch(self, epoch):
        if epoch == 2:
            raise KeyboardInterrupt
        return real_epoch(self, epoch)

    monkeypatch.setattr(Trainer, "train_epoch", interrupted_epoch)
    assert run_main("train", argv) == 130
    run = tmp_path / "stop"
    latest = str(run / "checkpoints" / "latest.pth")
    expected = f"the last checkpoint saved is {latest} (end of epoch 1)"
    out = capsys.readouterr()
    log = (run / "logger.log").read_text()
    command = f"python train.py {' '.join(shlex.quote(a) for a in argv)} --continue_train"
    for text in (out.out + out.err, log):
        assert expected in text and command in text
    assert "interrupted\n" not in out.err  # the resume line says it already
    monkeypatch.setattr(Trainer, "train_epoch", real_epoch)
    stale = run / "checkpoints" / ".tmp-latest.pth.k1ll3d"  # a save killed half-way
    stale.write_bytes(b"half a checkpoint")
    assert run_main("train", argv + ["--continue_train"]) == 0
    assert not stale.exists() and "partial file" in (run / "logger.log").read_text()


# ---------------------------------------------------------------- --overwrite

def _one_line(capsys):
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and len(err.splitlines()) == 1, err
    return err


def _copy_with_truncated(root, tmp_path, split, index=-1):
    """A copy of a toy dataroot whose ``index``-th image of ``split`` (in file order) is cut in half."""
    data = tmp_path / "data"
    shutil.copytree(root, data)
    files = sorted((data / split).iterdir())
    raw = files[index].read_bytes()
    files[index].write_bytes(raw[: len(raw) // 2])
    return data


def test_overwrite_keeps_the_earlier_run_when_a_late_image_is_truncated(toy_root, tmp_path, capsys):
    """The truncated image is the split's last one: not in the first batch (4 images, batch 1)."""
    assert run_main("train", tiny_args(tmp_path, "run", n_epochs=2)) == 0
    before = hash_tree(tmp_path / "run" / "checkpoints")
    data = _copy_with_truncated(UNALIGNED, tmp_path, "trainB", index=3)
    assert run_main("train", tiny_args(tmp_path, "run", dataroot=data, overwrite=True)) == 2
    assert "cannot read image" in _one_line(capsys)
    assert hash_tree(tmp_path / "run" / "checkpoints") == before


def test_overwrite_removes_the_earlier_checkpoints_only_after_the_first_new_one(toy_root, tmp_path, monkeypatch):
    """Seen from inside the first save: the earlier run's files are all still there when the new
    latest.pth is written, and the ones not replaced are gone right after."""
    from pipeline import trainer as training

    assert run_main("train", tiny_args(tmp_path, "run", n_epochs=3)) == 0
    old = sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir())
    assert old == ["latest.pth", "model_1.pth", "model_2.pth", "model_3.pth"]
    seen = []
    real_save = training.save_checkpoint

    def spy(state, path):
        seen.append(sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir()))
        real_save(state, path)

    monkeypatch.setattr(training, "save_checkpoint", spy)
    assert run_main("train", tiny_args(tmp_path, "run", overwrite=True)) == 0
    assert seen[0] == old  # nothing removed before the new run's first checkpoint
    assert sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir()) == ["latest.pth", "model_1.pth"]


def test_overwrite_of_the_folder_holding_the_load_path_is_refused(tmp_path, capsys):
    """prune.py --overwrite into the search's own run folder would delete the file it prunes."""
    run = tmp_path / "exp" / "pruned"
    (run / "checkpoints").mkdir(parents=True)
    ckpt = run / "checkpoints" / "latest.pth"
    search_checkpoint(ckpt)
    before = hash_tree(run)
    assert run_main("prune", prune_args(tmp_path, ckpt, "cyclegan", "--overwrite")) == 2
    err = _one_line(capsys)
    assert "--load_path" in err and "--name" in err
    assert hash_tree(run) == before


def test_overwrite_of_the_folder_holding_the_teacher_is_refused(tmp_path, capsys):
    ckpt = tmp_path / "search.pth"
    search_checkpoint(ckpt)
    assert run_main("prune", prune_args(tmp_path, ckpt)) == 0
    teacher = tmp_path / "exp" / "pruned" / "checkpoints" / "model_0.pth"
    before = hash_tree(tmp_path / "exp")
    finetune = ["--finetune", "--overwrite", "--pretrain_path", str(teacher), "--lambda_attention_distill", "1",
                "--max_dataset_size", "2", "--num_threads", "0"]
    assert run_main("prune", prune_args(tmp_path, ckpt, "cyclegan", *finetune)) == 2
    assert "--pretrain_path" in _one_line(capsys)
    assert hash_tree(tmp_path / "exp") == before


@pytest.mark.parametrize("model", ["cyclegan", "pix2pix"])
def test_finetune_checks_every_image_before_it_writes_model_0(tmp_path, capsys, model):
    ckpt = tmp_path / "search.pth"
    search_checkpoint(ckpt, model=model)
    root, split = (UNALIGNED, "trainA") if model == "cyclegan" else (ALIGNED, "train")
    data = _copy_with_truncated(root, tmp_path, split)
    argv = prune_args(tmp_path, ckpt, model, "--finetune", "--lambda_attention_distill", "0",
                      "--lambda_discriminator_distill", "0", "--num_threads", "0")
    argv[argv.index("--dataroot") + 1] = str(data)
    assert run_main("prune", argv) == 2
    assert "cannot read image" in _one_line(capsys)
    assert not (tmp_path / "exp").exists()  # model_0.pth not written


def test_overwrite_of_a_pruned_run_by_a_failing_finetune_keeps_it(tmp_path, capsys):
    ckpt = tmp_path / "search.pth"
    search_checkpoint(ckpt)
    assert run_main("prune", prune_args(tmp_path, ckpt)) == 0
    before = hash_tree(tmp_path / "exp")
    data = _copy_with_truncated(UNALIGNED, tmp_path, "trainB")
    argv = prune_args(tmp_path, ckpt, "cyclegan", "--finetune", "--overwrite", "--lambda_attention_distill", "0",
                      "--lambda_discriminator_distill", "0", "--num_threads", "0")
    argv[argv.index("--dataroot") + 1] = str(data)
    assert run_main("prune", argv) == 2
    assert hash_tree(tmp_path / "exp") == before


def test_a_finetune_over_an_earlier_one_keeps_its_own_model_0(toy_root, tmp_path):
    ckpt = tmp_path / "search.pth"
    search_checkpoint(ckpt)
    finetune = ["--finetune", "--lambda_attention_distill", "0", "--lambda_discriminator_distill", "0",
                "--num_threads", "0", "--max_dataset_size", "2", "--n_epochs", "2", "--n_epochs_decay", "0"]
    assert run_main("prune", prune_args(tmp_path, ckpt, "cyclegan", *finetune)) == 0
    finetune[finetune.index("--n_epochs") + 1] = "1"
    assert run_main("prune", prune_args(tmp_path, ckpt, "cyclegan", *finetune, "--overwrite")) == 0
    names = sorted(p.name for p in (tmp_path / "exp" / "pruned" / "checkpoints").iterdir())
    assert names == ["latest.pth", "model_0.pth", "model_1.pth"]  # the earlier model_2.pth gone, model_0 kept


def test_train_load_path_without_continue_train_is_one_line(toy_root, tmp_path, capsys):
    argv = tiny_args(tmp_path, "run", load_path=tmp_path / "missing.pth")
    assert run_main("train", argv) == 2
    err = _one_line(capsys)
    assert "--continue_train" in err and "--init_path" in err
    assert not (tmp_path / "run").exists()


def test_ctrl_c_before_the_first_checkpoint_prints_no_resume_command(toy_root, tmp_path, monkeypatch, caplog):
    from pipeline.trainer import Trainer

    def interrupted(self, epoch):
        raise KeyboardInterrupt

    monkeypatch.setattr(Trainer, "train_epoch", interrupted)
    assert run_main("train", tiny_args(tmp_path, "run")) != 0
    assert "nothing to resume" in caplog.text and "--continue_train" not in caplog.text


def test_overwrite_removes_the_files_exported_from_the_earlier_checkpoints(toy_root, tmp_path):
    """export.py's default outputs beside the earlier run's checkpoints go with them; other files stay."""
    assert run_main("train", tiny_args(tmp_path, "run", n_epochs=2)) == 0
    ckpt = tmp_path / "run" / "checkpoints"
    exported = [ckpt / "latest_AtoB.onnx", ckpt / "model_1_BtoA.torchscript.pt", tmp_path / "run" / "model_best_AtoB.onnx"]
    kept = [tmp_path / "run" / "notes_AtoB.onnx", ckpt / "latest_AtoB.onnx.txt"]
    for path in exported + kept:
        path.write_bytes(b"x")
    assert run_main("train", tiny_args(tmp_path, "run", overwrite=True)) == 0
    assert not any(p.exists() for p in exported) and all(p.exists() for p in kept)
