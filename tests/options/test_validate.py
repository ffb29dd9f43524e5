"""options/validate.py: invalid or contradictory values refused with one line, non-finite floats and
their fixes, the model-dependent defaults, --gpu_ids, and --name as one folder name."""
import math

import pytest

import options
from tests.conftest import UNALIGNED, assert_user_error, run_script
from tests.options.conftest import parse
from util.errors import UserError


INVALID = [
    ("--gan_mode", "nonsense"), ("--lr_policy", "sometimes"), ("--model", "stylegan"),
    ("--direction", "AtoC"), ("--preprocess", "zoom"), ("--batch_size", "0"), ("--batch_size", "-2"),
    ("--ngf", "abc"), ("--ngf", "0"), ("--lr", "0"), ("--n_epochs", "-1"), ("--epoch_count", "0"),
    ("--crop_size", "300", "--load_size", "286"), ("--upconv_bound", "--upconv_relu"),
    ("--model", "pix2pix", "--netG", "resnet_9blocks"), ("--model", "cyclegan", "--netG", "unet_256"),
    ("--gpu_ids", "abc"), ("--no_such_option", "1"), ("--max_dataset_size", "many"), ("--ntest", "0"),
    ("--model", "pix2pix", "--crop_size", "48", "--load_size", "48"), ("--aspect_ratio", "0"),
    ("--crop_size", "50", "--load_size", "64"), ("--input_nc", "1"),
    ("--n_epochs", "0", "--n_epochs_decay", "0"), ("--mask_weight_decay", "-1"),
]


@pytest.mark.parametrize("argv", INVALID, ids=" ".join)
def test_invalid_values_are_one_line_user_errors(argv):
    with pytest.raises(UserError) as err:
        parse(*argv)
    message = str(err.value)
    assert message.strip() and "\n" not in message


NON_FINITE_OR_OUT_OF_RANGE = [
    ("lr", "nan"), ("lr", "inf"), ("beta1", "1.5"), ("beta1", "-0.5"), ("beta1", "nan"), ("beta1", "1"),
    ("mask_weight_decay", "nan"), ("lambda_identity", "nan"), ("upconv_coeff", "nan"),
    ("lambda_group_lasso", "nan"), ("AtoB_macs_threshold", "nan"), ("lambda_A", "inf"),
    ("lambda_attention_distill", "-inf"), ("frozen_threshold", "nan"), ("aspect_ratio", "inf"),
    ("aspect_ratio", "1e6"), ("aspect_ratio", "nan"), ("aspect_ratio", "0.01"), ("aspect_ratio", "-1"),
]


@pytest.mark.parametrize("name,value", NON_FINITE_OR_OUT_OF_RANGE, ids=[f"{n}={v}" for n, v in NON_FINITE_OR_OUT_OF_RANGE])
def test_non_finite_or_out_of_range_floats_are_refused(name, value):
    with pytest.raises(UserError) as err:
        parse(f"--{name}={value}", script="test" if name == "aspect_ratio" else "train")
    message = str(err.value)
    assert message.startswith(f"--{name} must ") and "\n" not in message, message


def test_non_finite_messages_name_the_fix():
    with pytest.raises(UserError, match=r"^--lr must be a finite number, got nan: e.g. --lr 0.0002 \(the default\)$"):
        parse("--lr", "nan")
    with pytest.raises(UserError, match=r"^--beta1 must lie in \[0, 1\), got 1.5: e.g. --beta1 0.5 \(the default\)$"):
        parse("--beta1", "1.5")
    with pytest.raises(UserError, match=r"^--aspect_ratio must lie between 0.0625 and 16 "):
        parse("--aspect_ratio", "1e6", script="test")


def test_float_options_keep_their_valid_values():
    """Infinity stays the 'no cap' of --max_dataset_size and --ntest; the ends of the ranges are valid."""
    opt = parse("--max_dataset_size", "inf", "--ntest", "inf", "--beta1", "0", "--aspect_ratio", "16",
                "--lambda_identity", "0", "--lr", "1e-9", script="test")
    assert opt.max_dataset_size == math.inf and opt.ntest == math.inf and opt.beta1 == 0
    assert parse("--aspect_ratio", "0.0625", "--beta1", "0.999").aspect_ratio == 0.0625
    assert parse().max_dataset_size == math.inf


def test_aspect_ratio_inf_is_a_one_line_error_of_test_py(toy_root, tmp_path):
    proc = run_script("test", ["--dataroot", UNALIGNED, "--gpu_ids", "-1", "--crop_size", "32", "--load_size", "32",
                               "--checkpoints_dir", tmp_path, "--results_dir", tmp_path, "--aspect_ratio", "inf"])
    assert "--aspect_ratio" in assert_user_error(proc)


def test_dataroot_is_required():
    with pytest.raises(UserError, match="--dataroot"):
        options.parse("train", ["--name", "x"])


def test_scratch_needs_finetune():
    with pytest.raises(UserError, match="--finetune"):
        parse("--scratch", script="prune")
    assert parse("--scratch", "--finetune", script="prune").scratch is True


def test_crop_larger_than_load_is_refused_where_images_are_cropped_only():
    """Training crops --crop_size from the image resized to --load_size; test.py resizes to --crop_size
    (which it may take from the checkpoint), so a smaller --load_size given alone is no contradiction."""
    for script in ("train", "prune"):
        with pytest.raises(UserError, match="--crop_size 256 is larger than --load_size 32"):
            parse("--load_size", "32", script=script)
    assert parse("--load_size", "32", script="test").load_size == 32


# ---------------------------------------------------------------- defaults filled in

def test_model_dependent_defaults():
    p2p = parse("--model", "pix2pix")
    assert p2p.dataset_mode == "aligned" and p2p.netG == "unet_256"
    assert parse("--model", "pix2pix", "--crop_size", "64", "--load_size", "64").netG == "unet_64"
    assert parse().netG == "resnet_9blocks" and parse().dataset_mode == "unaligned"
    assert parse("--netG", "resnet_6blocks").netG == "resnet_6blocks"


def test_epoch_count_remembers_whether_it_was_given():
    assert parse().epoch_count_given is False
    opt = parse("--epoch_count", "66")
    assert opt.epoch_count == 66 and opt.epoch_count_given is True


def test_gpu_ids_parsing():
    assert parse("--gpu_ids", "-1").gpu_ids == []
    assert parse("--gpu_ids", "0,2").gpu_ids == [0, 2]
    assert parse("--gpu_ids", "3").gpu_ids == [3]
    assert parse().gpu_ids is None


# ---------------------------------------------------------------- --name

@pytest.mark.parametrize("name", ["a/b", "../x", "/tmp/abs", "", ".."])
def test_name_is_one_path_component(name):
    with pytest.raises(UserError, match="--name"):
        options.parse("train", ["--dataroot", "d", "--name", name])
