"""``--model mobilecyclegan`` and ``--model mobilepix2pix``: their networks (method.md §5.5, §5.6), the
mask-loss rule that tells them apart (§3.4) and the 0.5 / 0.25 co-attention target of the mobile
pix2pix (§7.3)."""
import os

import pytest
import torch

import options
from models import create_model
from compress import distill
from compress.distill import Distiller, Teacher, attention_map
from compress.mask_losses import loss_types
from tests.conftest import ALIGNED, UNALIGNED

CPU = torch.device("cpu")


def opts(model, *extra):
    return options.parse("train", ["--dataroot", UNALIGNED if model == "mobilecyclegan" else ALIGNED, "--model", model,
                                   "--gpu_ids", "-1", "--crop_size", "32", "--load_size", "32", *extra])


@pytest.mark.parametrize("model", ["mobilecyclegan", "mobilepix2pix"])
def test_networks_honour_ngf_and_ndf(model):
    m = create_model(opts(model, "--ngf", "12", "--ndf", "20", "--mask"), CPU)
    gens = ("G_A", "G_B") if model == "mobilecyclegan" else ("G",)
    for g in gens:
        net = m.nets[g]
        assert net.family == "mobile_resnet" and net.stem.conv.out_channels == 12 and net.n_blocks == 9
        assert net.blocks["0"].conv1.conv.depthwise.groups == 48
        assert net.down1_role == ("bound" if model == "mobilecyclegan" else "own")
    for d in (("D_A", "D_B") if model == "mobilecyclegan" else ("D",)):
        net = m.nets[d]
        assert net.layers["conv1"].out_channels == 20
        # InstanceNorm for both (the pix2pix D has BatchNorm); the mobile pix2pix D sees (input, output)
        assert isinstance(net.layers["norm2"], torch.nn.InstanceNorm2d)
        assert net.layers["conv1"].in_channels == (3 if model == "mobilecyclegan" else 6)
    assert m.opt.dataset_mode == ("unaligned" if model == "mobilecyclegan" else "aligned")


@pytest.mark.parametrize("model,down1", [("mobilecyclegan", ("bound", 200.0)), ("mobilepix2pix", ("relu", 1.0))])
def test_down_conv_1_loss_rule(model, down1):
    opt = opts(model, "--mask", "--upconv_bound", "--upconv_coeff", "200", "--lambda_update_coeff", "2")
    net = create_model(opt, CPU).nets["G_A" if model == "mobilecyclegan" else "G"]
    layers, group = loss_types(net.structure(), opt)
    rules = {path: (kind, mult) for path, kind, mult in layers}
    assert rules["down1.mask"] == down1
    assert rules["stem.mask"] == rules["up1.mask"] == rules["up2.mask"] == ("bound", 200.0)
    assert len(group) == 10


@pytest.mark.parametrize("model,beta", [("mobilecyclegan", 0.5), ("mobilepix2pix", 0.25)])
def test_attention_target_weights(model, beta, monkeypatch):
    """The target of every hooked layer is 0.5 A(teacher G) + beta A(teacher D act2 on the student image)."""
    opt = options.parse("prune", ["--dataroot", UNALIGNED if model == "mobilecyclegan" else ALIGNED, "--model", model,
                                  "--gpu_ids", "-1", "--crop_size", "32", "--load_size", "32", "--ngf", "8",
                                  "--ndf", "8", "--lambda_attention_distill", "1", "--finetune"])
    torch.manual_seed(0)
    student = create_model(opt, CPU)
    teacher_model = create_model(opt, CPU)
    teacher = Teacher(dict(teacher_model.nets), dict(teacher_model.configs), "teacher")
    distiller = Distiller(opt, student, teacher)
    student.add_loss_term(distiller.loss)
    x = torch.randn(1, 3, 32, 32)
    student.set_input({"A": x, "B": x, "A_paths": ["a"], "B_paths": ["b"]})
    student.forward()
    seen = []
    monkeypatch.setattr(distill, "attention_loss", lambda target, s, normalize=True: seen.append(target) or
                        torch.zeros(()))
    student.generator_extra_loss()
    g, d, real, fake = ("G_A", "D_A", "real_A", "fake_B") if model == "mobilecyclegan" else ("G", "D", "real_A", "fake_B")
    with torch.no_grad():
        _, feats = teacher.nets[g].forward_features(getattr(student, real), ["down2"])
        d_in = getattr(student, fake) if model == "mobilecyclegan" else torch.cat((x, getattr(student, fake)), 1)
        d_map = attention_map(distill.discriminator_features(teacher.nets[d], d_in, ["act2"])["act2"])
    want = 0.5 * attention_map(feats["down2"]) + beta * d_map
    torch.testing.assert_close(seen[0].detach(), want, atol=1e-6, rtol=1e-5)
