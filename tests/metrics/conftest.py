"""Fixtures and helpers of the metrics/ tests. The feature networks have the real architectures with
random weights, written to temporary files and loaded through the same functions as the published
weights. Images are 32 px."""
import os

import numpy as np
import pytest
import torch
from PIL import Image

import options
from metrics import drn as drn_mod
from metrics import fid
from tests.conftest import run_main
from tests.helpers import _random_inception


SIZE = 32


@pytest.fixture(scope="module")
def inception_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("weights") / "inception_random.pth"
    torch.save(_random_inception().state_dict(), path)
    return str(path)


@pytest.fixture(scope="module")
def inception(inception_file):
    return fid.load_inception(inception_file, "cpu")


@pytest.fixture(scope="module")
def drn_file(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "drn_random.pth"
    torch.save(drn_mod.DRNSeg().state_dict(), path)
    return str(path)


@pytest.fixture(autouse=True)
def _empty_torch_hub(tmp_path, monkeypatch):
    """No test may find (or depend on) weights in the real torch hub folder."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)


def _save_rgb(path, array):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(array.astype(np.uint8)).save(path)


def _random_rgb(rng, h, w):
    return rng.integers(0, 256, size=(h, w, 3))


def _parse(root, *extra):
    return options.parse("train", ["--dataroot", str(root), "--crop_size", str(SIZE), "--load_size", str(SIZE),
                                   "--gpu_ids", "-1", "--eval_batch_size", "4", *extra])


def _make_aligned(root, n, rng):
    for i in range(n):
        _save_rgb(os.path.join(root, "val", f"{i}.png"), _random_rgb(rng, SIZE, 2 * SIZE))


@pytest.fixture
def unaligned_root(tmp_path):
    rng = np.random.default_rng(1)
    root = tmp_path / "tiny"
    for i in range(4):
        _save_rgb(str(root / "testA" / f"a{i}.png"), _random_rgb(rng, SIZE, SIZE))
    for i in range(2):  # fewer B images: the index wraps around them
        _save_rgb(str(root / "testB" / f"b{i}.v2.png"), _random_rgb(rng, SIZE, SIZE) // 2)
    return root


def _fake_cityscapes(root, rng, n=3):
    """gtFine/ and leftImg8bit/ trees like the Cityscapes downloads, 64x32 px."""
    ids = np.array([7, 8, 26, 23, 0, 33])
    for phase in ("train", "val"):
        for i in range(n):
            ident = f"city_{i:06d}_000019"
            gt = os.path.join(root, "gtFine", phase, "city")
            _save_rgb(os.path.join(gt, f"{ident}_gtFine_color.png"), _random_rgb(rng, 32, 64))
            os.makedirs(gt, exist_ok=True)
            Image.fromarray(rng.choice(ids, size=(32, 64)).astype(np.uint8)).save(
                os.path.join(gt, f"{ident}_gtFine_labelIds.png"))
            _save_rgb(os.path.join(root, "leftImg8bit", phase, "city", f"{ident}_leftImg8bit.png"),
                      _random_rgb(rng, 32, 64))


@pytest.fixture
def cityscapes_root(tmp_path):
    origin = tmp_path / "origin"
    _fake_cityscapes(str(origin), np.random.default_rng(2))
    out = tmp_path / "cityscapes"
    status = run_main("datasets/prepare_cityscapes_dataset",
                      ["--gtFine_dir", str(origin / "gtFine"), "--leftImg8bit_dir", str(origin / "leftImg8bit"),
                       "--output_dir", str(out), "--size", str(SIZE)])
    assert status == 0
    return out, origin
