"""The separable-convolution models end to end on the toy data: teacher -> mask search -> prune ->
fine-tune with both distillations (and its resume) -> test.py, for ``--model mobilecyclegan`` and
``--model mobilepix2pix`` (tiny: 32 px, ngf 8, 4 images, a random-weight FID network so that
model_best.pth is written)."""
import json
import os
import shutil

import pytest
import torch

from tests.conftest import ALIGNED, UNALIGNED, run_main
from tests.helpers import _random_inception
from pipeline.checkpoint import load_checkpoint

DATA = {"mobilecyclegan": UNALIGNED, "mobilepix2pix": ALIGNED}
SEARCH = {"mobilecyclegan": ["--mask_weight_decay", "0.002", "--lambda_update_coeff", "5", "--upconv_bound",
                             "--upconv_coeff", "200"],
          "mobilepix2pix": ["--mask_weight_decay", "0.006", "--lambda_update_coeff", "2", "--upconv_bound",
                            "--upconv_coeff", "100", "--gan_mode", "hinge"]}


@pytest.fixture(scope="module")
def inception_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("weights") / "inception.pth"
    torch.save(_random_inception().state_dict(), path)
    return str(path)


def small_copy(model, root):
    """Four images per split (evaluation writes real statistics into the dataroot)."""
    src = DATA[model]
    for split in sorted(os.listdir(src)):
        if not os.path.isdir(os.path.join(src, split)):
            continue
        os.makedirs(root / split)
        for name in sorted(os.listdir(os.path.join(src, split)))[:4]:
            shutil.copy(os.path.join(src, split, name), root / split / name)
    return root


def args(model, data, tmp, name, inception, *extra, ngf=8):
    return ["--dataroot", str(data), "--model", model, "--name", name, "--checkpoints_dir", str(tmp / "exp"),
            "--crop_size", "32", "--load_size", "32", "--ngf", str(ngf), "--ndf", "8", "--max_dataset_size", "4",
            "--num_threads", "0", "--display_id", "0", "--gpu_ids", "-1", "--n_epochs", "1",
            "--n_epochs_decay", "0", "--metric", "fid", "--inception_path", inception, "--eval_batch_size", "4",
            "--print_freq", "1", *extra]


@pytest.mark.parametrize("model", ["mobilecyclegan", "mobilepix2pix"])
def test_search_prune_finetune_test(model, tmp_path, inception_path, toy_root):
    data = small_copy(model, tmp_path / "data")
    exp = tmp_path / "exp"
    gens = ("G_A", "G_B") if model == "mobilecyclegan" else ("G",)
    # stage 0: the full-size separable-conv teacher
    teacher_args = args(model, data, tmp_path, "teacher", inception_path, ngf=12)
    teacher_args[teacher_args.index("--metric") + 1] = "none"
    assert run_main("train", teacher_args) == 0
    teacher = exp / "teacher" / "checkpoints" / "latest.pth"
    assert load_checkpoint(str(teacher))["configs"][gens[0]]["family"] == "mobile_resnet"

    # stage 1: the search; at the end of its epoch the bound is 0, so it may become the best model
    assert run_main("train", args(model, data, tmp_path, "search", inception_path, "--mask", *SEARCH[model])) == 0
    search = load_checkpoint(str(exp / "search" / "model_best.pth"))
    assert search["model"] == model
    assert all(search["configs"][g]["mask"] and search["configs"][g]["family"] == "mobile_resnet" for g in gens)
    log = (exp / "search" / "logger.log").read_text()
    assert "mask_weight" in (exp / "search" / "loss_log.txt").read_text() and "Bound: 0.000" in log

    # stages 2-3: prune, fine-tune with both distillations, resume one more epoch
    ft = ["--mask", "--load_path", str(exp / "search" / "model_best.pth"), "--finetune", "--pretrain_path",
          str(teacher), "--lambda_attention_distill", "100", "--lambda_discriminator_distill", "1e-4"]
    assert run_main("prune", args(model, data, tmp_path, "ft", inception_path, *ft)) == 0
    pruned = load_checkpoint(str(exp / "ft" / "checkpoints" / "model_0.pth"))
    assert pruned["stage"] == "pruned"
    assert all(not pruned["configs"][g]["mask"] for g in gens)
    losses = (exp / "ft" / "loss_log.txt").read_text()
    assert "attention_distill" in losses and "discriminator_distill" in losses
    assert run_main("prune", args(model, data, tmp_path, "ft", inception_path, *ft, "--continue_train",
                                  "--n_epochs", "2")) == 0
    best = load_checkpoint(str(exp / "ft" / "model_best.pth"))
    assert best["model"] == model
    assert best["configs"][gens[0]]["widths"] == pruned["configs"][gens[0]]["widths"]
    assert load_checkpoint(str(exp / "ft" / "checkpoints" / "latest.pth"))["epoch"] == 2

    # eval: test.py on the fine-tuned model
    results = tmp_path / "results"
    assert run_main("test", args(model, data, tmp_path, "ft", inception_path, "--load_path",
                                 str(exp / "ft" / "model_best.pth"), "--results_dir", str(results))) == 0
    report = json.loads((results / "ft" / "test_best" / "metrics.json").read_text())
    assert report["fid"] and set(report["macs"]) == ({"AtoB", "BtoA"} if model == "mobilecyclegan" else {"AtoB"})
    assert all(v < 1e9 for v in report["macs"].values())
