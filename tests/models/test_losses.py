"""models/losses.py: the GAN losses' values, the gradient penalty, and the penalty in the models'
discriminator losses for --gan_mode wgangp only."""
import math

import pytest
import torch
from torch import nn

from models import create_model
from models.discriminator import NLayerDiscriminator
from models.losses import GANLoss, gradient_penalty
from models.networks import init_weights
from tests.models.conftest import opts


def test_lsgan_and_vanilla_values():
    p = torch.full((2, 1, 3, 3), 0.5)
    ls = GANLoss("lsgan")
    assert ls(p, True).item() == pytest.approx(0.25) and ls(p, False).item() == pytest.approx(0.25)
    assert ls(torch.ones(4), True).item() == 0 and ls(torch.zeros(4), False).item() == 0
    assert ls(p, True, for_discriminator=False).item() == pytest.approx(0.25)
    va = GANLoss("vanilla")
    zero = torch.zeros(2, 1, 3, 3)
    assert va(zero, True).item() == pytest.approx(math.log(2)) and va(zero, False).item() == pytest.approx(math.log(2))
    assert va(torch.full((3,), 2.0), True).item() == pytest.approx(math.log(1 + math.exp(-2)))
    assert va(torch.full((3,), 2.0), False).item() == pytest.approx(math.log(1 + math.exp(2)))


def test_hinge_and_wgangp_values():
    p = torch.tensor([0.5, -2.0, 3.0])
    hinge = GANLoss("hinge")
    assert hinge(p, True).item() == pytest.approx((0.5 + 3.0 + 0) / 3)
    assert hinge(p, False).item() == pytest.approx((1.5 + 0 + 4.0) / 3)
    assert hinge(p, True, for_discriminator=False).item() == pytest.approx(-p.mean().item())
    wgan = GANLoss("wgangp")
    assert wgan(p, True).item() == pytest.approx(-p.mean().item())
    assert wgan(p, False).item() == pytest.approx(p.mean().item())
    assert wgan(p, True, for_discriminator=False).item() == pytest.approx(-p.mean().item())


def test_unknown_gan_mode():
    with pytest.raises(ValueError):
        GANLoss("nonsense")


def test_gradient_penalty_is_positive_and_differentiable():
    torch.manual_seed(0)
    d = init_weights(NLayerDiscriminator(ndf=4))
    real, fake = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    gp = gradient_penalty(d, real, fake)
    assert gp.dim() == 0 and gp.item() > 0 and gp.requires_grad
    gp.backward()
    # the head's bias does not change the input gradient; every weight does
    grads = [m.weight.grad for m in d.modules() if isinstance(m, nn.Conv2d)]
    assert len(grads) == 5 and all(g is not None and g.abs().sum() > 0 for g in grads)
    assert gradient_penalty(d, real, fake, weight=0.0).item() == 0


@pytest.mark.parametrize("model", ["cyclegan", "pix2pix"])
@pytest.mark.parametrize("gan_mode", ["wgangp", "lsgan"])
def test_discriminator_loss_includes_the_penalty_only_for_wgangp(model, gan_mode, monkeypatch):
    calls = []

    def fake_penalty(netD, real, fake, weight=10.0):
        calls.append(real.shape)
        return torch.tensor(123.0)

    import models.cyclegan_model
    import models.pix2pix_model

    monkeypatch.setattr(models.cyclegan_model, "gradient_penalty", fake_penalty)
    monkeypatch.setattr(models.pix2pix_model, "gradient_penalty", fake_penalty)
    opt = opts("--model", model, "--ngf", "4", "--ndf", "4", "--crop_size", "32", "--load_size", "32",
               "--gan_mode", gan_mode)
    torch.manual_seed(0)
    m = create_model(opt, torch.device("cpu"))
    batch = {"A": torch.rand(1, 3, 32, 32) * 2 - 1, "B": torch.rand(1, 3, 32, 32) * 2 - 1,
             "A_paths": ["a"], "B_paths": ["b"]}
    m.set_input(batch)
    m.optimize_parameters()
    penalty = 123.0 if gan_mode == "wgangp" else 0.0
    if model == "cyclegan":
        assert len(calls) == (2 if gan_mode == "wgangp" else 0)  # D_A and D_B
    else:
        assert len(calls) == (1 if gan_mode == "wgangp" else 0)
        base = 0.5 * (m.loss_D_real.item() + m.loss_D_fake.item())
        assert m.loss_D.item() == pytest.approx(base + penalty, rel=1e-5)
