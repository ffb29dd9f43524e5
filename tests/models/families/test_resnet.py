"""models/families/resnet.py: the ResNet generator built from the options, and its masks."""
import pytest
import torch

from models.families.resnet import ResnetGenerator
from models.mask import Mask
from models.networks import build_generator, generator_config
from tests.models.conftest import opts


@pytest.mark.parametrize("netG,blocks", [("resnet_9blocks", 9), ("resnet_6blocks", 6)])
def test_resnet_generator_from_options(netG, blocks):
    g = build_generator(generator_config(opts("--netG", netG, "--ngf", "8")))
    assert isinstance(g, ResnetGenerator) and len(g.blocks) == blocks == g.n_blocks
    assert g.stem.conv.out_channels == 8 and g.down2.conv.out_channels == 32
    assert g.blocks["0"].conv1.conv.in_channels == 32
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    y = g(x)
    assert y.shape == x.shape and y.abs().max() <= 1


def test_resnet_generator_mask_count():
    assert sum(isinstance(m, Mask) for m in ResnetGenerator(ngf=4, mask=True).modules()) == 23
    assert sum(isinstance(m, Mask) for m in ResnetGenerator(ngf=4, mask=True, unmask_last_upconv=True).modules()) == 22
    assert not any(isinstance(m, Mask) for m in ResnetGenerator(ngf=4).modules())
