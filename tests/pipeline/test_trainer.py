"""The training loop's epoch summary and its stop on a non-finite loss."""
import pytest
import torch

import options
from models.base_model import BaseModel
from tests.conftest import ALIGNED, UNALIGNED, run_main, tiny_args


@pytest.mark.parametrize("model", ["pix2pix", "cyclegan"])
def test_a_loss_the_search_makes_infinite_names_the_search_options(toy_root, tmp_path, capsys, model):
    """The hint names the options that scale the losses of the run at hand, the given ones first: here the
    search's --mask_weight_decay, and --lambda_L1 only where it acts (pix2pix)."""
    data = ALIGNED if model == "pix2pix" else UNALIGNED
    argv = tiny_args(tmp_path, "nan", model=model, dataroot=data, mask=True, mask_weight_decay="1e38")
    capsys.readouterr()
    assert run_main("train", argv) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and "loss mask_weight is inf" in err[0], err
    hint = err[0].split("(")[-1]
    assert hint.startswith("--mask_weight_decay 1e+38, ") and "--lr 0.0002" in hint
    assert ("--lambda_L1 100" in hint) == (model == "pix2pix") and ("--lambda_A 10" in hint) == (model == "cyclegan")
    assert "--lambda_attention_distill" not in hint


def test_the_hint_of_a_fine_tune_names_its_distillation_weights_and_not_the_search():
    argv = ["--dataroot", UNALIGNED, "--model", "cyclegan", "--mask", "--finetune", "--gpu_ids", "-1",
            "--load_path", "search.pth", "--pretrain_path", "teacher.pth", "--lambda_attention_distill", "100",
            "--mask_weight_decay", "0.01"]
    scales = options.loss_scale_options(options.parse("prune", argv))
    assert scales[0] == "--lambda_attention_distill 100" and "--lr 0.0002" in scales
    assert not [s for s in scales if s.startswith(("--mask_weight_decay", "--lambda_discriminator_distill"))]


def test_the_epoch_summary_of_large_finite_losses_is_finite(toy_root, tmp_path, capsys, monkeypatch):
    """Losses near float32's largest value are finite; their sum over the epoch is kept in float64."""
    real = BaseModel.current_loss_tensors
    monkeypatch.setattr(BaseModel, "current_loss_tensors",
                        lambda self: {k: torch.tensor(3e38) for k in real(self)})
    assert run_main("train", tiny_args(tmp_path, "big")) == 0
    out = capsys.readouterr()
    summary = [line for line in (out.out + out.err).splitlines() if "End of epoch" in line]
    assert len(summary) == 1 and "mean losses: D_A: 3000000" in summary[0] and "inf" not in summary[0], summary
