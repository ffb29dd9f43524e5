"""Command-line options (options/__init__.py): the seed README's option list, defaults, booleans, aliases,
the options text and the options without effect (validation: test_validate.py)."""
import logging
import math
import os

import pytest

import options
from tests.conftest import REPO, UNALIGNED, run_main, run_script
from tests.helpers import SEED_OPTIONS
from tests.options.conftest import parse
from util.errors import UserError

# attribute on the parsed options -> default (seed README where it states one, method.md §11 otherwise)
DEFAULTS = {
    "name": "default", "checkpoints_dir": "./experiments", "phase": "train", "load_path": None,
    "use_pretrain_d": False, "pretrain_path": None, "model": "cyclegan", "input_nc": 3, "output_nc": 3,
    "ngf": 64, "ndf": 64, "no_dropout": False, "mask": False, "mask_weight_decay": 0.0,
    "mask_loss_type": "relu", "unmask_last_upconv": False, "update_bound_rule": "cube",
    "continue_train": False, "dataset_mode": "unaligned", "direction": "AtoB", "serial_batches": False,
    "num_threads": 8, "batch_size": 1, "load_size": 286, "crop_size": 256, "max_dataset_size": math.inf,
    "preprocess": "resize_and_crop", "no_flip": False, "display_winsize": 256, "block_coeff": 1.0,
    "upconv_coeff": 1.0, "upconv_solo": False, "display_freq": 400, "display_ncols": 4, "display_id": 1,
    "display_server": "http://localhost", "display_env": "main", "display_port": 8097,
    "update_html_freq": 1000, "print_freq": 100, "no_html": False, "save_epoch_freq": 1, "epoch_count": 1,
    "n_epochs": 100, "n_epochs_decay": 100, "lr": 0.0002, "gan_mode": "lsgan", "pool_size": 100,
    "lr_policy": "linear", "lr_decay_iters": 50, "lambda_A": 10.0, "lambda_B": 10.0, "lambda_identity": 0.5,
    "lambda_L1": 100.0, "lambda_group_lasso": 0.0, "lambda_attention_distill": 0.0,
    "lambda_discriminator_distill": 0.0, "attention_normal": True, "threshold": 0, "upconv_bound": False,
    "upconv_relu": False, "lambda_update_coeff": 0.0, "ntest": math.inf, "aspect_ratio": 1.0,
    "drn_path": "~/pretrain/drn-d-105_ms_cityscapes.pth", "finetune": False, "scratch": False,
}

# a valid, non-default value for every seed option, and the attribute it lands in
SAMPLES = {
    "dataroot": ("some/where", "dataroot", "some/where"), "name": ("exp", "name", "exp"),
    "gpu_ids": ("-1", "gpu_ids", []), "checkpoints_dir": ("ck", "checkpoints_dir", "ck"),
    "phase": ("val", "phase", "val"), "load_path": ("a.pth", "load_path", "a.pth"),
    "use_pretrain_d": ("True", "use_pretrain_d", True), "pretrain_path": ("t.pth", "pretrain_path", "t.pth"),
    "model": ("pix2pix", "model", "pix2pix"), "input_nc": ("1", "input_nc", 1), "output_nc": ("1", "output_nc", 1),
    "ngf": ("48", "ngf", 48), "ndf": ("128", "ndf", 128), "no_dropout": (None, "no_dropout", True),
    "mask": (None, "mask", True), "mask_weight_decay": ("0.0008", "mask_weight_decay", 0.0008),
    "mask_loss_type": ("bound", "mask_loss_type", "bound"),
    "unmask_last_upconv": ("True", "unmask_last_upconv", True),
    "update_bound_rule": ("double", "update_bound_rule", "double"),
    "continue_train": ("True", "continue_train", True), "dataset_mode": ("aligned", "dataset_mode", "aligned"),
    "direction": ("BtoA", "direction", "BtoA"), "serial_batches": (None, "serial_batches", True),
    "num_threads": ("2", "num_threads", 2), "batch_size": ("4", "batch_size", 4),
    "load_size": ("300", "load_size", 300), "crop_size": ("128", "crop_size", 128),
    "max_dataset_size": ("10", "max_dataset_size", 10), "preprocess": ("crop", "preprocess", "crop"),
    "no_flip": (None, "no_flip", True), "display_winsize": ("128", "display_winsize", 128),
    "block_coeff": ("2.0", "block_coeff", 2.0), "upconv_coeff": ("100.0", "upconv_coeff", 100.0),
    "upconv_solo": (None, "upconv_solo", True), "display_freq": ("7", "display_freq", 7),
    "display_ncols": ("0", "display_ncols", 0), "display_id": ("30", "display_id", 30),
    "display_server": ("http://h", "display_server", "http://h"), "display_env": ("e", "display_env", "e"),
    "display_port": ("9000", "display_port", 9000), "update_html_freq": ("5", "update_html_freq", 5),
    "print_freq": ("3", "print_freq", 3), "no_html": (None, "no_html", True),
    "save_epoch_freq": ("5", "save_epoch_freq", 5), "epoch_count": ("66", "epoch_count", 66),
    "n_epochs": ("5", "n_epochs", 5), "n_epochs_decay": ("15", "n_epochs_decay", 15), "lr": ("0.001", "lr", 0.001),
    "gan_mode": ("hinge", "gan_mode", "hinge"), "pool_size": ("0", "pool_size", 0),
    "lr_policy": ("cosine", "lr_policy", "cosine"), "lr_decay_iters": ("7", "lr_decay_iters", 7),
    "lambda_A": ("1.5", "lambda_A", 1.5), "lambda_B": ("2.5", "lambda_B", 2.5),
    "lambda_identity": ("0.1", "lambda_identity", 0.1), "lambda_L1": ("10", "lambda_L1", 10.0),
    "lambda_group_lasso": ("0.01", "lambda_group_lasso", 0.01),
    "lambda_distill": ("100.0", "lambda_attention_distill", 100.0),
    "lambda_d": ("0.001", "lambda_discriminator_distill", 0.001),
    "attention_normal": ("False", "attention_normal", False), "threshold": ("2", "threshold", 2),
    "upconv_bound": (None, "upconv_bound", True), "upconv_relu": (None, "upconv_relu", True),
    "lambda_update_coeff": ("1.0", "lambda_update_coeff", 1.0), "ntest": ("5", "ntest", 5),
    "aspect_ratio": ("2.0", "aspect_ratio", 2.0), "drn_path": ("d.pth", "drn_path", "d.pth"),
    "finetune": (None, "finetune", True), "scratch": (None, "scratch", True),
}

BOOLEANS = ("continue_train", "attention_normal", "unmask_last_upconv", "mask", "no_flip")
SCRIPTS = ("train", "test", "prune")


def test_lists_are_complete():
    assert set(SAMPLES) == set(SEED_OPTIONS)
    assert len(SEED_OPTIONS) == len(set(SEED_OPTIONS)) == 69


@pytest.mark.parametrize("script", SCRIPTS)
def test_every_seed_option_is_known_to_every_script(script):
    strings = {s for action in options.build_parser(script)._actions for s in action.option_strings}
    missing = [name for name in SEED_OPTIONS if f"--{name}" not in strings]
    assert not missing


@pytest.mark.parametrize("script", SCRIPTS)
def test_documented_defaults(script):
    opt = parse(script=script)
    wrong = {k: (getattr(opt, k, "<missing>"), v) for k, v in DEFAULTS.items() if getattr(opt, k, "<missing>") != v}
    assert not wrong
    assert opt.gpu_ids is None  # auto: GPU 0 when CUDA is available, else the CPU
    assert opt.isTrain is (script != "test")


@pytest.mark.parametrize("script", SCRIPTS)
@pytest.mark.parametrize("option", SEED_OPTIONS)
def test_every_seed_option_accepts_a_value(script, option):
    value, attribute, expected = SAMPLES[option]
    argv = [f"--{option}"] + ([] if value is None else [value])
    if option == "scratch":
        argv.append("--finetune")  # --scratch alone is a contradiction (tested below)
    if option == "crop_size":
        argv += ["--load_size", "286"]
    if option in ("input_nc", "output_nc"):
        argv += ["--input_nc", value, "--output_nc", value]
    if option == "dataroot":
        opt = options.parse(script, argv)
    else:
        opt = parse(*argv, script=script)
    assert getattr(opt, attribute) == expected


def test_help_lists_every_seed_option():
    proc = run_script("train", ["-h"])
    assert proc.returncode == 0, proc.stderr
    missing = [name for name in SEED_OPTIONS if f"--{name}" not in proc.stdout]
    assert not missing


@pytest.mark.parametrize("script", ("test", "prune"))
def test_help_of_the_other_scripts(script, capsys):
    assert run_main(script, ["-h"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: {script}.py")
    assert not [name for name in SEED_OPTIONS if f"--{name}" not in out]


# ---------------------------------------------------------------- booleans

@pytest.mark.parametrize("name", BOOLEANS)
def test_boolean_options_are_real_flags(name):
    default = DEFAULTS[name]
    assert getattr(parse(), name) is default
    assert getattr(parse(f"--{name}"), name) is True
    assert getattr(parse(f"--{name}", "--ngf", "8"), name) is True  # bare, followed by another option
    assert getattr(parse(f"--{name}=True"), name) is True
    for word in ("True", "true", "1", "yes"):
        assert getattr(parse(f"--{name}", word), name) is True
    for word in ("False", "false", "0", "no"):
        assert getattr(parse(f"--{name}", word), name) is False


def test_bad_boolean_value_is_a_one_line_error():
    with pytest.raises(UserError) as err:
        parse("--mask", "maybe")
    assert "--mask" in str(err.value) and "\n" not in str(err.value)


def test_an_option_given_twice_is_not_a_contradiction():
    assert parse("--ngf", "8", "--ngf", "16").ngf == 16
    assert parse("--mask", "--mask", "False").mask is False
    assert parse("--continue_train", "False", "--continue_train").continue_train is True
    assert parse("--gan_mode", "hinge", "--gan_mode", "vanilla").gan_mode == "vanilla"
    assert parse("--gpu_ids", "7", "--gpu_ids", "-1").gpu_ids == []


# ---------------------------------------------------------------- entry points

@pytest.mark.parametrize("script", SCRIPTS)
def test_entry_points_exit_2_with_one_line(script, capsys):
    assert run_main(script, ["--dataroot", UNALIGNED, "--gan_mode", "nonsense"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "gan_mode" in err[0]


# ---------------------------------------------------------------- aliases

def test_distillation_aliases():
    opt = parse("--lambda_distill", "100", "--lambda_d", "0.001")
    assert opt.lambda_attention_distill == 100.0 and opt.lambda_discriminator_distill == 0.001
    opt = parse("--lambda_attention_distill", "10", "--lambda_discriminator_distill", "1e-4")
    assert opt.lambda_attention_distill == 10.0 and opt.lambda_discriminator_distill == 1e-4
    assert parse("--lambda_distill", "3", "--lambda_attention_distill", "4").lambda_attention_distill == 4.0


# ---------------------------------------------------------------- the options text

def test_options_text_marks_changed_values():
    opt = parse("--ngf", "16")
    text = options.options_text(opt)
    line = next(line for line in text.splitlines() if line.strip().startswith("ngf:"))
    assert "16" in line and "[default: 64]" in line
    line = next(line for line in text.splitlines() if line.strip().startswith("ndf:"))
    assert "[default" not in line


# ------------------------------------------------------------------------------------------ ignored options

@pytest.mark.parametrize("script, argv, ignored", [
    ("test", ["--mask_weight_decay", "0.1"], ["--mask_weight_decay"]),
    ("test", ["--mask", "--n_epochs", "3", "--lambda_distill", "1"],
     ["--lambda_attention_distill", "--mask", "--n_epochs"]),
    ("train", ["--load_path", "x.pth"], ["--load_path"]),
    ("train", ["--load_path", "x.pth", "--continue_train"], []),
    ("train", ["--mask_weight_decay", "0.1", "--pretrain_path", "t.pth", "--results_dir", "r"],
     ["--mask_weight_decay", "--pretrain_path", "--results_dir"]),
    ("train", ["--mask", "--mask_weight_decay", "0.1", "--threshold", "2"], []),
    ("prune", ["--mask", "--lr", "0.1", "--display_id", "1", "--threshold", "1"], ["--display_id", "--lr"]),
    ("prune", ["--mask", "--finetune", "--lr", "0.1", "--display_id", "1", "--upconv_bound"], ["--upconv_bound"]),
    ("prune", ["--mask", "--finetune", "--lambda_d", "1", "--pretrain_path", "t.pth", "--continue_train"], []),
    # the discriminator's width acts only where a discriminator trains; --display_id 0 switches visdom off
    ("prune", ["--mask", "--ndf", "16", "--display_id", "0"], ["--ndf"]),
    ("prune", ["--mask", "--finetune", "--ndf", "16", "--display_id", "0"], []),
    ("test", ["--display_id", "0", "--display_id", "-1"], []),
    ("train", ["--amp_dtype", "fp16"], ["--amp_dtype"]),
    ("train", ["--amp", "--amp_dtype", "fp16"], []),
])
def test_options_without_effect_are_named(script, argv, ignored):
    opt = parse(*argv, script=script)
    assert sorted(flag for flag, _ in options.ignored_options(opt)) == ignored


def test_the_ignored_options_are_named_in_one_warning(caplog):
    opt = parse("--mask_weight_decay", "0.1", "--gan_mode", "hinge", script="test")
    with caplog.at_level(logging.WARNING, logger="dmad"):
        options.warn_ignored_options(opt)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and lines[0].startswith("--gan_mode, --mask_weight_decay have no effect in test.py")
    assert "--mask_weight_decay acts in the mask search" in lines[0]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="dmad"):
        options.warn_ignored_options(parse("--gan_mode", "hinge"))
    assert not caplog.records


@pytest.mark.parametrize("model, option, owner", [
    ("cyclegan", "--lambda_L1", "pix2pix"), ("mobilecyclegan", "--lambda_L1", "pix2pix"),
    ("pix2pix", "--lambda_A", "cyclegan"), ("mobilepix2pix", "--pool_size", "cyclegan"),
    ("pix2pix", "--lambda_identity", "cyclegan")])
def test_an_option_of_another_model_is_named(caplog, model, option, owner):
    """Each model declares its own options (add_options of its class): one of another model is accepted
    (the seed README's list is one set for all) and named in a warning."""
    opt = parse("--model", model, option, "5")
    assert [flag for flag, _ in options.ignored_options(opt)] == [option]
    with caplog.at_level(logging.WARNING, logger="dmad"):
        options.warn_ignored_options(opt)
    assert option in caplog.text and f"--model {owner}" in caplog.text
    assert options.ignored_options(parse("--model", owner, option, "5")) == []


def test_help_shows_the_model_s_own_options_and_names_the_others():
    cyclegan = options.build_parser("train", ["--model", "cyclegan"]).format_help()
    pix2pix = options.build_parser("train", ["--model", "pix2pix"]).format_help()
    assert "cyclegan model:" in cyclegan and "pix2pix model:" not in cyclegan
    assert "pix2pix model:" in pix2pix and "cyclegan model:" not in pix2pix
    assert "without effect in train.py --model cyclegan" in cyclegan and "--lambda_L1" in cyclegan.split("Also")[1]


def test_the_seed_readme_commands_warn_only_about_test_mask():
    """The README's commands: only test.py's --mask (read from the checkpoint there) is reported."""
    train_argv = ["--model", "cyclegan", "--gpu_ids", "-1", "--display_id", "30", "--name", "h", "--n_epochs", "100",
                  "--n_epochs_decay", "100", "--mask", "--mask_weight_decay", "0.0008", "--lambda_update_coeff",
                  "1.0", "--block_coeff", "1.0", "--upconv_coeff", "100.0", "--upconv_bound"]
    assert options.ignored_options(parse(*train_argv)) == []
    resume = train_argv + ["--continue_train", "True", "--epoch_count", "66", "--load_path", "m.pth"]
    assert options.ignored_options(parse(*resume)) == []
    prune_argv = ["--model", "cyclegan", "--mask", "--checkpoints_dir", "e", "--name", "attention", "--load_path",
                  "m.pth", "--gpu_ids", "-1", "--display_id", "1", "--finetune", "--lambda_attention_distill", "100",
                  "--lambda_discriminator_distill", "0.001", "--pretrain_path", "p.pth"]
    assert options.ignored_options(parse(*prune_argv, script="prune")) == []
    test_argv = ["--name", "test", "--model", "cyclegan", "--mask", "--gpu_ids", "-1", "--load_path", "m.pth"]
    assert [flag for flag, _ in options.ignored_options(parse(*test_argv, script="test"))] == ["--mask"]


def test_the_documented_prune_command_warns_about_nothing_with_or_without_its_finetune_part():
    """docs/usage.md's prune block: the options above its blank line prune, the ones below add the
    fine-tune; run either way, as written, no option is reported as without effect."""
    usage = open(os.path.join(REPO, "docs", "usage.md")).read()
    block = usage.split("## Prune and fine-tune", 1)[1].split("```shell", 1)[1].split("```", 1)[0]
    prune_part, finetune_part = block.strip().split("\n\n")
    prune_argv = [a for line in prune_part.splitlines()[1:] for a in line.split()]
    finetune_argv = [a for line in finetune_part.splitlines() for a in line.split()]
    assert "--finetune" in finetune_argv and "--finetune" not in prune_argv
    assert options.ignored_options(parse(*prune_argv, script="prune")) == []
    assert options.ignored_options(parse(*prune_argv, *finetune_argv, script="prune")) == []
