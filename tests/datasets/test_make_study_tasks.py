"""datasets/make_study_tasks.py: the compression study's denoising tasks, whole photographs held out."""
import importlib.util
import os

import numpy as np
from PIL import Image

from tests.conftest import REPO


def load_tasks_script():
    spec = importlib.util.spec_from_file_location("make_study_tasks", os.path.join(REPO, "datasets",
                                                                                  "make_study_tasks.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_split_holds_whole_photographs_out():
    tasks = load_tasks_script()
    split = tasks.split_photos()
    assert len(split["test"]) == 4 and len(split["val"]) == 2 and len(split["train"]) == 12
    assert not set(split["test"]) & set(split["train"]) and not set(split["val"]) & set(split["train"])
    assert not set(split["test"]) & set(split["val"])
    # the CycleGAN domains: the training photographs, none in both
    assert sorted(split["domain_A"] + split["domain_B"]) == sorted(split["train"])
    assert not set(split["domain_A"]) & set(split["domain_B"]) and len(split["domain_A"]) == 6
    assert split == tasks.split_photos()  # drawn by a fixed seed


def test_tiles_pairs_and_domains(tmp_path):
    tasks = load_tasks_script()
    photos = ("hubble_deep_field", "chelsea", "coins", "gravel", "rocket", "retina")
    record = tasks.build(str(tmp_path), photos=photos)
    split = record["split"]
    paired, unpaired = tmp_path / "paired", tmp_path / "unpaired"
    for phase in ("train", "val", "test"):
        files = sorted(os.listdir(paired / phase))
        assert len(files) == record["counts"][phase] > 0
        assert {tasks.photo_of(f) for f in files} == set(split[phase])
        with Image.open(paired / phase / files[0]) as image:
            assert image.mode == "L" and image.size == (2 * tasks.TILE, tasks.TILE)
    # domain A: noisy tiles of its photographs, domain B: clean tiles of the others; the held-out tiles as pairs
    assert {tasks.photo_of(f) for f in os.listdir(unpaired / "trainA")} == set(split["domain_A"])
    assert {tasks.photo_of(f) for f in os.listdir(unpaired / "trainB")} == set(split["domain_B"])
    name = sorted(os.listdir(paired / "test"))[0]
    pair = np.asarray(Image.open(paired / "test" / name))
    assert np.array_equal(np.asarray(Image.open(unpaired / "testA" / name)), pair[:, :tasks.TILE])
    assert np.array_equal(np.asarray(Image.open(unpaired / "testB" / name)), pair[:, tasks.TILE:])
    # sigma 25 noise, the same on every run; a second build changes nothing
    noise = pair[:, :tasks.TILE].astype(float) - pair[:, tasks.TILE:].astype(float)
    assert 15 < noise.std() < 30
    assert tasks.build(str(tmp_path), photos=photos)["changed"] == 0


def test_noise_is_a_function_of_the_tile_place():
    tasks = load_tasks_script()
    tile = np.full((32, 32), 100, np.uint8)
    noisy = tasks.noisy(tile, "camera", 1, 2)
    assert np.array_equal(noisy, tasks.noisy(tile, "camera", 1, 2))
    assert not np.array_equal(noisy, tasks.noisy(tile, "camera", 1, 3))
    assert abs(float(noisy.astype(float).std()) - tasks.SIGMA) < 3
