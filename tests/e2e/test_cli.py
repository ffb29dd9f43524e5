"""Bad input on the command line: every case exits with status 2 and one ``error:`` line on stderr,
never a traceback (run as real subprocesses)."""
import shutil

import pytest

from tests.conftest import ALIGNED, UNALIGNED, assert_user_error, run_main, run_script, tiny_args


@pytest.fixture(scope="module")
def broken(toy_root, tmp_path_factory):
    """Copies of the toy data with problems, and a pix2pix checkpoint."""
    tmp = tmp_path_factory.mktemp("broken")
    empty_b = tmp / "empty_b"
    shutil.copytree(UNALIGNED, empty_b)
    for image in (empty_b / "trainB").iterdir():
        image.unlink()
    not_png = tmp / "not_png"
    shutil.copytree(UNALIGNED, not_png)
    (not_png / "trainA" / "x.png").write_text("this is not an image\n")
    assert run_main("train", tiny_args(tmp / "ckpt", "p2p", "pix2pix")) == 0
    return tmp


def base(tmp, name="cli", model="cyclegan", dataroot=None, **extra):
    return tiny_args(tmp / "ckpt", name, model, dataroot=dataroot, **extra)


CASES = {
    "missing dataroot folder": ("train", lambda t: base(t, dataroot=t / "no_such_folder"), "no_such_folder"),
    "no dataroot": ("train", lambda t: [a for a in base(t) if a not in ("--dataroot", UNALIGNED)], "--dataroot"),
    "empty trainB": ("train", lambda t: base(t, dataroot=t / "empty_b"), "trainB"),
    "text file named x.png": ("train", lambda t: base(t, dataroot=t / "not_png", max_dataset_size=100), "x.png"),
    "checkpoint of the other model": (
        "train", lambda t: base(t, continue_train=True, load_path=t / "ckpt" / "p2p" / "checkpoints" / "latest.pth"),
        "pix2pix"),
    "unknown gan_mode": ("train", lambda t: base(t, gan_mode="nonsense"), "gan_mode"),
    "continue_train without checkpoint": ("train", lambda t: base(t, name="fresh", continue_train=True), "checkpoint"),
    "missing gpu": ("train", lambda t: base(t, gpu_ids=7), "gpu"),
    "gpu_ids not a number": ("train", lambda t: base(t, gpu_ids="abc"), "gpu_ids"),
    "crop larger than load": ("train", lambda t: base(t, crop_size=300, load_size=286), "crop_size"),
    "batch_size 0": ("train", lambda t: base(t, batch_size=0), "batch_size"),
    "scratch without finetune": ("prune", lambda t: base(t, scratch=True), "--finetune"),
    "pix2pix with a resnet": ("train", lambda t: base(t, model="pix2pix", dataroot=ALIGNED, netG="resnet_9blocks"),
                              "netG"),
    "upconv_bound and upconv_relu": ("train", lambda t: base(t, upconv_bound=True, upconv_relu=True), "upconv"),
    "test.py missing load_path": ("test", lambda t: base(t, load_path=t / "missing.pth", results_dir=t / "res"),
                                  "missing.pth"),
    "test.py without any checkpoint": ("test", lambda t: base(t, name="fresh", results_dir=t / "res"), "checkpoint"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_line_and_exit_2(case, broken):
    script, argv, needle = CASES[case]
    proc = run_script(script, argv(broken))
    line = assert_user_error(proc)
    assert needle.lower() in line.lower(), line
    # nothing is written by a command that fails on its input
    assert not (broken / "ckpt" / "fresh").exists()
    assert not (broken / "res").exists()
    assert not (broken / "ckpt" / "cli" / "checkpoints").exists()
