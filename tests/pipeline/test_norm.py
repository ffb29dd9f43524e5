"""--norm: the generator's norm layers (instance or batch) through train.py, a resume, --init_path,
the mask search, prune.py (fine-tune and --scratch) and test.py."""
import logging

import pytest
import torch
from torch import nn

import options
from models import families
from models.families.mobile_resnet import MobileResnetGenerator
from models.families.resnet import ResnetGenerator
from models.families.unet import UnetGenerator
from pipeline.checkpoint import load_checkpoint
from tests.conftest import assert_user_error, run_main, run_script, tiny_args


def norm_types(state_or_net):
    return {type(m) for m in state_or_net.modules() if isinstance(m, (nn.BatchNorm2d, nn.InstanceNorm2d))}


@pytest.mark.parametrize("model, default", [("cyclegan", "instance"), ("pix2pix", "batch"),
                                            ("mobilecyclegan", "instance")])
def test_the_default_is_the_family_s_and_its_config_names_no_norm(tmp_path, model, default):
    opt = options.parse("train", tiny_args(tmp_path, "d", model=model))
    assert opt.norm == default
    family = families.for_netG(opt.netG)
    assert "norm" not in family.options_config(opt, False)  # the configs of earlier runs stay as they were


@pytest.mark.parametrize("family, other", [(ResnetGenerator, "batch"), (UnetGenerator, "instance")])
def test_the_other_norm_is_built_and_recorded(family, other):
    opt = type("Opt", (), {"norm": other})()
    assert family.norm_config(opt) == {"norm": other}
    net = families.build(dict(family.options_config(options.parse("train", tiny_args(
        "/tmp", "x", model="cyclegan" if family is ResnetGenerator else "pix2pix", norm=other)), True)))
    wanted = nn.BatchNorm2d if other == "batch" else nn.InstanceNorm2d
    assert norm_types(net) == {wanted}
    assert net.config()["norm"] == other and family.norm_of(net.config()) == other


def test_a_norm_the_family_does_not_build_is_one_line(tmp_path):
    proc = run_script("train", tiny_args(tmp_path, "m", model="mobilecyclegan", norm="batch"))
    line = assert_user_error(proc)
    assert "--norm batch" in line and "instance" in line and "drop --norm" in line
    assert MobileResnetGenerator.norms == ("instance",)
    assert not (tmp_path / "m").exists()


def test_batchnorm_cyclegan_searches_prunes_finetunes_and_tests(tmp_path, caplog):
    """A --norm batch CycleGAN mask search: its generators have BatchNorms (and keep them through a
    resume without --norm, the pruning, the fine-tune, --scratch and test.py)."""
    search = tiny_args(tmp_path, "s", mask=True, norm="batch", batch_size=2)
    assert run_main("train", search) == 0
    state = load_checkpoint(str(tmp_path / "s" / "checkpoints" / "latest.pth"))
    assert state["configs"]["G_A"]["norm"] == "batch" and state["configs"]["G_B"]["norm"] == "batch"
    assert any(k.endswith("stem.norm.running_mean") for k in state["nets"]["G_A"])
    # a resume without --norm goes on with the BatchNorms
    resume = [a for a in search if a not in ("--norm", "batch")] + ["--continue_train", "--n_epochs", "2"]
    with caplog.at_level(logging.INFO, logger="dmad"):
        assert run_main("train", resume) == 0
    assert "--norm batch" in caplog.text
    assert load_checkpoint(str(tmp_path / "s" / "checkpoints" / "latest.pth"))["epoch"] == 2
    source = tmp_path / "s" / "checkpoints" / "latest.pth"
    for name, extra in (("f", {}), ("c", {"scratch": True})):
        argv = tiny_args(tmp_path, name, mask=True, load_path=source, finetune=True, batch_size=2, **extra)
        assert run_main("prune", argv) == 0
        pruned = load_checkpoint(str(tmp_path / name / "checkpoints" / "latest.pth"))
        assert pruned["configs"]["G_A"]["norm"] == "batch"
        assert any(k.endswith("running_var") for k in pruned["nets"]["G_A"])
    test = tiny_args(tmp_path, "f", load_path=tmp_path / "f" / "checkpoints" / "latest.pth",
                     results_dir=tmp_path / "results")
    assert run_main("test", test) == 0


def test_init_path_takes_the_norm_and_refuses_another_given(tmp_path, caplog):
    assert run_main("train", tiny_args(tmp_path, "t", norm="batch")) == 0
    teacher = tmp_path / "t" / "checkpoints" / "latest.pth"
    with caplog.at_level(logging.INFO, logger="dmad"):
        assert run_main("train", tiny_args(tmp_path, "i", mask=True, init_path=teacher, lr=1e-12)) == 0
    assert "--norm batch taken from the networks of --init_path" in caplog.text
    run = load_checkpoint(str(tmp_path / "i" / "checkpoints" / "latest.pth"))
    assert run["configs"]["G_A"]["norm"] == "batch" and run["configs"]["G_B"]["norm"] == "batch"
    # the teacher's networks started the run's (the discriminators unchanged at lr 1e-12; the generators'
    # weights take the masks' scales at each update, §4.4, and their BatchNorm statistics move)
    for key, value in load_checkpoint(str(teacher))["nets"]["D_A"].items():
        if value.is_floating_point() and "running_" not in key:
            torch.testing.assert_close(run["nets"]["D_A"][key], value, atol=1e-6, rtol=0)
    proc = run_script("train", tiny_args(tmp_path, "j", mask=True, init_path=teacher, norm="instance"))
    line = assert_user_error(proc)
    assert "--norm instance does not fit" in line and "give --norm batch" in line
    assert not (tmp_path / "j").exists()
