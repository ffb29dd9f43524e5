"""Bad input stops a command before it writes anything, with one line; numerical faults stop training
without touching the saved checkpoints; test.py fits the checkpoint it tests."""
import json
import os
import pickle
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

import options
from tests.conftest import ALIGNED, UNALIGNED, assert_user_error, hash_tree, run_main, run_script, tiny_args
from pipeline.checkpoint import load_checkpoint, save_checkpoint
from util.errors import UserError


def _one_line(capsys):
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert err.startswith("error:") and len(err.splitlines()) == 1, err
    return err


def _image(path, size, seed=0, mode="RGB"):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    channels = 3 if mode == "RGB" else 1
    values = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], channels), dtype=np.uint8)
    Image.fromarray(values if channels == 3 else values[..., 0]).save(path)


@pytest.fixture(scope="module")
def p2p(toy_root, tmp_path_factory):
    """A pix2pix run trained one epoch at 32 px (AtoB)."""
    tmp = tmp_path_factory.mktemp("p2p")
    assert run_main("train", tiny_args(tmp, "p2p", "pix2pix")) == 0
    return tmp / "p2p"


# ---------------------------------------------------------------- numerical faults

def test_non_finite_loss_stops_training_and_keeps_the_last_finite_checkpoints(p2p, tmp_path, capsys):
    run = tmp_path / "p2p"
    shutil.copytree(p2p, run)
    before = hash_tree(run / "checkpoints")
    argv = tiny_args(tmp_path, "p2p", "pix2pix", n_epochs=3, lambda_L1="1e39", continue_train=True)
    assert run_main("train", argv) == 2
    err = _one_line(capsys)
    assert "loss G_L1" in err and "iteration 5" in err and "epoch 2" in err
    assert hash_tree(run / "checkpoints") == before  # latest.pth and model_1.pth are still epoch 1's


def test_loading_refuses_non_finite_or_integer_network_tensors(p2p, tmp_path, capsys):
    state = load_checkpoint(str(p2p / "checkpoints" / "latest.pth"))
    key = next(k for k in state["nets"]["G"] if k.endswith("weight"))
    for name, value in (("nan", torch.full_like(state["nets"]["G"][key], float("nan"))),
                        ("int", state["nets"]["G"][key].round().long())):
        bad = dict(state, nets=dict(state["nets"], G=dict(state["nets"]["G"], **{key: value})))
        path = tmp_path / f"{name}.pth"
        save_checkpoint(bad, str(path))
        with pytest.raises(UserError, match=f"G.{key}"):
            load_checkpoint(str(path))  # the reader every entry point uses (--load_path, --pretrain_path, resume)
        argv = tiny_args(tmp_path, "t", "pix2pix") + ["--load_path", str(path), "--results_dir", str(tmp_path / "r")]
        assert run_main("test", argv) == 2
        assert ("NaN" if name == "nan" else "int64") in _one_line(capsys)
    assert not (tmp_path / "r").exists()


# ---------------------------------------------------------------- clear one-line messages

def test_checkpoint_messages_name_the_problem_and_nothing_is_printed_before(p2p, tmp_path):
    class Payload:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    with open(tmp_path / "payload.pth", "wb") as handle:
        pickle.dump(Payload(), handle)
    (tmp_path / "notes.pth").write_text("just text\n")
    (tmp_path / "folder.pth").mkdir()
    cases = {"payload.pth": "holds objects that are not plain tensors", "notes.pth": "not a torch.save archive",
             "folder.pth": "is a folder"}
    for name, needle in cases.items():
        argv = tiny_args(tmp_path, "t", "pix2pix") + ["--load_path", tmp_path / name, "--results_dir", tmp_path / "r"]
        proc = run_script("test", argv)
        line = assert_user_error(proc)
        assert needle in line and "pop from empty list" not in line, line
        assert proc.stdout.strip() == "", proc.stdout  # no "dataset ... was created" or warning line first
    assert not (tmp_path / "r").exists()


def test_lines_logged_before_an_input_error_stay_held(tmp_path):
    """The dataset is created (and logged) before a resumed checkpoint is found not to fit: the
    error is still the only line, on either stream."""
    assert run_main("train", tiny_args(tmp_path, "held")) == 0
    argv = tiny_args(tmp_path, "held") + ["--continue_train"]
    argv[argv.index("--ngf") + 1] = "16"
    proc = run_script("train", argv)
    assert "has ngf=8 but the options give 16" in assert_user_error(proc)
    assert proc.stdout.strip() == "", proc.stdout


# ---------------------------------------------------------------- mistyped options

@pytest.mark.parametrize("script", ["train", "prune", "test", "export"])
@pytest.mark.parametrize("typo, meant", [("--lamda_A", "--lambda_A"), ("--netg", "--netG"),
                                         ("--lamda_A=10", "--lambda_A")])
def test_a_mistyped_option_is_named_with_the_real_one(script, typo, meant, tmp_path, capsys):
    if script == "export":  # its own options; the same parser class
        typo, meant = {"--lamda_A": ("--formt", "--format"), "--netg": ("--Size", "--size"),
                       "--lamda_A=10": ("--load_pth=x", "--load_path")}[typo]
        argv = ["--load_path", str(tmp_path / "none.pth")]
    else:
        argv = tiny_args(tmp_path / "exp", "typo") + ["--results_dir", str(tmp_path / "r")]
    value = [] if "=" in typo else ["10"]
    assert run_main(script, argv + [typo] + value) == 2
    err = _one_line(capsys)
    assert f"unknown option {typo.split('=')[0]}: did you mean {meant}?" in err, err
    assert "10" not in err  # the value of the unknown option is not reported as a second problem
    assert os.listdir(tmp_path) == []  # nothing written


def test_a_mistyped_option_is_named_before_a_missing_required_one(capsys):
    # export.py requires --load_path: the typo of it is the problem to name, not its absence
    assert run_main("export", ["--load_pth", "x.pth"]) == 2
    assert "unknown option --load_pth: did you mean --load_path?" in _one_line(capsys)
    assert run_main("export", []) == 2
    assert "--load_path" in _one_line(capsys)  # without a typo, the missing option is named


def test_unknown_option_without_a_close_match_and_stray_arguments():
    with pytest.raises(UserError) as err:
        options.parse("train", ["--dataroot", "d", "--zzzzzz", "3", "stray"])
    message = str(err.value)
    assert "unknown option --zzzzzz" in message and "did you mean" not in message
    assert "unrecognized arguments: stray" in message and "\n" not in message
    # a negative number is a value, not an option: --ntest -1 reaches the range check
    with pytest.raises(UserError, match="--ntest must be at least 1"):
        options.parse("test", ["--dataroot", "d", "--ntest", "-1"])


def test_mistyped_option_from_the_shell_is_one_line_without_traceback(tmp_path):
    proc = run_script("train", ["--dataroot", UNALIGNED, "--checkpoints_dir", tmp_path, "--lamda_A", "10"])
    assert assert_user_error(proc) == "error: unknown option --lamda_A: did you mean --lambda_A? (see `train.py -h`)"
    assert proc.stdout == "" and os.listdir(tmp_path) == []


# ---------------------------------------------------------------- checks before anything is written

def test_crop_too_small_for_the_patchgan_is_refused_at_parse_time():
    with pytest.raises(UserError, match="at least 24 px"):
        options.parse("train", ["--dataroot", "d", "--crop_size", "16", "--load_size", "16"])
    assert options.parse("train", ["--dataroot", "d", "--crop_size", "24", "--load_size", "24"]).min_size == 24
    assert options.parse("test", ["--dataroot", "d", "--crop_size", "16", "--load_size", "16"]).min_size == 8


def test_bad_input_found_before_the_run_folder_is_touched(p2p, toy_root, tmp_path, capsys):
    # a truncated image in the first batch
    data = tmp_path / "data"
    shutil.copytree(UNALIGNED, data, ignore=lambda d, names: names if d.endswith(("testA", "testB")) else [])
    first = sorted((data / "trainA").iterdir())[0]
    first.write_bytes(first.read_bytes()[:200])
    assert run_main("train", tiny_args(tmp_path, "trunc", dataroot=data, serial_batches=True)) == 2
    assert "trainA" in _one_line(capsys) and not (tmp_path / "trunc").exists()

    # a --continue_train checkpoint that lacks an entry, or whose optimiser state does not fit
    run = tmp_path / "p2p"
    shutil.copytree(p2p, run)
    state = load_checkpoint(str(run / "checkpoints" / "latest.pth"))
    lacking = {k: v for k, v in state.items() if k != "optimizers"}
    save_checkpoint(lacking, str(tmp_path / "lacking.pth"))
    misfit = dict(state, optimizers=dict(state["optimizers"], G=state["optimizers"]["D"]))
    save_checkpoint(misfit, str(tmp_path / "misfit.pth"))
    before = hash_tree(run)
    for name, needle in (("lacking", "lacks optimizers"), ("misfit", "optimiser state G does not fit")):
        argv = tiny_args(tmp_path, "p2p", "pix2pix", continue_train=True, load_path=tmp_path / f"{name}.pth")
        assert run_main("train", argv) == 2
        assert needle in _one_line(capsys)
        assert hash_tree(run) == before  # opt.txt and the logs as they were

    # prune.py --finetune with a bad --dataroot writes nothing (model_0.pth, opt.txt, logs)
    search = tmp_path / "search"
    assert run_main("train", tiny_args(search, "s", mask=True)) == 0
    argv = tiny_args(tmp_path, "ft", dataroot=tmp_path / "nowhere", mask=True, finetune=True,
                     load_path=search / "s" / "checkpoints" / "latest.pth")
    assert run_main("prune", argv) == 2
    assert "nowhere" in _one_line(capsys) and not (tmp_path / "ft").exists()


# ---------------------------------------------------------------- test.py fits the checkpoint

def test_test_py_takes_the_architecture_from_the_checkpoint(toy_root, tmp_path, capsys):
    # trained with --input_nc 1 --output_nc 1, tested without those flags
    gray = tmp_path / "gray"
    assert run_main("train", tiny_args(tmp_path, "gray", "pix2pix", input_nc=1, output_nc=1)) == 0
    argv = tiny_args(tmp_path, "gray", "pix2pix") + ["--results_dir", str(tmp_path / "r")]
    assert run_main("test", argv) == 0
    assert json.loads((tmp_path / "r" / "gray" / "test_1" / "metrics.json").read_text())["macs"]["AtoB"] > 0

    # a U-Net trained at crop 64 tested at --crop_size 32: one line naming the size that fits
    assert run_main("train", tiny_args(tmp_path, "u64", "pix2pix", crop_size=64, load_size=64)) == 0
    argv = tiny_args(tmp_path, "u64", "pix2pix") + ["--results_dir", str(tmp_path / "r")]
    assert run_main("test", argv) == 2
    assert "--crop_size 64" in _one_line(capsys)

    # --netG unet_32 --preprocess none on 96 px images: sides rounded to what the checkpoint's U-Net needs
    data = tmp_path / "big"
    for i in range(2):
        pair = np.concatenate([np.full((96, 96, 3), 40 * i, np.uint8), np.full((96, 96, 3), 200, np.uint8)], axis=1)
        os.makedirs(data / "test", exist_ok=True)
        Image.fromarray(pair).save(data / "test" / f"p{i}.png")
    argv = tiny_args(tmp_path, "u64", "pix2pix", dataroot=data, netG="unet_32", preprocess="none") + [
        "--results_dir", str(tmp_path / "r2")]
    assert run_main("test", argv) == 0
    with Image.open(tmp_path / "r2" / "u64" / "test_1" / "images" / "fake_B" / "p0_fake_B.png") as out:
        assert out.size == (128, 128)  # 96 rounded to a multiple of 64 (Python's round: 1.5 -> 2)


def test_pix2pix_tested_with_the_opposite_direction_is_refused(p2p, tmp_path, capsys):
    argv = tiny_args(p2p.parent, "p2p", "pix2pix", direction="BtoA") + ["--results_dir", str(tmp_path / "r")]
    assert run_main("test", argv) == 2
    assert "--direction AtoB" in _one_line(capsys) and not (tmp_path / "r").exists()
