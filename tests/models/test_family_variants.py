"""Tests of the generator variants pytorch-CycleGAN-and-pix2pix checkpoints need (models/families/):
the ResNet with BatchNorms and / or dropout, the U-Net with InstanceNorms. Their plain, mask and
pruned forms come from the same code as the defaults': the pruned net equals the masked one, the
structure's MACs estimate equals the counted MACs, a folded mask scale keeps the function, and the
defaults' configs name neither argument (every existing config stays as it was)."""
import pytest
import torch
from torch import nn

from models import families
from models.families.resnet import ResnetGenerator
from models.families.unet import UnetGenerator
from models.layers import masks
from compress.mask_search import fold_raised
from compress.pruning import prune_generator
from models.structure import full_widths
from tests.conftest import randomise
from util.errors import UserError
from util.flops import count_macs_params

VARIANTS = {
    "resnet batch": (lambda **k: ResnetGenerator(ngf=4, n_blocks=6, norm="batch", **k), 32),
    "resnet batch dropout": (lambda **k: ResnetGenerator(ngf=4, n_blocks=6, norm="batch", use_dropout=True, **k), 32),
    "resnet instance dropout": (lambda **k: ResnetGenerator(ngf=4, n_blocks=6, use_dropout=True, **k), 32),
    "unet instance": (lambda **k: UnetGenerator(ngf=4, num_downs=6, norm="instance", **k), 64),
    "unet instance no dropout": (lambda **k: UnetGenerator(ngf=4, num_downs=5, norm="instance", use_dropout=False,
                                                           **k), 32),
}


def masked(make, seed):
    """The mask form with random weights, about half of every mask's channels off, at bound 0."""
    torch.manual_seed(seed)
    return randomise(make(mask=True), seed, bound=0)


def output(net, x):
    with torch.no_grad():
        return net.eval()(x)


def test_defaults_configs_name_neither_argument():
    assert "norm" not in ResnetGenerator(ngf=4).config() and "use_dropout" not in ResnetGenerator(ngf=4).config()
    assert "norm" not in UnetGenerator(ngf=4, num_downs=5).config()
    assert "norm" not in families.build(families.get("mobile_resnet")(ngf=4).config()).config()
    assert ResnetGenerator(ngf=4, norm="batch", use_dropout=True).config()["norm"] == "batch"
    assert UnetGenerator(ngf=4, num_downs=5, norm="instance").config()["norm"] == "instance"
    with pytest.raises(ValueError, match="unknown norm 'none'"):
        ResnetGenerator(ngf=4, norm="none")
    with pytest.raises(ValueError, match="unknown norm 'group'"):
        UnetGenerator(ngf=4, num_downs=5, norm="group")


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_variant_layers_and_config_round_trip(variant):
    make, _ = VARIANTS[variant]
    net = make()
    batch = "batch" in variant
    norms = [m for m in net.modules() if isinstance(m, (nn.BatchNorm2d, nn.InstanceNorm2d))]
    assert norms and all(isinstance(m, nn.BatchNorm2d if batch else nn.InstanceNorm2d) for m in norms)
    convs = [m for m in net.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    # a conv has a bias exactly when no BatchNorm follows it: the output convs have one always
    assert sum(m.bias is not None for m in convs) == (1 if batch else len(convs))
    assert any(isinstance(m, nn.Dropout) for m in net.modules()) is ("no dropout" not in variant and (
        "unet" in variant or "dropout" in variant))
    again = families.build(net.config())
    assert again.config() == net.config() and full_widths(net.structure()) == net.widths
    mask_form = make(mask=True)
    assert mask_form.structure().mask_names() == list(masks(mask_form)) and not masks(net)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_pruned_variant_equals_its_masked_form(variant):
    make, size = VARIANTS[variant]
    net = masked(make, seed=3)
    slim, report = prune_generator(net, image_size=size)
    assert slim.config() == dict(net.config(), widths=slim.widths, mask=False)
    assert report["macs_after"] < report["macs_before"]
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(0))
    want = output(net, x)
    assert want.std() > 1e-3
    torch.testing.assert_close(output(slim, x), want, atol=1e-5, rtol=0)
    # the MACs estimate of the structure is the counted MACs, for the full and the pruned net
    for each in (make(), slim):
        counted = count_macs_params(each, (1, 3, size, size))
        assert counted == each.structure().macs_params(dict(each.widths), (size, size))


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_folding_a_scale_keeps_the_function(variant):
    """Scales of the channels crossing (b_new, b_old] fold into the weights (into the BatchNorm, the
    conv, or the convs reading an InstanceNorm'd set); the masks then jump to 1 and the output stays."""
    make, size = VARIANTS[variant]
    b_old, b_new = 0.5, 0.2
    net = masked(make, seed=5)
    g = torch.Generator().manual_seed(5)
    structure = net.structure()
    with torch.no_grad():
        for path, mask in masks(net).items():
            mask.update(b_old)
            if structure.masked_convs()[structure.mask_names().index(path)].fold is None:
                mask.mask_weight.fill_(0.9)  # a channel group's masks have no exact fold
            else:
                mask.mask_weight.copy_(b_new + (b_old - b_new) * (1 - torch.rand(mask.num_channels, generator=g)))
    x = torch.randn(2, 3, size, size, generator=g)
    before = output(net, x)
    folded = fold_raised(net, structure, lambda v: (v > b_new) & (v <= b_old))
    assert folded and all(count > 0 for count in folded.values())
    for mask in masks(net).values():
        mask.update(b_new)
    torch.testing.assert_close(output(net, x), before, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_the_original_layout_cannot_hold_the_variants(variant):
    make, _ = VARIANTS[variant]
    with pytest.raises(UserError, match="the original DMAD code has no such"):
        make().to_original()
