"""models/families/unet.py: the U-Net's depth follows the crop size, its dropout, and the distillation
features taken before the dropout."""
import pytest
import torch
from torch import nn

from models.families.unet import UnetGenerator
from models.networks import build_generator, generator_config
from tests.models.conftest import opts


def n_levels(unet):
    return sum(1 for L in range(1, 20) if hasattr(unet, f"down{L}"))


@pytest.mark.parametrize("crop,levels", [(256, 8), (128, 7), (64, 6), (32, 5)])
def test_unet_depth_follows_crop_size(crop, levels):
    opt = opts("--model", "pix2pix", "--ngf", "4", "--crop_size", str(crop), "--load_size", str(crop))
    g = build_generator(generator_config(opt))
    assert isinstance(g, UnetGenerator) and g.num_downs == levels == n_levels(g)
    x = torch.rand(1, 3, crop, crop) * 2 - 1
    g.eval()
    y = g(x)
    assert y.shape == x.shape and y.abs().max() <= 1


def test_unet_default_is_8_levels():
    assert opts("--model", "pix2pix").netG == "unet_256"
    g = UnetGenerator(ngf=2)
    assert n_levels(g) == 8
    assert g.down1.conv.out_channels == 2 and g.down4.conv.out_channels == 16 and g.down8.conv.out_channels == 16
    assert sum(isinstance(m, nn.Dropout) for m in g.modules()) == 3
    assert not any(isinstance(m, nn.Dropout) for m in UnetGenerator(ngf=2, use_dropout=False).modules())


def test_unet_up_features_are_taken_before_dropout():
    """The distillation feature ``up{L}`` is the unit's output before its dropout (the original hooked
    the BatchNorm); dropout still acts on the generator's output."""
    torch.manual_seed(0)
    net = UnetGenerator(3, 3, ngf=8, num_downs=6).eval()
    assert net.up5.dropout is not None
    x = torch.randn(1, 3, 64, 64)
    out_eval, feats_eval = net.forward_features(x, ("up5",))
    net.up5.dropout.train()
    out_drop, feats_drop = net.forward_features(x, ("up5",))
    assert torch.equal(feats_drop["up5"], feats_eval["up5"])
    assert not torch.equal(out_drop, out_eval)
