"""Tests for data/ (datasets, transforms, loaders) and the dataset scripts under datasets/."""
import importlib.util
import math
import os
import subprocess
import sys
import time
import types

import numpy as np
import pytest
import torch
from PIL import Image

import data
import options
from data.transforms import Preprocess, to_tensor
from tests.conftest import hash_tree
from util.errors import UserError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ---------------------------------------------------------------- fixtures and helpers

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


def load_toy_script():
    spec = importlib.util.spec_from_file_location("make_toy_dataset", os.path.join(REPO, "datasets", "make_toy_dataset.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def flipped(t):
    return torch.flip(t, dims=[2])


# ---------------------------------------------------------------- file lists

def test_find_images_recursive_sorted_any_case(tmp_path):
    (tmp_path / "sub" / "deep").mkdir(parents=True)
    for name in ("b.PNG", "a.jpg", "sub/c.JPEG", "sub/deep/d.tiff", "e.Bmp", "f.ppm", "g.TIF"):
        noise(8, 8, 0).save(tmp_path / name, format="PNG" if name.lower().endswith(("png", "jpg", "jpeg")) else None)
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "._hidden.png").write_bytes(b"resource fork")
    found = data.find_images(str(tmp_path))
    rel = [os.path.relpath(p, tmp_path) for p in found]
    assert rel == sorted(rel)
    assert set(rel) == {"b.PNG", "a.jpg", "sub/c.JPEG", "sub/deep/d.tiff", "e.Bmp", "f.ppm", "g.TIF"}
    assert data.find_images(str(tmp_path), max_size=2) == found[:2]


def test_find_images_errors_name_the_path(tmp_path):
    with pytest.raises(UserError, match=str(tmp_path / "nope")):
        data.find_images(str(tmp_path / "nope"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no images.*" + str(tmp_path / "empty")):
        data.find_images(str(tmp_path / "empty"))


# ---------------------------------------------------------------- preprocessing

TRAIN_SHAPES = {  # trainA images are 51 wide, 62 high; load 36, crop 32
    "resize_and_crop": (32, 32),
    "crop": (32, 32),
    # height int(max(36 * 62 / 51, 32)) = 43, rounded to a multiple of 4 the generator accepts
    "scale_width": (44, 36),
    "scale_width_and_crop": (32, 32),
    "none": (64, 52),  # 62/4 = 15.5 -> 16 (half to even), 51/4 = 12.75 -> 13
}
EVAL_SHAPES = {
    "resize_and_crop": (32, 32),
    "crop": (32, 32),
    "scale_width": (40, 32),  # height int(max(32 * 62 / 51, 32)) = 38 -> 40 (multiple of 4)
    "scale_width_and_crop": (40, 32),
    "none": (64, 52),
}


@pytest.mark.parametrize("mode", sorted(TRAIN_SHAPES))
def test_preprocess_output_sizes(unaligned_root, mode):
    opt = make_opt(unaligned_root, preprocess=mode)
    item = data.create_dataset(opt)[0]
    assert tuple(item["A"].shape) == (3, *TRAIN_SHAPES[mode])
    assert item["A"].dtype == torch.float32
    assert -1.0 <= item["A"].min() and item["A"].max() <= 1.0
    evaluation = data.create_dataset(opt, phase="train", train=False)[0]
    assert tuple(evaluation["A"].shape) == (3, *EVAL_SHAPES[mode])


def test_resize_is_pil_bicubic_and_normalised(unaligned_root):
    """Evaluation with resize_and_crop is a plain bicubic resize to crop_size², scaled to [-1, 1]."""
    ds = data.create_dataset(make_opt(unaligned_root), train=False)
    item = ds[1]
    img = Image.open(item["A_paths"]).convert("RGB").resize((32, 32), Image.Resampling.BICUBIC)
    expected = torch.from_numpy(np.array(img)).permute(2, 0, 1).float() / 255 * 2 - 1
    assert torch.allclose(item["A"], expected, atol=1e-6)
    assert item["A"].min() < -0.5 and item["A"].max() > 0.5


def test_crop_is_a_window_of_the_resized_image(unaligned_root):
    opt = make_opt(unaligned_root, no_flip=True)
    item = data.create_dataset(opt)[0]
    full = to_tensor(Image.open(item["A_paths"]).convert("RGB").resize((36, 36), Image.Resampling.BICUBIC))
    windows = [full[:, y:y + 32, x:x + 32] for y in range(5) for x in range(5)]
    assert sum(torch.equal(item["A"], w) for w in windows) >= 1


def test_no_flip_and_flip(unaligned_root):
    """preprocess none keeps the whole image, so a flip is exactly a mirrored tensor."""
    path = sorted(os.listdir(unaligned_root / "trainA"))[0]
    plain = to_tensor(Image.open(unaligned_root / "trainA" / path).convert("RGB").resize((52, 64), Image.Resampling.BICUBIC))
    still = data.create_dataset(make_opt(unaligned_root, preprocess="none", no_flip=True))
    flips = data.create_dataset(make_opt(unaligned_root, preprocess="none"))
    seen = []
    for epoch in range(1, 17):
        still.set_epoch(epoch)
        flips.set_epoch(epoch)
        assert torch.equal(still[0]["A"], plain)
        a = flips[0]["A"]
        assert torch.equal(a, plain) or torch.equal(a, flipped(plain))
        seen.append(torch.equal(a, flipped(plain)))
    assert any(seen) and not all(seen)


def test_preprocess_rejects_crop_larger_than_load():
    with pytest.raises(UserError, match="--crop_size 40 is larger than --load_size 36"):
        Preprocess("resize_and_crop", 36, 40)
    with pytest.raises(UserError, match="--preprocess 'zoom'"):
        Preprocess("zoom", 36, 32)


# ---------------------------------------------------------------- dataset modes

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


def test_grayscale_is_luma_of_the_rgb(unaligned_root):
    opt = dict(preprocess="none", no_flip=True)
    rgb = data.create_dataset(make_opt(unaligned_root, **opt))[0]
    gray = data.create_dataset(make_opt(unaligned_root, input_nc=1, **opt))[0]
    expected = to_tensor(Image.open(gray["A_paths"]).convert("L").resize((52, 64), Image.Resampling.BICUBIC))
    assert torch.equal(gray["A"], expected)
    assert torch.equal(rgb["B"], gray["B"])  # the B side is untouched


def test_unaligned_pairing(unaligned_root):
    serial = data.create_dataset(make_opt(unaligned_root, serial_batches=True))
    assert len(serial) == 5  # max(5, 3)
    for i in range(len(serial)):
        item = serial[i]
        assert item["A_paths"] == serial.A_paths[i % 5]
        assert item["B_paths"] == serial.B_paths[i % 3]
    shuffled = data.create_dataset(make_opt(unaligned_root))
    partners = []
    for epoch in range(1, 9):
        shuffled.set_epoch(epoch)
        partners.append(tuple(shuffled[i]["B_paths"] for i in range(5)))
        assert [shuffled[i]["A_paths"] for i in range(5)] == shuffled.A_paths
    assert len(set(partners)) > 1  # random partners change with the epoch
    with pytest.raises(IndexError):
        shuffled[5]


def test_serial_batches_loader_order(unaligned_root):
    opt = make_opt(unaligned_root, serial_batches=True)
    ds = data.create_dataset(opt)
    paths = [p for batch in data.create_dataloader(opt, ds) for p in batch["A_paths"]]
    assert paths == ds.A_paths
    opt.serial_batches = False
    orders = {tuple(p for b in data.create_dataloader(opt, ds, epoch=e) for p in b["A_paths"]) for e in range(1, 6)}
    assert all(sorted(o) == sorted(ds.A_paths) for o in orders)
    assert len(orders) > 1


def test_max_dataset_size(unaligned_root, aligned_root):
    ds = data.create_dataset(make_opt(unaligned_root, max_dataset_size=2))
    assert len(ds) == 2 and len(ds.A_paths) == 2 and len(ds.B_paths) == 2
    assert ds.A_paths == data.find_images(str(unaligned_root / "trainA"))[:2]
    assert len(data.create_dataset(make_opt(aligned_root, dataset_mode="aligned", max_dataset_size=3))) == 3


def test_single_dataset_folders(unaligned_root, tmp_path_factory):
    flat = tmp_path_factory.mktemp("flat")
    save_noise(flat, 3, 40, 40)
    ds = data.create_dataset(make_opt(flat, dataset_mode="single"), train=False)
    assert len(ds) == 3 and set(ds[0]) == {"A", "A_paths"} and ds[0]["A"].shape == (3, 32, 32)
    ds = data.create_dataset(make_opt(unaligned_root, dataset_mode="single"), phase="test", train=False)
    assert ds.A_paths == data.find_images(str(unaligned_root / "testA"))
    # BtoA reads the B side: the generator's input (G_B maps B images)
    ds = data.create_dataset(make_opt(unaligned_root, dataset_mode="single", direction="BtoA"), phase="test",
                             train=False)
    assert ds.A_paths == data.find_images(str(unaligned_root / "testB"))
    split = tmp_path_factory.mktemp("split")
    save_noise(split / "test", 2, 40, 40)
    ds = data.create_dataset(make_opt(split, dataset_mode="single", phase="test"), train=False)
    assert ds.A_paths == data.find_images(str(split / "test"))


def test_phase_and_mode_overrides(unaligned_root):
    opt = make_opt(unaligned_root)
    ds = data.create_dataset(opt, phase="test", train=False)
    assert len(ds) == 2 and "testA" in ds[0]["A_paths"] and "testB" in ds[0]["B_paths"]
    assert opt.phase == "train"  # the options are not modified


# ---------------------------------------------------------------- determinism and loaders

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


def test_loader_workers_match_single_process(unaligned_root):
    opt = make_opt(unaligned_root, batch_size=2)
    ds = data.create_dataset(opt)

    def batches(workers, epoch):
        return list(data.create_dataloader(opt, ds, epoch=epoch, num_workers=workers))

    serial, parallel = batches(0, 2), batches(2, 2)
    assert [len(b["A_paths"]) for b in serial] == [2, 2, 1]  # last partial batch kept
    assert len(serial) == len(parallel)
    for x, y in zip(serial, parallel):
        assert x["A_paths"] == y["A_paths"] and x["B_paths"] == y["B_paths"]
        assert torch.equal(x["A"], y["A"]) and torch.equal(x["B"], y["B"])
    other = batches(0, 3)
    assert any(not torch.equal(x["A"], y["A"]) for x, y in zip(serial, other))
    start = time.perf_counter()
    for _ in data.create_dataloader(opt, ds, num_workers=2):
        break  # leaving early stops the workers at once
    # a hang guard, not a timing: without the early stop the loader would wait on its workers forever
    assert time.perf_counter() - start < 120


def test_loader_set_epoch_replays(unaligned_root):
    opt = make_opt(unaligned_root)
    ds = data.create_dataset(opt)
    loader = data.create_dataloader(opt, ds, epoch=5)
    assert isinstance(loader, torch.utils.data.DataLoader)
    first = list(loader)
    loader.set_epoch(6)
    list(loader)
    loader.set_epoch(5)
    again = list(loader)
    fresh = list(data.create_dataloader(opt, data.create_dataset(opt), epoch=5))
    for x, y, z in zip(first, again, fresh):
        assert torch.equal(x["A"], y["A"]) and torch.equal(x["A"], z["A"]) and x["B_paths"] == z["B_paths"]


def test_loader_defaults_from_options(unaligned_root):
    opt = options.parse("train", ["--dataroot", str(unaligned_root), "--load_size", "36", "--crop_size", "32",
                                  "--num_threads", "0", "--batch_size", "3", "--serial_batches"])
    ds = data.create_dataset(opt)
    loader = data.create_dataloader(opt, ds)
    assert loader.batch_size == 3 and loader.num_workers == 0 and not loader.drop_last
    batch = next(iter(loader))
    assert batch["A"].shape == (3, 3, 32, 32) and batch["A_paths"] == ds.A_paths[:3]
    assert next(iter(data.create_dataloader(opt, ds, batch_size=1, shuffle=True)))["A"].shape[0] == 1


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


def test_corrupt_file_in_worker_surfaces_as_one_line_user_error(unaligned_root):
    opt = make_opt(unaligned_root, serial_batches=True)
    ds = data.create_dataset(opt)
    bad = ds.A_paths[3]
    with open(bad, "wb") as f:  # broken after the construction-time check
        f.write(b"\x89PNG\r\n\x1a\ngarbage")
    for workers in (0, 2):
        with pytest.raises(UserError) as err:
            list(data.create_dataloader(opt, ds, num_workers=workers))
        assert bad in str(err.value) and "\n" not in str(err.value)


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


def test_unknown_dataset_mode(unaligned_root):
    with pytest.raises(UserError, match="--dataset_mode 'paired'"):
        data.create_dataset(make_opt(unaligned_root), dataset_mode="paired")


# ---------------------------------------------------------------- dataset scripts

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


@pytest.mark.parametrize("script", ["download_cyclegan_dataset.sh", "download_pix2pix_dataset.sh"])
def test_download_scripts_reject_unknown_names(script):
    path = os.path.join(REPO, "datasets", script)
    for args in ([], ["not_a_dataset"], ["facades maps"]):
        result = subprocess.run(["bash", path, *args], capture_output=True, text=True)
        assert result.returncode == 2
        assert result.stderr.startswith("usage:") and "facades" in result.stderr


def test_uncropped_sizes_follow_the_generator_multiple(tmp_path):
    """Without a crop, image sides are rounded to the multiple the generator needs (4 for a ResNet,
    2^levels for a U-Net), so portrait or odd-sized images never break a forward pass."""
    from data.transforms import Preprocess

    assert Preprocess("scale_width", 36, 32, train=True).output_size((51, 62)) == (36, 44)
    assert Preprocess("none", 36, 32, train=True, multiple=32).output_size((51, 62)) == (64, 64)
    assert Preprocess("scale_width", 40, 32, train=False, multiple=32).output_size((30, 70)) == (32, 64)


def test_images_of_different_sizes_in_one_batch_are_a_user_error(tmp_path):
    from data import _collate

    items = [{"A": torch.zeros(3, 8, 8), "B": torch.zeros(3, 8, 8)},
             {"A": torch.zeros(3, 8, 8), "B": torch.zeros(3, 12, 8)}]
    with pytest.raises(UserError, match="--batch_size 1"):
        _collate(items)
    assert _collate(items[:1])["B"].shape == (1, 3, 8, 8)


# ---------------------------------------------------------------- every image read right

def test_16_bit_gray_png_reaches_the_network_as_its_8_bit_copy(tmp_path):
    """A 16-bit grayscale PNG (values 0..65535) is scaled to 8 bits, not clipped to white."""
    gray8 = np.random.default_rng(0).integers(0, 256, (40, 40), dtype=np.uint8)
    for root, img in ((tmp_path / "d16", Image.fromarray(gray8.astype(np.uint16) * 257)),
                      (tmp_path / "d8", Image.fromarray(gray8))):
        for split in ("trainA", "trainB"):
            os.makedirs(root / split)
            img.save(root / split / "x.png")
    assert Image.open(tmp_path / "d16" / "trainA" / "x.png").mode.startswith("I")
    for nc in (1, 3):
        opt = dict(input_nc=nc, output_nc=nc, no_flip=True, serial_batches=True)
        wide = data.create_dataset(make_opt(tmp_path / "d16", **opt))[0]["A"]
        narrow = data.create_dataset(make_opt(tmp_path / "d8", **opt))[0]["A"]
        assert wide.shape == (nc, 32, 32) and torch.equal(wide, narrow)


def test_every_pillow_mode_maps_to_8_bit_l_or_rgb_with_its_full_range():
    from data.image_folder import to_8bit

    # (mode, value of a black pixel, value of a white one)
    cases = [("1", 0, 1), ("L", 0, 255), ("LA", (0, 255), (255, 255)), ("La", (0, 255), (255, 255)),
             ("P", 0, 1), ("PA", (0, 255), (1, 255)), ("RGB", (0, 0, 0), (255, 255, 255)),
             ("RGBA", (0, 0, 0, 255), (255, 255, 255, 255)), ("RGBX", (0, 0, 0, 0), (255, 255, 255, 0)),
             ("RGBa", (0, 0, 0, 255), (255, 255, 255, 255)), ("CMYK", (0, 0, 0, 255), (0, 0, 0, 0)),
             ("YCbCr", (0, 128, 128), (255, 128, 128)), ("HSV", (0, 0, 0), (0, 0, 255)),
             ("LAB", (0, 128, 128), (255, 128, 128)), ("I", 0, 65535), ("F", 0.0, 1.0),
             ("I;16", 0, 65535), ("I;16B", 0, 65535), ("I;16L", 0, 65535)]
    for mode, black, white in cases:
        img = Image.new(mode, (2, 1), black)
        if mode.startswith("P"):
            img.putpalette([0, 0, 0, 255, 255, 255])
        img.putpixel((1, 0), white)
        out = to_8bit(img)
        assert out.mode in ("L", "RGB"), mode
        values = np.asarray(out.convert("L")).astype(int)
        assert values[0, 0] <= 1 and values[0, 1] >= 254, (mode, values)


def test_result_names_are_unique_paths_relative_to_the_folder(tmp_path):
    from data.image_folder import result_names

    for rel in ("cam1/frame.png", "cam2/frame.png", "top.png", "x.png", "x.jpg", "img 01.tar.jpg"):
        os.makedirs(os.path.dirname(tmp_path / rel), exist_ok=True)
        noise(8, 8, 0).save(tmp_path / rel, format="PNG")
    names = result_names(data.find_images(str(tmp_path)), str(tmp_path))
    assert sorted(names.values()) == ["cam1/frame", "cam2/frame", "img 01", "top", "x.jpg", "x.png"]


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


def test_folder_walk_follows_no_loop_and_no_link_out_of_the_folder(tmp_path, caplog):
    """4 + 4 images and a ``trainA/loop -> ..`` link: trainA still lists its 4 images, none of trainB."""
    save_noise(tmp_path / "trainA", 4, 8, 8)
    save_noise(tmp_path / "trainB", 4, 8, 8, seed0=10)
    save_noise(tmp_path / "outside", 1, 8, 8, seed0=20)
    os.symlink("..", tmp_path / "trainA" / "loop")
    os.symlink(tmp_path / "outside" / "img_00.png", tmp_path / "trainA" / "external.png")
    os.symlink("img_00.png", tmp_path / "trainA" / "alias.png")  # a second name of a listed image
    with caplog.at_level("WARNING"):
        found = data.find_images(str(tmp_path / "trainA"))
    assert found == [str(tmp_path / "trainA" / f"img_{i:02d}.png") for i in range(4)]
    assert "loop" in caplog.text or "external" in caplog.text
