"""test.py results: every input image translated once, under a name of its own."""
import os

import numpy as np
import pytest
from PIL import Image

from tests.conftest import run_main, tiny_args


def _image(path, seed, size=40):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)).save(path)


@pytest.fixture(scope="module")
def cyclegan_ckpt(toy_root, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("results")
    assert run_main("train", tiny_args(tmp / "ckpt", "toy")) == 0
    return tmp / "ckpt" / "toy" / "checkpoints" / "latest.pth"


def _fakes(folder):
    return sorted(os.path.relpath(os.path.join(base, f), folder) for base, _, files in os.walk(folder) for f in files)


def test_same_file_names_in_two_subfolders_give_two_results(cyclegan_ckpt, tmp_path):
    """``testA/cam1/frame.png`` and ``testA/cam2/frame.png`` each get their own result file."""
    root = tmp_path / "data"
    _image(root / "testA" / "cam1" / "frame.png", 1)
    _image(root / "testA" / "cam2" / "frame.png", 2)
    _image(root / "testB" / "b.png", 3)
    argv = tiny_args(tmp_path / "ckpt", "names", dataroot=root) + [
        "--load_path", str(cyclegan_ckpt), "--results_dir", str(tmp_path / "res")]
    assert run_main("test", argv) == 0
    images = tmp_path / "res" / "names" / "test_1" / "images"
    assert _fakes(images / "fake_B") == ["cam1/frame_fake_B.png", "cam2/frame_fake_B.png"]
    assert _fakes(images / "real_A") == ["cam1/frame_real_A.png", "cam2/frame_real_A.png"]
    first, second = (np.asarray(Image.open(images / "real_A" / c / "frame_real_A.png")) for c in ("cam1", "cam2"))
    assert not np.array_equal(first, second)


def test_cyclegan_domains_of_different_sizes_are_each_translated_once(cyclegan_ckpt, tmp_path):
    """testA with 2 images and testB with 5: 2 fake_B named after the A images, 5 fake_A after the B ones."""
    root = tmp_path / "data"
    for i in range(2):
        _image(root / "testA" / f"a{i}.png", i)
    for i in range(5):
        _image(root / "testB" / f"b{i}.png", 10 + i)
    argv = tiny_args(tmp_path / "ckpt", "sizes", dataroot=root, max_dataset_size=100) + [
        "--load_path", str(cyclegan_ckpt), "--results_dir", str(tmp_path / "res")]
    assert run_main("test", argv) == 0
    page = tmp_path / "res" / "sizes" / "test_1"
    images = page / "images"
    assert _fakes(images / "fake_B") == [f"a{i}_fake_B.png" for i in range(2)]
    assert _fakes(images / "fake_A") == [f"b{i}_fake_A.png" for i in range(5)]
    assert _fakes(images / "real_B") == [f"b{i}_real_B.png" for i in range(5)]
    html = (page / "index.html").read_text()
    assert html.count("_fake_B.png") == 2 * 2 and html.count("_fake_A.png") == 2 * 5  # src + link per image
