"""data/aligned_dataset.py: A|B pairs split into halves that share their crop and flip."""
import os

import pytest
import torch
from PIL import Image

import data
from tests.data.conftest import make_opt, noise


def test_aligned_halves_share_crop_and_flip(aligned_root):
    ds = data.create_dataset(make_opt(aligned_root, dataset_mode="aligned", load_size=40, crop_size=32))
    assert len(ds) == 4
    crops = set()
    for epoch in range(1, 6):
        ds.set_epoch(epoch)
        for i in range(len(ds)):
            item = ds[i]
            assert item["A"].shape == (3, 32, 32)
            assert torch.equal(item["A"], item["B"])  # identical halves stay identical
            assert item["A_paths"] == item["B_paths"] == ds.AB_paths[i]
            crops.add(item["A"].sum().item())
    assert len(crops) > 4  # the crops/flips did vary across epochs


def test_aligned_left_is_A_right_is_B(tmp_path):
    os.makedirs(tmp_path / "val")
    pair = Image.new("RGB", (64, 32), (255, 0, 0))
    pair.paste(Image.new("RGB", (32, 32), (0, 0, 255)), (32, 0))
    pair.save(tmp_path / "val" / "x.png")
    item = data.create_dataset(make_opt(tmp_path, dataset_mode="aligned"), phase="val", train=False)[0]
    assert torch.allclose(item["A"][0], torch.ones(32, 32)) and torch.allclose(item["A"][2], -torch.ones(32, 32))
    assert torch.allclose(item["B"][2], torch.ones(32, 32)) and torch.allclose(item["B"][0], -torch.ones(32, 32))


def test_square_image_in_aligned_data_is_split_with_one_warning_naming_it(tmp_path, caplog):
    os.makedirs(tmp_path / "train")
    pair = Image.new("RGB", (64, 32))
    pair.paste(noise(32, 32, 1), (0, 0))
    pair.paste(noise(32, 32, 2), (32, 0))
    pair.save(tmp_path / "train" / "pair.png")
    noise(48, 48, 3).save(tmp_path / "train" / "square.png")
    opt = make_opt(tmp_path, dataset_mode="aligned", load_size=24, crop_size=24, preprocess="resize_and_crop",
                   no_flip=True)
    with caplog.at_level("WARNING"):
        ds = data.create_dataset(opt)
        data.create_dataset(opt)  # the evaluation split on the same files: no second warning
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "square.png" in warnings[0] and "side by side" in warnings[0]
    item = ds[ds.AB_paths.index(str(tmp_path / "train" / "square.png"))]
    assert item["A"].shape == item["B"].shape == (3, 24, 24)  # split into halves as before


@pytest.mark.parametrize("size, shape", [((96, 32), "96x32, 3:1"), ((72, 48), "72x48, 1.5:1"),
                                         ((32, 64), "32x64, 0.5:1"), ((128, 40), "128x40, 3.2:1")])
@pytest.mark.parametrize("split", ["train", "val"])
def test_an_aligned_image_that_is_not_2_to_1_is_warned_about_once(tmp_path, caplog, size, shape, split):
    """Not only square files: any aligned file that is not twice as wide as high (3:1, portrait, ...)."""
    os.makedirs(tmp_path / split)
    pair = Image.new("RGB", (64, 32))
    pair.save(tmp_path / split / "pair.png")
    noise(*size, 3).save(tmp_path / split / "odd.png")
    noise(*size, 4).save(tmp_path / split / "odd2.png")
    opt = make_opt(tmp_path, phase=split, dataset_mode="aligned", load_size=24, crop_size=24, no_flip=True)
    with caplog.at_level("WARNING"):
        ds = data.create_dataset(opt)
        data.create_dataset(opt)  # the same files again: no second warning
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "odd.png" in warnings[0] and f"is {shape}, not twice as wide as high" in warnings[0]
    assert "1 more" in warnings[0] and f"({size[0] // 2}x{size[1]})" in warnings[0]
    item = ds[ds.AB_paths.index(str(tmp_path / split / "odd.png"))]
    assert item["A"].shape == item["B"].shape == (3, 24, 24)  # split into halves all the same
