"""data/base_dataset.py: what every dataset mode shares (channels by direction, --max_dataset_size,
phases, per-item randomness from (seed, epoch, index)) and the one-line errors on bad folders."""
import os

import numpy as np
import pytest
import torch

import data
from tests.data.conftest import make_opt, noise, save_noise
from util.errors import UserError


@pytest.mark.parametrize("direction,input_nc,output_nc,ca,cb", [
    ("AtoB", 1, 3, 1, 3), ("AtoB", 3, 1, 3, 1), ("BtoA", 1, 3, 3, 1), ("BtoA", 3, 1, 1, 3), ("AtoB", 1, 1, 1, 1),
])
def test_grayscale_follows_direction(unaligned_root, aligned_root, direction, input_nc, output_nc, ca, cb):
    kw = dict(direction=direction, input_nc=input_nc, output_nc=output_nc)
    item = data.create_dataset(make_opt(unaligned_root, **kw))[0]
    assert (item["A"].shape[0], item["B"].shape[0]) == (ca, cb)
    item = data.create_dataset(make_opt(aligned_root, dataset_mode="aligned", **kw))[0]
    assert (item["A"].shape[0], item["B"].shape[0]) == (ca, cb)
    # single-domain images, from either side, are the generator's input: --input_nc channels
    item = data.create_dataset(make_opt(unaligned_root, dataset_mode="single", **kw), phase="test")[0]
    assert item["A"].shape[0] == input_nc


def test_max_dataset_size(unaligned_root, aligned_root):
    ds = data.create_dataset(make_opt(unaligned_root, max_dataset_size=2))
    assert len(ds) == 2 and len(ds.A_paths) == 2 and len(ds.B_paths) == 2
    assert ds.A_paths == data.find_images(str(unaligned_root / "trainA"))[:2]
    assert len(data.create_dataset(make_opt(aligned_root, dataset_mode="aligned", max_dataset_size=3))) == 3


def test_phase_and_mode_overrides(unaligned_root):
    opt = make_opt(unaligned_root)
    ds = data.create_dataset(opt, phase="test", train=False)
    assert len(ds) == 2 and "testA" in ds[0]["A_paths"] and "testB" in ds[0]["B_paths"]
    assert opt.phase == "train"  # the options are not modified


# ---------------------------------------------------------------- determinism

def test_same_seed_epoch_index_same_item(unaligned_root):
    first = data.create_dataset(make_opt(unaligned_root))
    second = data.create_dataset(make_opt(unaligned_root))
    first.set_epoch(3)
    second.set_epoch(3)
    for i in (4, 0, 2):  # access order does not matter
        a, b = first[i], second[i]
        assert torch.equal(a["A"], b["A"]) and torch.equal(a["B"], b["B"]) and a["B_paths"] == b["B_paths"]
    torch.manual_seed(123)  # global RNG state has no influence
    np.random.seed(5)
    assert torch.equal(first[1]["A"], second[1]["A"])
    second.set_epoch(4)
    assert any(not torch.equal(first[i]["A"], second[i]["A"]) for i in range(5))
    other_seed = data.create_dataset(make_opt(unaligned_root, seed=1))
    other_seed.set_epoch(3)
    assert any(not torch.equal(first[i]["A"], other_seed[i]["A"]) for i in range(5))


# ---------------------------------------------------------------- user errors

def test_missing_dataroot(tmp_path):
    with pytest.raises(UserError, match="--dataroot .*" + str(tmp_path / "missing")):
        data.create_dataset(make_opt(tmp_path / "missing"))


def test_missing_split_folder(tmp_path):
    save_noise(tmp_path / "trainA", 2, 40, 40)
    with pytest.raises(UserError, match=str(tmp_path / "trainB") + ".*trainA and trainB"):
        data.create_dataset(make_opt(tmp_path))
    with pytest.raises(UserError, match=str(tmp_path / "train") + " is missing.*aligned data"):
        data.create_dataset(make_opt(tmp_path, dataset_mode="aligned"))


def test_empty_split_folder(tmp_path):
    save_noise(tmp_path / "trainA", 2, 40, 40)
    (tmp_path / "trainB").mkdir()
    (tmp_path / "trainB" / "readme.txt").write_text("nothing here")
    with pytest.raises(UserError, match="no images.*" + str(tmp_path / "trainB")):
        data.create_dataset(make_opt(tmp_path))


def test_text_file_named_png(unaligned_root):
    bad = unaligned_root / "trainB" / "x.png"
    bad.write_text("not an image")
    with pytest.raises(UserError, match=str(bad)):
        data.create_dataset(make_opt(unaligned_root))


def test_odd_aligned_width_and_small_images(tmp_path):
    os.makedirs(tmp_path / "train")
    noise(101, 50, 0).save(tmp_path / "train" / "odd.png")
    with pytest.raises(UserError, match="odd.png has odd width 101"):
        data.create_dataset(make_opt(tmp_path, dataset_mode="aligned"))
    save_noise(tmp_path / "small" / "trainA", 1, 20, 40)
    save_noise(tmp_path / "small" / "trainB", 1, 40, 40)
    with pytest.raises(UserError, match="img_00.png is 20x40 px.*smaller than --crop_size 32"):
        data.create_dataset(make_opt(tmp_path / "small", preprocess="crop"))
    assert len(data.create_dataset(make_opt(tmp_path / "small"))) == 1  # resizing modes are fine
