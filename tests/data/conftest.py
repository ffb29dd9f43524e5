"""Fixtures and helpers of the data/ tests: small option namespaces and folders of noise images."""
import math
import os
import types

import numpy as np
import pytest
from PIL import Image


def make_opt(root, **kw):
    """The data options of options.parse, with small sizes."""
    opt = dict(dataroot=str(root), phase="train", dataset_mode="unaligned", direction="AtoB",
               serial_batches=False, num_threads=0, batch_size=2, load_size=36, crop_size=32,
               max_dataset_size=math.inf, preprocess="resize_and_crop", no_flip=False,
               input_nc=3, output_nc=3, seed=0)
    opt.update(kw)
    return types.SimpleNamespace(**opt)


def noise(w, h, seed):
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8))


def save_noise(folder, n, w, h, seed0=0, ext="png"):
    os.makedirs(folder, exist_ok=True)
    paths = []
    for i in range(n):
        path = os.path.join(folder, f"img_{i:02d}.{ext}")
        noise(w, h, seed0 + i).save(path)
        paths.append(path)
    return paths


@pytest.fixture
def unaligned_root(tmp_path):
    """trainA: 5 images 51x62, trainB: 3 images 48x48, testA/testB: 2 each."""
    save_noise(tmp_path / "trainA", 5, 51, 62, seed0=0)
    save_noise(tmp_path / "trainB", 3, 48, 48, seed0=100)
    save_noise(tmp_path / "testA", 2, 40, 40, seed0=200)
    save_noise(tmp_path / "testB", 2, 40, 40, seed0=300)
    return tmp_path


@pytest.fixture
def aligned_root(tmp_path):
    """train/: 4 pairs 100x50 whose two halves are the same noise image."""
    os.makedirs(tmp_path / "train")
    for i in range(4):
        half = noise(50, 50, i)
        pair = Image.new("RGB", (100, 50))
        pair.paste(half, (0, 0))
        pair.paste(half, (50, 0))
        pair.save(tmp_path / "train" / f"p{i}.png")
    return tmp_path
