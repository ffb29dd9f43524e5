"""util/files.py: files written with the permissions of the umask, and atomic folders that replace
what had their name and clear what killed runs left."""
import os
import stat

import numpy as np
import pytest


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


def test_finite_or_null_makes_strict_json():
    import json
    import math

    from util.files import finite_or_null

    value = {"a": [1.0, math.nan, (math.inf, -math.inf)], "b": {"c": 2, "d": "x"}}
    assert finite_or_null(value) == {"a": [1.0, None, [None, None]], "b": {"c": 2, "d": "x"}}
    json.dumps(finite_or_null(value), allow_nan=False)
