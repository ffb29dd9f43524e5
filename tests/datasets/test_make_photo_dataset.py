"""datasets/make_photo_dataset.py: the paired photo dataset is deterministic, paired and split by photograph."""
import importlib.util
import os

import numpy as np
from PIL import Image

from tests.conftest import REPO, hash_tree


def _photo_script():
    spec = importlib.util.spec_from_file_location("make_photo_dataset",
                                                  os.path.join(REPO, "datasets", "make_photo_dataset.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_photo_dataset_is_deterministic_paired_and_split_by_photograph(tmp_path, capsys):
    script = _photo_script()
    argv = ["--n_train", "9", "--n_test", "4", "--size", "32", "--short_side", "96"]
    assert script.main(argv + ["--root", str(tmp_path / "a")]) == 0
    assert script.main(argv + ["--root", str(tmp_path / "b")]) == 0
    assert hash_tree(tmp_path / "a") == hash_tree(tmp_path / "b")
    assert len(os.listdir(tmp_path / "a" / "train")) == 9 and len(os.listdir(tmp_path / "a" / "val")) == 2
    photos = {split: {name.split("_", 2)[2][:-4] for name in os.listdir(tmp_path / "a" / split)}
              for split in ("train", "val", "test")}
    assert photos["train"] == set(script.TRAIN_PHOTOS)
    assert photos["test"] == photos["val"] == set(script.HELD_OUT_PHOTOS)
    assert not photos["train"] & photos["test"]
    for name in os.listdir(tmp_path / "a" / "test"):
        pair = np.asarray(Image.open(tmp_path / "a" / "test" / name))
        assert pair.shape == (32, 64, 3)
        gray, colour = pair[:, :32], pair[:, 32:]
        luma = np.asarray(Image.fromarray(colour).convert("L"))
        assert (gray == luma[..., None]).all()  # A is the luma of B, in three equal channels
        assert colour.std(axis=2).mean() > 1  # B is in colour
    # asking for fewer pairs removes the extra files and leaves the rest untouched
    assert script.main(["--n_train", "5", "--n_test", "4", "--size", "32", "--short_side", "96",
                        "--root", str(tmp_path / "a")]) == 0
    assert "(4 files changed)" in capsys.readouterr().out
