"""models/discriminator.py: the PatchGAN honours --ndf, takes the pair for pix2pix, and returns the
features distillation reads."""
import pytest
import torch
from torch import nn

from models.discriminator import NLayerDiscriminator
from models.networks import build_discriminator
from tests.models.conftest import discriminator_config, opts


@pytest.mark.parametrize("ndf", [8, 16, 64])
def test_patchgan_honours_ndf(ndf):
    d = build_discriminator(discriminator_config(opts("--ndf", str(ndf))))
    assert d.layers["conv1"].out_channels == ndf and d.layers["conv1"].in_channels == 3
    assert d.layers["conv4"].out_channels == 8 * ndf
    assert isinstance(d.layers["norm2"], nn.InstanceNorm2d)
    assert d(torch.zeros(1, 3, 64, 64)).shape == (1, 1, 6, 6)


def test_pix2pix_discriminator():
    d = build_discriminator(discriminator_config(opts("--model", "pix2pix", "--ndf", "16")))
    assert d.layers["conv1"].in_channels == 6 and d.layers["conv1"].out_channels == 16
    assert isinstance(d.layers["norm2"], nn.BatchNorm2d) and d.layers["conv2"].bias is None
    d.eval()
    assert d(torch.zeros(1, 6, 256, 256)).shape == (1, 1, 30, 30)


def test_discriminator_features():
    d = NLayerDiscriminator(ndf=4)
    x = torch.rand(1, 3, 64, 64)
    out, feats = d.forward_features(x, ("act2", "act4"))
    assert torch.equal(out, d(x)) and set(feats) == {"act2", "act4"}
    assert feats["act2"].shape == (1, 8, 16, 16) and feats["act4"].shape == (1, 32, 7, 7)
