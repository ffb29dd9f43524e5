"""Tests of compress/pruning.py: the pruned generator equals the masked one at bound 0 (prune.py:
tests/pipeline/test_prune.py)."""
import pytest
import torch

from compress.pruning import format_prune_table, original_cfg, prune_generator
from models.families.resnet import ResnetGenerator
from models.families.unet import UnetGenerator
from models.layers import masks
from models.structure import full_widths
from tests.conftest import randomise
from tests.helpers import assert_equivalent
from util.errors import UserError
from util.flops import format_count


# ------------------------------------------------------------------------------------------ helpers

def bound_zero(net):
    for m in masks(net).values():
        m.update(0)
    return net


def stream_masks(net):
    return [net.down2.mask] + [net.blocks[str(i)].conv2.mask for i in range(net.n_blocks)]


def stream_votes(net):
    return torch.stack([(m.mask_weight > 0) for m in stream_masks(net)]).sum(0)


def make_resnet(ngf=8, seed=0, unmask_last_upconv=False, removed=(2, 6), stream_off=(0, 3, 5)):
    torch.manual_seed(seed)
    net = randomise(ResnetGenerator(ngf=ngf, mask=True, unmask_last_upconv=unmask_last_upconv), seed, bound=0)
    with torch.no_grad():
        for i in removed:
            net.blocks[str(i)].conv1.mask.mask_weight.fill_(-0.5)
        for m in stream_masks(net):
            m.mask_weight[list(stream_off)] = -0.5
    return net


def make_unet(num_downs, ngf=8, seed=0, empty=("down3", "up4")):
    torch.manual_seed(seed)
    net = randomise(UnetGenerator(ngf=ngf, num_downs=num_downs, mask=True), seed, bound=0)
    with torch.no_grad():
        for name in empty:
            getattr(net, name).mask.mask_weight.fill_(-0.5)
    return net


# ------------------------------------------------------------------------------------------ ResNet

@pytest.mark.parametrize("ngf,size,unmask", [(8, 32, False), (16, 64, True)])
def test_resnet_pruned_equals_masked(ngf, size, unmask):
    net = make_resnet(ngf, seed=ngf, unmask_last_upconv=unmask)
    votes = stream_votes(net)
    # stream channels off in only some group masks exist and get zeroed rows, not removed
    partly = ((votes > 0) & (votes < 10)).sum()
    assert partly > 0
    slim, report = prune_generator(net, vote=0, image_size=size)

    assert report["removed"] == ["blocks.2", "blocks.6"]
    assert sorted(slim.blocks.keys()) == ["0", "1", "3", "4", "5", "7", "8"]
    assert slim.widths["stream"] == int((votes > 0).sum()) <= 4 * ngf - 3
    assert slim.widths["stem"] == int((net.stem.mask.mask_weight > 0).sum())
    assert slim.widths["up2"] == (ngf if unmask else int((net.up2.mask.mask_weight > 0).sum()))
    assert_equivalent(net, slim, size)
    # a stream channel kept by the vote but off in block 0's own mask: its conv2 row is zero
    kept = (votes > 0).nonzero().flatten()
    off0 = (net.blocks["0"].conv2.mask.mask_weight[kept] <= 0)
    assert off0.any()
    rows = slim.blocks["0"].conv2.conv.weight[off0]
    assert torch.count_nonzero(rows) == 0 and torch.count_nonzero(slim.blocks["0"].conv2.conv.bias[off0]) == 0


def test_resnet_empty_outer_layer_keeps_one_zeroed_channel():
    net = make_resnet(8, seed=3)
    with torch.no_grad():
        net.stem.mask.mask_weight.fill_(-0.1)
        net.up1.mask.mask_weight.fill_(-0.1)
    slim, report = prune_generator(net)
    assert slim.widths["stem"] == 1 and slim.widths["up1"] == 1
    assert torch.count_nonzero(slim.stem.conv.weight) == 0 and torch.count_nonzero(slim.stem.conv.bias) == 0
    layer = {row["set"]: row for row in report["layers"]}
    assert layer["stem"]["kept"] == 0 and layer["stem"]["width"] == 1
    assert_equivalent(net, slim, 32)


def test_resnet_empty_stream_keeps_one_zeroed_channel():
    net = make_resnet(8, seed=4, stream_off=range(32))
    slim, _ = prune_generator(net)
    assert slim.widths["stream"] == 1
    assert torch.count_nonzero(slim.down2.conv.weight) == 0
    assert_equivalent(net, slim, 32)


def test_vote_one_equivalent_when_no_channel_has_a_single_vote():
    net = make_resnet(8, seed=5)
    with torch.no_grad():
        group = stream_masks(net)
        single = (stream_votes(net) == 1).nonzero().flatten()
        for m in group[:2]:  # give every single-vote channel a second vote
            m.mask_weight[single] = m.mask_weight[single].abs() + 0.05
    votes = stream_votes(net)
    assert not (votes == 1).any() and (votes == 0).any()
    slim, report = prune_generator(net, vote=1)
    assert slim.widths["stream"] == int((votes > 1).sum())
    assert_equivalent(net, slim, 32)


def test_vote_removes_channels_one_mask_keeps_and_sets_the_cfg():
    net = make_resnet(8, seed=6)
    with torch.no_grad():
        for m in stream_masks(net)[1:]:
            m.mask_weight[[7, 9]] = -0.3
        net.down2.mask.mask_weight[[7, 9]] = 0.4  # kept by exactly one group mask
    votes = stream_votes(net)
    assert votes[7] == 1 and votes[9] == 1
    _, report0 = prune_generator(net, vote=0)
    _, report1 = prune_generator(net, vote=1)
    r0, r1 = int((votes > 0).sum()), int((votes > 1).sum())
    assert report0["widths"]["stream"] == r0 and report1["widths"]["stream"] == r1 and r1 <= r0 - 2
    cfg = report1["cfg"]
    assert len(cfg) == 23 and cfg[2] == r1 and all(cfg[4 + 2 * i] == r1 for i in range(9))
    assert cfg[3 + 2 * 2] == 0 and cfg[3 + 2 * 6] == 0  # the removed blocks
    assert cfg[3] == int((net.blocks["0"].conv1.mask.mask_weight > 0).sum())


def test_slim_net_is_a_plain_generator_of_its_widths():
    net = make_resnet(8, seed=7)
    slim, report = prune_generator(net, image_size=32)
    keys = list(slim.state_dict())
    assert not any("mask" in k or "bound" in k or "block_coeff" in k for k in keys)
    assert slim.config()["mask"] is False and not masks(slim)
    fresh = ResnetGenerator(**{k: v for k, v in slim.config().items() if k != "family"})
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(slim) == count(fresh)
    assert {k: v.shape for k, v in slim.state_dict().items()} == {k: v.shape for k, v in fresh.state_dict().items()}
    # the counted numbers agree with the channel-structure estimate
    structure = net.structure()
    assert (report["macs_after"], report["params_after"]) == structure.macs_params(slim.widths, (32, 32))
    assert (report["macs_before"], report["params_before"]) == structure.macs_params(full_widths(structure), (32, 32))
    assert report["macs_ratio"] == pytest.approx(report["macs_before"] / report["macs_after"])
    # and the slim net still trains: its parameters are leaf tensors that take gradients
    slim.train()
    slim(torch.randn(1, 3, 32, 32)).mean().backward()
    assert slim.stem.conv.weight.grad is not None


def test_prune_needs_masks():
    with pytest.raises(UserError, match="no masks"):
        prune_generator(ResnetGenerator(ngf=4))


# ------------------------------------------------------------------------------------------ U-Net

@pytest.mark.parametrize("num_downs,size", [(5, 32), (6, 64)])
def test_unet_pruned_equals_masked(num_downs, size):
    net = make_unet(num_downs, seed=num_downs)
    for m in masks(net).values():
        on = int((m.mask_weight > 0).sum())
        assert on < m.num_channels  # every layer is pruned
    slim, report = prune_generator(net, image_size=size)
    assert slim.widths["down3"] == 1 and slim.widths["up4"] == 1
    layer = {row["set"]: row for row in report["layers"]}
    assert layer["down3"]["kept"] == 0 and layer["up4"]["kept"] == 0
    for name in ("down3", "up4"):  # the kept channel is exactly zero: no weights, no norm affine
        unit = getattr(slim, name)
        assert torch.count_nonzero(unit.conv.weight) == 0
        assert torch.count_nonzero(unit.norm.weight) == 0 and torch.count_nonzero(unit.norm.bias) == 0
    for L in (1, 2, 4):
        assert slim.widths[f"down{L}"] == int((getattr(net, f"down{L}").mask.mask_weight > 0).sum())
    assert_equivalent(net, slim, size)
    assert report["macs_after"] < report["macs_before"] and report["params_after"] < report["params_before"]


def test_unet_slim_parameter_count():
    net = make_unet(5, seed=11)
    slim, _ = prune_generator(net)
    fresh = UnetGenerator(**{k: v for k, v in slim.config().items() if k != "family"})
    assert sum(p.numel() for p in slim.parameters()) == sum(p.numel() for p in fresh.parameters())
    assert {k: v.shape for k, v in slim.state_dict().items()} == {k: v.shape for k, v in fresh.state_dict().items()}


# ------------------------------------------------------------------------------------------ cfg lists and log table

def test_original_cfg_lists():
    res = ResnetGenerator(ngf=8, mask=True)
    widths = dict(full_widths(res.structure()), stem=3, down1=5, stream=7, up1=4, up2=2)
    widths.update({"blocks.1": 0, "blocks.4": 6})
    cfg = original_cfg(res.structure(), widths)
    assert cfg == [3, 5, 7, 32, 7, 0, 7, 32, 7, 32, 7, 6, 7, 32, 7, 32, 7, 32, 7, 32, 7, 4, 2]

    unet = UnetGenerator(ngf=8, num_downs=8, mask=True)
    structure = unet.structure()
    widths = {name: i + 1 for i, name in enumerate(structure.sets)}  # down1..down8, up8..up2
    filters, channels = original_cfg(structure, widths)
    assert filters == list(range(1, 16))
    # §5.4: channel_cfgs[k] = filter_cfgs[k] for k <= 7, filter_cfgs[14 - k] + filter_cfgs[k] after
    assert channels == [filters[k] if k <= 7 else filters[14 - k] + filters[k] for k in range(15)]


def test_format_prune_table_has_the_original_log_lines():
    net = make_resnet(8, seed=8)
    _, report = prune_generator(net, image_size=32)
    text = format_prune_table({"G_A": report})
    # the original's line, with a unit that keeps tiny counts readable (its "%.2fG" gave 0.00G here)
    assert report["macs_after"] < 1e7 and "0.00G" not in text and "0.01G" not in text
    assert f"netG_A | Params: {format_count(report['params_after'])} | MACs: {format_count(report['macs_after'])}" \
        in text
    assert f"{format_count(report['macs_before'], 3):>14}{format_count(report['macs_after'], 3):>14}" in text
    removed = report["macs_before"] - report["macs_after"]
    assert f"MACs Prune Ratio: {removed}/{report['macs_before']} (" in text
    assert "Params Prune Ratio: " in text and "--------------netG_A Prune Ratio--------------" in text
    assert f"{report['macs_ratio']:.2f}×" in text
    assert "blocks.2" in text and "(removed)" in text
