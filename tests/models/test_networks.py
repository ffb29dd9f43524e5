"""models/networks.py: the weight initialisation of convolutions, biases and norms, which leaves the
masks alone (the generators: tests/models/families/, the discriminator: test_discriminator.py)."""
import pytest
import torch
from torch import nn

from models.families.resnet import ResnetGenerator
from models.mask import Mask
from models.networks import build_discriminator, build_generator, generator_config, init_weights
from tests.models.conftest import discriminator_config, opts


def _stats(tensors):
    flat = torch.cat([t.detach().flatten() for t in tensors])
    return flat.mean().item(), flat.std().item(), flat.numel()


def test_init_convs_and_biases():
    torch.manual_seed(0)
    g = build_generator(generator_config(opts("--ngf", "8")))
    convs = [m for m in g.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    mean, std, n = _stats([c.weight for c in convs])
    assert n > 100_000 and abs(mean) < 1e-3 and std == pytest.approx(0.02, rel=0.05)
    assert all(torch.count_nonzero(c.bias) == 0 for c in convs if c.bias is not None)
    d = build_discriminator(discriminator_config(opts("--ndf", "8")))
    dconvs = [m for m in d.modules() if isinstance(m, nn.Conv2d)]
    assert _stats([c.weight for c in dconvs])[1] == pytest.approx(0.02, rel=0.05)
    assert all(torch.count_nonzero(c.bias) == 0 for c in dconvs)


def test_init_norms():
    torch.manual_seed(0)
    g = build_generator(generator_config(opts("--model", "pix2pix", "--ngf", "64")))
    norms = [m for m in g.modules() if isinstance(m, nn.BatchNorm2d)]
    mean, std, n = _stats([m.weight for m in norms])
    assert n > 4000 and mean == pytest.approx(1.0, abs=2e-3) and std == pytest.approx(0.02, rel=0.1)
    assert all(torch.count_nonzero(m.bias) == 0 for m in norms)
    d = build_discriminator(discriminator_config(opts("--model", "pix2pix", "--ndf", "8")))
    assert all(torch.count_nonzero(m.bias) == 0 for m in d.modules() if isinstance(m, nn.BatchNorm2d))


def test_init_leaves_masks_alone():
    torch.manual_seed(0)
    g = ResnetGenerator(ngf=16, mask=True)
    before = {k: v.clone() for k, v in g.state_dict().items() if k.endswith(("mask_weight", "bound"))}
    init_weights(g)
    after = g.state_dict()
    assert before and all(torch.equal(v, after[k]) for k, v in before.items())
    weights = [v for k, v in before.items() if k.endswith("mask_weight")]
    assert _stats(weights)[1] == pytest.approx(0.2, rel=0.15)
    assert all(torch.equal(v, torch.ones(1)) for k, v in before.items() if k.endswith("bound"))
    built = build_generator(generator_config(opts("--ngf", "16", "--mask")))
    masks = [m.mask_weight for m in built.modules() if isinstance(m, Mask)]
    assert len(masks) == 23 and _stats(masks)[1] == pytest.approx(0.2, rel=0.15)
