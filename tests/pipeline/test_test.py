"""test.py (pipeline/test.py) takes the training size and the model from the checkpoint, names the
resolution of its MACs, warns about a mask search that has not settled, and translates every input
image once, under a name of its own."""
import json
import os

import numpy as np
import pytest

import pipeline.test
import torch
from PIL import Image


from models.layers import masks
from compress.pruning import prune_generator
from tests.conftest import run_main, tiny_args
from pipeline.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from util.flops import count_macs_params


def _without_sizes(argv):
    """``argv`` without its --crop_size / --load_size (tiny_args gives both)."""
    out = list(argv)
    for flag in ("--crop_size", "--load_size"):
        i = out.index(flag)
        del out[i:i + 2]
    return out


@pytest.fixture(scope="module")
def search(tmp_path_factory):
    """A tiny CycleGAN mask search trained at 32 px (the toy images are 64 px)."""
    root = tmp_path_factory.mktemp("search")
    assert run_main("train", tiny_args(root, "s", mask=True)) == 0
    return root / "s" / "checkpoints" / "latest.pth"


def _with_bound(source, target, bound):
    state = load_checkpoint(str(source))
    for sd in state["nets"].values():
        for key in sd:
            if key.endswith("bound"):
                sd[key] = torch.full_like(sd[key], bound)
    save_checkpoint(state, str(target))
    return target


def _test(tmp_path, ckpt, capsys, *extra):
    argv = _without_sizes(tiny_args(tmp_path, "t", mask=True)) + [
        "--load_path", str(ckpt), "--results_dir", str(tmp_path / "res"), "--ntest", "1", *extra]
    assert run_main("test", argv) == 0
    captured = capsys.readouterr()
    page = next((tmp_path / "res" / "t").glob("test_*"))
    return json.loads((page / "metrics.json").read_text()), captured.out + captured.err, page


def test_sizes_come_from_the_checkpoint_and_the_macs_name_them(search, tmp_path, capsys):
    ckpt = _with_bound(search, tmp_path / "settled.pth", 0.0)
    report, out, page = _test(tmp_path, ckpt, capsys)
    assert report["macs_image_size"] == [32, 32]
    net = pipeline.test.read_checkpoint(str(ckpt)).generator("AtoB")
    slim = prune_generator(net)[0]  # a settled search is counted as the generator pruning makes of it
    macs = {name: count_macs_params(g, (1, 3, 32, 32))[0] for name, g in (("slim", slim), ("full", net))}
    assert report["macs"]["AtoB"] == macs["slim"] < macs["full"]
    assert "AtoB generator | Params:" in out and "at 32x32" in out
    with Image.open(next((page / "images" / "fake_B").glob("*.png"))) as image:
        assert image.size == (32, 32)  # the 64 px toy images are tested at the training size
    assert "have not settled" not in out  # bound 0: no warning

    # a given --crop_size wins over the stored one
    report, out, _ = _test(tmp_path / "given", ckpt, capsys, "--crop_size", "48", "--load_size", "48")
    assert report["macs_image_size"] == [48, 48] and "at 48x48" in out


def test_fit_sizes(tmp_path, caplog):
    import logging

    import options
    from util.frozen import replace

    def fitted(stored, *argv):
        opt = options.parse("test", ["--dataroot", str(tmp_path), "--model", "cyclegan", *argv])
        record = Checkpoint(path="x.pth", kind="training", model="cyclegan", stage="train", version=2, epoch=1,
                            options=stored, nets={}, configs={}, metric=None, state={})
        fitted = replace(opt, **pipeline.test.fit_sizes(opt, record))
        assert vars(opt) == vars(options.parse("test", ["--dataroot", str(tmp_path), "--model", "cyclegan", *argv]))
        return fitted.load_size, fitted.crop_size

    assert fitted({}) == (286, 256)  # no stored options (the original code's files): the defaults
    assert fitted({"load_size": 36, "crop_size": 32}) == (36, 32)
    assert fitted({"load_size": 36, "crop_size": 32}, "--crop_size", "64") == (64, 64)
    assert fitted({"load_size": 36, "crop_size": 32}, "--load_size", "300") == (300, 32)
    assert fitted({"load_size": None, "crop_size": True}) == (286, 256)
    # the sizes taken are named in one line (Checkpoint.log_taken, which prune.py's ndf uses too)
    caplog.clear()
    with caplog.at_level(logging.INFO):
        fitted({"load_size": 36, "crop_size": 32}, "--crop_size", "64")
    assert [r.getMessage() for r in caplog.records if "taken from" in r.getMessage()] == [
        "--load_size 36 taken from the options x.pth was trained with"]


def test_unsettled_masks_are_tested_with_one_warning(search, tmp_path, capsys):
    ckpt = _with_bound(search, tmp_path / "mid.pth", 0.5)
    report, out, _ = _test(tmp_path, ckpt, capsys)
    warnings = [line for line in out.splitlines() if "have not settled" in line]
    assert len(warnings) == 1 and "bound 0.5 > 0" in warnings[0] and "prune" in warnings[0]
    net = pipeline.test.read_checkpoint(str(ckpt)).generator("AtoB")
    assert {float(m.bound) for m in masks(net).values()} == {0.5}
    assert report["macs"]["AtoB"] == count_macs_params(net, (1, 3, 32, 32))[0]  # the full architecture


def test_metrics_json_is_strict_json():
    report = {"fid": {"AtoB": float("nan"), "BtoA": 3.5}, "macs": {"AtoB": 10}, "l1": [float("inf"), 0.25]}
    assert json.loads(json.dumps(pipeline.test.finite_or_null(report), allow_nan=False)) == {
        "fid": {"AtoB": None, "BtoA": 3.5}, "macs": {"AtoB": 10}, "l1": [None, 0.25]}


def test_a_results_folder_that_cannot_be_made_is_one_line(search, tmp_path, capsys, monkeypatch):
    def refuse(folder, title):
        raise FileNotFoundError(2, "No such file or directory", folder)

    # e.g. --results_dir under /proc, which passes os.access for root
    monkeypatch.setattr(pipeline.test, "HTML", refuse)
    argv = _without_sizes(tiny_args(tmp_path, "t", mask=True)) + ["--load_path", str(search), "--results_dir",
                                                                   str(tmp_path / "res")]
    assert run_main("test", argv) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and "cannot write the results to" in err[0] and "--results_dir" in err[0]


def test_a_rerun_replaces_the_results_and_a_failed_one_keeps_them(search, tmp_path, capsys, monkeypatch):
    import os
    import re

    from tests.conftest import hash_tree

    argv = _without_sizes(tiny_args(tmp_path, "t", mask=True)) + ["--load_path", str(search), "--results_dir",
                                                                   str(tmp_path / "res")]
    assert run_main("test", argv + ["--ntest", "2"]) == 0
    page = next((tmp_path / "res" / "t").glob("test_*"))
    first = hash_tree(page)
    capsys.readouterr()

    assert run_main("test", argv + ["--ntest", "1"]) == 0  # fewer images: nothing of the first run is left
    captured = capsys.readouterr()
    assert "the earlier results in" in captured.out + captured.err
    second = hash_tree(page)
    images = {name for name in second if name.startswith("images")}
    assert len(images) == len({name for name in first if name.startswith("images")}) // 2 == 4
    linked = set(re.findall(r'src="(images/[^"]+)"', (page / "index.html").read_text()))
    assert linked == images and set(second) == images | {"index.html", "metrics.json"}
    assert os.listdir(page.parent) == [page.name]  # no temporary folder left

    # a run interrupted half-way leaves the previous results as they were
    module = pipeline.test
    real_save, calls = module.save_images, []

    def failing(error):
        def save(*args, **kwargs):
            calls.append(1)
            if len(calls) > 1:
                raise error
            return real_save(*args, **kwargs)
        return save

    monkeypatch.setattr(module, "save_images", failing(KeyboardInterrupt))  # Ctrl-C
    assert run_main("test", argv + ["--ntest", "2"]) == 130
    assert len(calls) == 2 and hash_tree(page) == second and os.listdir(page.parent) == [page.name]
    calls.clear()
    monkeypatch.setattr(module, "save_images", failing(RuntimeError("disk on fire")))  # a crash
    with pytest.raises(RuntimeError):
        run_main("test", argv + ["--ntest", "2"])
    assert len(calls) == 2 and hash_tree(page) == second and os.listdir(page.parent) == [page.name]


def test_another_split_keeps_its_own_results_and_metrics_json_names_it(search, tmp_path, capsys):
    report, _, page = _test(tmp_path, search, capsys)
    assert page.name == "test_1" and report["phase"] == "test"
    argv = _without_sizes(tiny_args(tmp_path, "t", mask=True)) + [
        "--load_path", str(search), "--results_dir", str(tmp_path / "res"), "--ntest", "1", "--phase", "train"]
    assert run_main("test", argv) == 0
    assert sorted(p.name for p in (tmp_path / "res" / "t").iterdir()) == ["test_1", "train_1"]
    assert json.loads((tmp_path / "res" / "t" / "train_1" / "metrics.json").read_text())["phase"] == "train"


@pytest.mark.parametrize("netG, warned", [("resnet_6blocks", True), ("resnet_9blocks", False)])
def test_a_netG_that_contradicts_the_checkpoint_is_said_to_have_no_effect(search, tmp_path, capsys, netG, warned):
    _, out, _ = _test(tmp_path, search, capsys, "--netG", netG)
    assert ("--netG resnet_6blocks has no effect in test.py" in out and "n_blocks 9" in out) == warned, out


# ---------------------------------------------------------------- the model of the checkpoint

def test_test_py_names_the_model_of_the_checkpoint(toy_root, tmp_path, capsys):
    assert run_main("train", tiny_args(tmp_path, "p2p", model="pix2pix")) == 0
    argv = tiny_args(tmp_path, "p2p")  # --model cyclegan, as a user who forgot --model pix2pix
    argv += ["--load_path", str(tmp_path / "p2p" / "checkpoints" / "latest.pth")]
    assert run_main("test", argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "--model pix2pix" in err and len(err.splitlines()) == 1


# ---------------------------------------------------------------- every input image translated once

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


def test_the_parsed_options_are_left_as_they_are(search, tmp_path):
    """The sizes come from the checkpoint into a copy of the options (pipeline.test.resolve); the
    options test.py parsed are not written to."""
    import options

    argv = _without_sizes(tiny_args(tmp_path, "t", mask=True)) + [
        "--load_path", str(search), "--results_dir", str(tmp_path / "res"), "--ntest", "1"]
    opt = options.parse("test", argv)
    before = dict(vars(opt))
    pipeline.test.run(opt)
    assert vars(opt) == before and (opt.crop_size, opt.phase) == (256, "train")
    resolved, _ = pipeline.test.resolve(opt, pipeline.test.read_checkpoint(str(search)))
    assert (resolved.crop_size, resolved.phase) == (32, "test")
    assert vars(opt) == before
