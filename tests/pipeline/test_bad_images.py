"""A truncated image in a split test.py reads, or in the evaluation split, is one line before anything
else is printed or translated."""
import os
import shutil

import pytest
import torch

from tests.conftest import ALIGNED, UNALIGNED, assert_user_error, run_main, run_script, tiny_args
from tests.helpers import _random_inception


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory, toy_root):
    root = tmp_path_factory.mktemp("runs")
    for model, data in (("cyclegan", UNALIGNED), ("pix2pix", ALIGNED)):
        assert run_main("train", tiny_args(root, model, model=model, dataroot=data)) == 0
    return root


def _truncated_copy(source, target, split, index):
    """A copy of the toy data ``source`` whose ``index``-th image of ``split`` is cut short."""
    shutil.copytree(source, target)
    name = sorted(os.listdir(target / split))[index]
    with open(target / split / name, "rb") as handle:
        head = handle.read(120)
    with open(target / split / name, "wb") as handle:
        handle.write(head)
    return str(target / split / name)


@pytest.mark.parametrize("model, split, extra", [("cyclegan", "testA", []), ("cyclegan", "testB", ["--ntest", "3"]),
                                                 ("pix2pix", "test", []),
                                                 ("cyclegan", "testA", ["--dataset_mode", "single"])])
def test_a_truncated_test_image_is_the_only_line(checkpoints, tmp_path, model, split, extra):
    data = tmp_path / "data"
    bad = _truncated_copy(UNALIGNED if model == "cyclegan" else ALIGNED, data, split, 2)
    proc = run_script("test", ["--dataroot", data, "--model", model, "--checkpoints_dir", checkpoints, "--name", model,
                               "--gpu_ids", "-1", "--display_id", "0", "--results_dir", tmp_path / "res", *extra])
    line = assert_user_error(proc)
    assert proc.stdout.strip() == "" and bad in line and "cannot read image" in line
    assert not (tmp_path / "res").exists() or not any((tmp_path / "res").rglob("*.png"))


def test_a_truncated_image_of_the_evaluation_split_stops_training_before_it_starts(toy_root, tmp_path, capsys):
    inception = tmp_path / "inception.pth"
    torch.save(_random_inception().state_dict(), inception)
    data = tmp_path / "data"
    bad = _truncated_copy(ALIGNED, data, "val", 1)
    argv = tiny_args(tmp_path / "exp", "p", model="pix2pix", dataroot=data, max_dataset_size=8)
    argv[argv.index("--metric") + 1] = "fid"
    capsys.readouterr()
    assert run_main("train", argv + ["--inception_path", str(inception)]) == 2
    out = capsys.readouterr()
    err = [line for line in out.err.splitlines() if line.strip()]
    assert len(err) == 1 and bad in err[0] and "Epoch" not in out.out + out.err
    assert not (tmp_path / "exp").exists()
