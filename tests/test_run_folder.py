"""What a run leaves in its folder on short runs, and the messages around an existing run folder."""
import os
import shlex
import stat
import subprocess
import sys

import numpy as np
import pytest

import options
from tests.conftest import REPO, hash_tree, run_main, tiny_args
from util.errors import UserError
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


def test_test_py_names_the_model_of_the_checkpoint(toy_root, tmp_path, capsys):
    assert run_main("train", tiny_args(tmp_path, "p2p", model="pix2pix")) == 0
    argv = tiny_args(tmp_path, "p2p")  # --model cyclegan, as a user who forgot --model pix2pix
    argv += ["--load_path", str(tmp_path / "p2p" / "checkpoints" / "latest.pth")]
    assert run_main("test", argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "--model pix2pix" in err and len(err.splitlines()) == 1


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


@pytest.mark.parametrize("name", ["a/b", "../x", "/tmp/abs", "", ".."])
def test_name_is_one_path_component(name):
    with pytest.raises(UserError, match="--name"):
        options.parse("train", ["--dataroot", "d", "--name", name])


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


def test_checkpoints_get_the_permissions_of_the_umask(tmp_path):
    from pipeline.checkpoint import save_checkpoint
    from report.image import save_image

    old = os.umask(0o027)
    try:
        save_checkpoint({"format": "dmad", "version": 1}, str(tmp_path / "c.pth"))
        save_image(np.zeros((4, 4, 3), dtype=np.uint8), str(tmp_path / "i.png"))
    finally:
        os.umask(old)
    for name in ("c.pth", "i.png"):
        assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == 0o640, name


@pytest.mark.parametrize("earlier", ["folder", "file", "link"])
def test_atomic_folder_replaces_whatever_had_the_name_and_leaves_nothing_beside_it(tmp_path, earlier):
    from util.files import atomic_folder

    target = tmp_path / "results"
    if earlier == "folder":
        target.mkdir()
        (target / "stale.png").write_text("earlier run")
    elif earlier == "file":
        target.write_text("a file with the folder's name")
    else:
        (tmp_path / "elsewhere").mkdir()
        target.symlink_to(tmp_path / "elsewhere")
    with atomic_folder(target) as staging:
        (tmp_path / staging / "index.html").write_text("new run")
    assert sorted(os.listdir(target)) == ["index.html"]
    assert sorted(os.listdir(tmp_path)) == (["elsewhere", "results"] if earlier == "link" else ["results"])


def test_atomic_folder_clears_what_a_killed_run_left_and_spares_a_running_one(tmp_path):
    from util.files import FolderLock, atomic_folder

    killed = tmp_path / ".tmp-results.killed1"  # a run killed while filling its folder
    (killed / "images").mkdir(parents=True)
    running = tmp_path / ".tmp-results.running"  # a run filling its folder now (it holds the lock)
    running.mkdir()
    other = tmp_path / ".tmp-other.killed2"  # another target's: not ours to judge
    other.mkdir()
    lock = FolderLock(str(running))
    assert lock.acquire()
    try:
        with atomic_folder(tmp_path / "results") as staging:
            (tmp_path / staging / "index.html").write_text("new run")
    finally:
        lock.release()
    assert sorted(os.listdir(tmp_path)) == [".tmp-other.killed2", ".tmp-results.running", "results"]


def test_atomic_folder_completes_a_swap_cut_between_its_renames(tmp_path):
    from util.files import _clear_leftovers

    # killed after moving the earlier results aside and before renaming the finished new folder
    (tmp_path / ".tmp-results.cut").mkdir()
    (tmp_path / ".tmp-results.cut" / "index.html").write_text("new run")
    (tmp_path / ".tmp-results.cut.old").mkdir()
    (tmp_path / ".tmp-results.cut.old" / "index.html").write_text("earlier run")
    # killed after the swap, before removing the earlier results
    (tmp_path / ".tmp-results.done.old").write_text("a file that had the name")
    _clear_leftovers(str(tmp_path), "results")
    assert sorted(os.listdir(tmp_path)) == ["results"]
    assert (tmp_path / "results" / "index.html").read_text() == "new run"
