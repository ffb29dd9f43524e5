"""Tests of models/structure.py: the shared channel-structure machinery, on a tiny hand-built family
with depthwise convolutions (the separable-conv block of method.md §5.5), and the MACs estimate of the
real families against the hook-based counter."""
import random

import pytest
import torch
from torch import nn

from models.families import Generator
from models.families.resnet import ResnetGenerator
from models.families.unet import UnetGenerator
from models.layers import ConvUnit, instance_norm, masks
from compress.mask_search import fold_raised
from compress.pruning import prune_generator
from models.structure import ChannelSet, ChannelStructure, ConvSpec, full_widths, resolve_widths
from tests.conftest import randomise
from util.flops import count_macs_params


class TinySeparable(Generator):
    """stem 3x3 -> ``x + sep2(sep1(x))`` -> head 3x3, each ``sep`` a depthwise 3x3 conv -> pointwise 1x1
    conv (bias) -> IN -> Mask, as the blocks of the mobile generators (§5.5). sep1's depthwise conv has a
    bias and an IN as there; sep2's has neither, so that a scale folded into it is visible at the output.
    The stream (stem and sep2 write it) is a channel group; sep1's hidden set is read by sep2."""

    family = "tiny_separable"

    def __init__(self, input_nc=3, output_nc=3, ngf=4, widths=None, mask=False):
        super().__init__()
        self.input_nc, self.output_nc, self.ngf, self.has_mask = input_nc, output_nc, ngf, mask
        self.widths = w = resolve_widths({"stream": 2 * ngf, "hidden": 3 * ngf}, widths, "a tiny separable net")
        s, h = w["stream"], w["hidden"]
        self.stem = ConvUnit(nn.Conv2d(input_nc, s, 3, padding=1, bias=True), instance_norm(s), mask, nn.ReLU())
        self.dw1 = ConvUnit(nn.Conv2d(s, s, 3, padding=1, groups=s, bias=True), instance_norm(s))
        self.pw1 = ConvUnit(nn.Conv2d(s, h, 1, bias=True), instance_norm(h), mask, nn.ReLU())
        self.dw2 = ConvUnit(nn.Conv2d(h, h, 3, padding=1, groups=h, bias=False))
        self.pw2 = ConvUnit(nn.Conv2d(h, s, 1, bias=True), instance_norm(s), mask)
        self.head = ConvUnit(nn.Conv2d(s, output_nc, 3, padding=1, bias=True), act=nn.Tanh())

    def forward(self, x):
        x = self.stem(x)
        return self.head(x + self.pw2(self.dw2(self.pw1(self.dw1(x)))))

    def structure(self):
        m = (lambda path: path if self.has_mask else None)  # noqa: E731
        convs = [
            ConvSpec("stem.conv", "stream", (None,), m("stem.mask"), "stem.norm", bias=True),
            ConvSpec("dw1.conv", "stream", ("stream",), norm="dw1.norm", depthwise=True, bias=True),
            ConvSpec("pw1.conv", "hidden", ("stream",), m("pw1.mask"), "pw1.norm", kernel=1, bias=True,
                     fold="consumer"),
            ConvSpec("dw2.conv", "hidden", ("hidden",), depthwise=True),
            ConvSpec("pw2.conv", "stream", ("hidden",), m("pw2.mask"), "pw2.norm", kernel=1, bias=True),
            ConvSpec("head.conv", None, ("stream",), bias=True),
        ]
        sets = {name: ChannelSet(name, width) for name, width in self.widths.items()}
        return ChannelStructure(self.input_nc, self.output_nc, sets, convs)

    def config(self):
        return {"family": self.family, "input_nc": self.input_nc, "output_nc": self.output_nc, "ngf": self.ngf,
                "widths": dict(self.widths), "mask": self.has_mask}


def tiny(seed=0, bound=0.0):
    net = randomise(TinySeparable(ngf=4, mask=True), seed, bound=bound).eval()
    with torch.no_grad():  # some stream channels off in both group masks, one hidden channel off
        net.stem.mask.mask_weight[:2] = -1.0
        net.pw2.mask.mask_weight[:3] = -1.0
        net.pw1.mask.mask_weight[5] = -1.0
    return net


def test_groups_are_sets_with_several_writers_and_depthwise_convs_do_not_count():
    structure = tiny().structure()
    assert structure.groups() == {"stream": ["stem.mask", "pw2.mask"]}
    assert [c.name for c in structure.writers("hidden")] == ["pw1.conv"]
    assert [c.name for c, _ in structure.consumers("hidden")] == ["dw2.conv", "pw2.conv"]


def test_a_depthwise_spec_must_read_and_write_one_set():
    with pytest.raises(ValueError, match="depthwise"):
        ConvSpec("dw.conv", "b", ("a",), depthwise=True)
    with pytest.raises(ValueError, match="affine-free norm"):
        ConvSpec("dw.conv", "a", ("a",), depthwise=True, bias=True)
    with pytest.raises(ValueError, match="role"):
        ConvSpec("c.conv", "a", (None,), role="resnet")


@pytest.mark.parametrize("seed", range(3))
def test_depthwise_pruning_equals_the_masked_net(seed):
    net = tiny(seed)
    slim, report = prune_generator(net, image_size=16)
    kept = report["widths"]
    assert kept["hidden"] < 12 and kept["stream"] < 8
    assert slim.dw2.conv.groups == kept["hidden"] and slim.dw2.conv.weight.shape == (kept["hidden"], 1, 3, 3)
    assert slim.dw1.conv.weight.shape == (kept["stream"], 1, 3, 3)
    x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        torch.testing.assert_close(slim(x), net(x), atol=1e-5, rtol=0)
    # the counted MACs of both nets are what the structure estimates from the widths alone
    structure = net.structure()
    assert (report["macs_after"], report["params_after"]) == structure.macs_params(kept, (16, 16))
    assert (report["macs_before"], report["params_before"]) == structure.macs_params(full_widths(structure),
                                                                                     (16, 16))


def test_folding_into_a_depthwise_consumer_keeps_the_function():
    b_old, b_new = 0.5, 0.2
    net = tiny(1, bound=b_old)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():  # the hidden mask crosses (b_new, b_old]; the group masks stay fully on
        for path, mask in masks(net).items():
            if path == "pw1.mask":
                mask.mask_weight.copy_(b_new + (b_old - b_new) * (1 - torch.rand(12, generator=g)))
            else:
                mask.mask_weight.fill_(0.9)
    x = torch.randn(2, 3, 16, 16, generator=g)
    with torch.no_grad():
        y0 = net(x)
    before = net.dw2.conv.weight.detach().clone()
    folded = fold_raised(net, net.structure(), lambda v: (v > b_new) & (v <= b_old))
    assert folded == {"pw1.mask": 12}
    assert not torch.equal(before, net.dw2.conv.weight)
    for mask in masks(net).values():
        mask.update(b_new)
    with torch.no_grad():
        torch.testing.assert_close(net(x), y0, atol=1e-5, rtol=0)
        net.dw2.conv.weight.copy_(before)  # without the fold the function changes: the test can see it
        assert (net(x) - y0).abs().max() > 1e-3


# ---------------------------------------------------------------- structure estimate == counter

def _both(net, size):
    structure = net.structure()
    return (count_macs_params(net, (1, net.input_nc, size, size)),
            structure.macs_params(dict(net.widths), (size, size)))


@pytest.mark.parametrize("kwargs,size", [
    (dict(ngf=64, n_blocks=9), 256), (dict(ngf=8, n_blocks=6), 64), (dict(ngf=8, mask=True), 64),
    (dict(ngf=8, mask=True, unmask_last_upconv=True), 32), (dict(ngf=16, input_nc=1, output_nc=3), 32)])
def test_structure_matches_counter_resnet(kwargs, size):
    net = ResnetGenerator(**kwargs)
    counted, estimated = _both(net, size)
    assert counted == estimated
    assert estimated == net.structure().macs_params(full_widths(net.structure()), (size, size))


@pytest.mark.parametrize("kwargs,size", [
    (dict(ngf=64, num_downs=8), 256), (dict(ngf=8, num_downs=6), 64), (dict(ngf=8, num_downs=5, mask=True), 32),
    (dict(ngf=4, num_downs=7, input_nc=1, output_nc=1), 128)])
def test_structure_matches_counter_unet(kwargs, size):
    net = UnetGenerator(**kwargs)
    counted, estimated = _both(net, size)
    assert counted == estimated
    assert estimated == net.structure().macs_params(full_widths(net.structure()), (size, size))


@pytest.mark.parametrize("seed", range(4))
def test_structure_matches_counter_pruned_resnet(seed):
    rng = random.Random(seed)
    n_blocks = rng.choice((6, 9))
    widths = {"stem": rng.randint(1, 8), "down1": rng.randint(1, 16), "stream": rng.randint(1, 32),
              "up1": rng.randint(1, 16), "up2": rng.randint(1, 8)}
    widths.update({f"blocks.{i}": rng.choice((0, 0, rng.randint(1, 32))) for i in range(n_blocks)})
    widths["blocks.0"] = 0
    widths["blocks.1"] = 3
    net = ResnetGenerator(ngf=8, n_blocks=n_blocks, widths=widths)
    assert len(net.blocks) == sum(1 for i in range(n_blocks) if widths[f"blocks.{i}"] > 0)
    assert net(torch.zeros(1, 3, 32, 32)).shape == (1, 3, 32, 32)
    counted, estimated = _both(net, 32)
    assert counted == estimated
    full = ResnetGenerator(ngf=8, n_blocks=n_blocks)
    assert estimated[0] < count_macs_params(full, (1, 3, 32, 32))[0]


@pytest.mark.parametrize("seed", range(4))
def test_structure_matches_counter_pruned_unet(seed):
    rng = random.Random(100 + seed)
    levels = rng.choice((5, 6))
    size = 2 ** levels
    full = UnetGenerator(ngf=8, num_downs=levels)
    widths = {name: rng.randint(1, w) for name, w in full.widths.items()}
    net = UnetGenerator(ngf=8, num_downs=levels, widths=widths)
    net.eval()
    assert net(torch.zeros(1, 3, size, size)).shape == (1, 3, size, size)
    counted, estimated = _both(net, size)
    assert counted == estimated
