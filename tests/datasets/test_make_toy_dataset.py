"""datasets/make_toy_dataset.py: the toy datasets' counts, sizes and contents, reproducible file by file."""
import importlib.util
import os
import subprocess
import sys

import numpy as np
from PIL import Image

import data
from tests.conftest import REPO, hash_tree
from tests.data.conftest import make_opt


def load_toy_script():
    spec = importlib.util.spec_from_file_location("make_toy_dataset", os.path.join(REPO, "datasets", "make_toy_dataset.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_toy_dataset_counts_sizes_and_determinism(tmp_path, capsys):
    toy = load_toy_script()
    root = tmp_path / "toy"
    assert toy.main(["--root", str(root)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and "unaligned" in lines[0] and "aligned" in lines[1]
    counts = {"unaligned/trainA": 64, "unaligned/trainB": 64, "unaligned/testA": 16, "unaligned/testB": 16,
              "aligned/train": 64, "aligned/val": 16, "aligned/test": 16}
    for split, n in counts.items():
        paths = data.find_images(str(root / split))
        assert len(paths) == n and all(p.endswith(".png") for p in paths)
        size = Image.open(paths[0]).size
        assert size == ((128, 64) if split.startswith("aligned") else (64, 64))
    first = hash_tree(root)
    assert toy.main(["--root", str(root)]) == 0
    assert "(0 files changed)" in capsys.readouterr().out
    assert hash_tree(root) == first
    # the two unaligned domains differ visibly: A is light, B is dark
    mean_a = np.mean([np.asarray(Image.open(p)).mean() for p in data.find_images(str(root / "unaligned/trainA"))])
    mean_b = np.mean([np.asarray(Image.open(p)).mean() for p in data.find_images(str(root / "unaligned/trainB"))])
    assert mean_a > 150 > 80 > mean_b
    # aligned: left half is a black-on-white drawing, right half carries colour
    pair = np.asarray(Image.open(data.find_images(str(root / "aligned/train"))[0])).astype(int)
    left, right = pair[:, :64], pair[:, 64:]
    assert (left.max(axis=2) == left.min(axis=2)).all() and (left == 0).any()
    assert (right.max(axis=2) - right.min(axis=2)).max() > 50
    opt = make_opt(root / "aligned", dataset_mode="aligned", load_size=64, crop_size=64)
    assert data.create_dataset(opt)[0]["A"].shape == (3, 64, 64)


def test_toy_dataset_cli_is_independent_of_counts(tmp_path):
    root = tmp_path / "toy"
    subprocess.run([sys.executable, os.path.join(REPO, "datasets", "make_toy_dataset.py"), "--root", str(root),
                    "--n_train", "3", "--n_test", "1"], check=True, capture_output=True)
    assert len(os.listdir(root / "unaligned" / "trainA")) == 3
    assert len(os.listdir(root / "aligned" / "val")) == 1
    small = hash_tree(root)
    load_toy_script().main(["--root", str(tmp_path / "big"), "--n_train", "5", "--n_test", "2"])
    big = hash_tree(tmp_path / "big")
    assert all(big[k] == v for k, v in small.items())  # image i does not depend on the counts
