"""The separable-convolution ("mobile") ResNet family: MACs of method.md §12.2, pruning and folding,
and the original code's layouts (§5.5, §10) against an independent re-statement of its forward."""
import pytest
import torch
from torch import nn

from models import legacy
from pipeline.checkpoint import load_generator
from models.layers import masks
from models.families.mobile_resnet import MobileResnetGenerator
from models.networks import init_weights
from compress.pruning import original_cfg, prune_generator
from models.structure import full_widths
from tests.conftest import randomise
from util.flops import count_macs_params


def mobile(ngf=8, mask=True, seed=0, bound=0, **kwargs):
    """The training initialisation (conv weights N(0, 0.02^2)), random biases and masks."""
    torch.manual_seed(seed)
    net = init_weights(MobileResnetGenerator(ngf=ngf, mask=mask, **kwargs))
    return randomise(net, seed, bound=bound if mask else None)


def group_masks(net):
    return [net.down2.mask] + [net.blocks[str(i)].conv2.mask for i in range(net.n_blocks)]


def assert_same(a, b, size=32, atol=1e-5, seed=0):
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        want, got = a.eval()(x), b.eval()(x)
    assert want.std() > 1e-3, "the test input gives a trivial output"
    torch.testing.assert_close(got, want, atol=atol, rtol=0)


# ------------------------------------------------------------------------------------------ MACs

@pytest.mark.parametrize("ngf,macs,params", [(64, 18_417_188_864, 1_987_075), (48, 10_641_997_824, 1_130_883),
                                             (32, 4_980_736_000, 514_307)])
def test_macs_and_params_of_the_reference_counts(ngf, macs, params):
    """method.md §12.2: 18.417 / 10.642 / 4.981 G MACs at 256 px; the mask variant counts the same, and
    the channel-count estimate the early stop uses agrees with the counter."""
    for mask in (False, True):
        net = MobileResnetGenerator(ngf=ngf, mask=mask)
        assert count_macs_params(net, (1, 3, 256, 256)) == (macs, params)
        structure = net.structure()
        assert structure.macs_params(full_widths(structure), (256, 256)) == (macs, params)
        assert round(macs / 1e9, 3) == {64: 18.417, 48: 10.642, 32: 4.981}[ngf]


# ------------------------------------------------------------------------------------------ pruning

def test_pruned_equals_masked_with_a_removed_block_and_a_pruned_stream_channel():
    net = mobile(ngf=8, seed=1)
    with torch.no_grad():
        net.blocks["4"].conv1.mask.mask_weight.fill_(-0.5)  # block 4 computes the identity
        for m in group_masks(net):
            m.mask_weight[[0, 5]] = -0.5  # stream channels 0 and 5 are off in every group mask
    slim, report = prune_generator(net, image_size=32)
    assert report["removed"] == ["blocks.4"] and "4" not in slim.blocks
    votes = torch.stack([m.mask_weight > 0 for m in group_masks(net)]).sum(0)
    assert slim.widths["stream"] == int((votes > 0).sum()) <= 30
    assert ((votes > 0) & (votes < 10)).any()  # kept stream channels with zeroed pointwise rows exist
    # the depthwise filters follow the channels they read
    assert slim.blocks["0"].conv1.conv.depthwise.weight.shape == (slim.widths["stream"], 1, 3, 3)
    assert slim.blocks["0"].conv2.conv.depthwise.weight.shape == (slim.widths["blocks.0"], 1, 3, 3)
    assert not masks(slim)
    assert_same(net, slim)
    macs, params = count_macs_params(slim, (1, 3, 32, 32))
    assert (report["macs_after"], report["params_after"]) == (macs, params)
    assert slim.structure().macs_params(slim.widths, (32, 32)) == (macs, params)


def test_fold_into_the_depthwise_filters_keeps_the_function():
    """A bound update raises the channels in (b_new, b_old] to scale 1; their old scale goes into the
    depthwise filters of the separable conv that reads them, exactly (up to float rounding)."""
    from compress.mask_search import fold_raised

    net = mobile(ngf=8, seed=2, bound=0.5)
    structure = net.structure()
    group = set(structure.groups().get("stream", []))
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for path in structure.mask_names():
            w = net.get_submodule(path).mask_weight
            u = torch.rand(w.shape, generator=g)
            # group masks stay fully on; the others cross into "on", are on, or are off
            crossing, on, off = 0.2 + 0.3 * (1 - u), 0.5 * (1.01 + u), -0.5 * (1.01 + u)
            pick = torch.randint(0, 4, w.shape, generator=g)
            w.copy_(on if path in group else torch.where(pick < 2, crossing, torch.where(pick == 2, on, off)))
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        y0 = net(x)
    dw_before = net.blocks["0"].conv2.conv.depthwise.weight.detach().clone()
    folded = fold_raised(net, structure, lambda v: (v > 0.2) & (v <= 0.5))
    assert "blocks.0.conv1.mask" in folded
    for m in masks(net).values():
        m.update(0.2)
    with torch.no_grad():
        y1 = net(x)
    torch.testing.assert_close(y1, y0, atol=1e-5, rtol=0)
    assert not torch.equal(dw_before, net.blocks["0"].conv2.conv.depthwise.weight)
    # without the fold the function changes: the depthwise conv's InstanceNorm does not hide the scale
    with torch.no_grad():
        net.blocks["0"].conv2.conv.depthwise.weight.copy_(dw_before)
        assert (net(x) - y0).abs().max() > 1e-4


# ------------------------------------------------------------------------------------------ the original layouts

class OriginalMask(nn.Module):
    """method.md §2.2 / §2.4: the soft step of ``mask_weight`` with width ``bound`` (hard at 0)."""

    def __init__(self, c):
        super().__init__()
        self.mask_weight = nn.Parameter(torch.randn(c) * 0.2)
        self.bound = nn.Parameter(torch.ones(1), requires_grad=False)

    def forward(self, x):
        w, b = self.mask_weight, float(self.bound)
        if b == 0:
            s = (w > 0).float()
        else:
            bp = max(b, 0.005)
            s = torch.where(w < -b, torch.zeros_like(w), torch.where(
                w <= 0, 0.5 * (1 + w / bp) ** 2, torch.where(w <= b, 1 - 0.5 * (1 - w / bp) ** 2, torch.ones_like(w))))
        return x * s.view(1, -1, 1, 1)


class OriginalSeparableConv(nn.Module):
    def __init__(self, c_in, c_out):
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(c_in, c_in, 3, groups=c_in), nn.InstanceNorm2d(c_in),
                                  nn.Conv2d(c_in, c_out, 1))

    def forward(self, x):
        return self.conv(x)


class OriginalBlock(nn.Module):
    """§5.5: mask ``[pad, sepconv, IN, Mask, ReLU, Dropout(0), pad, sepconv, IN, Mask]``, plain
    ``[pad, sepconv, IN, ReLU, Dropout(0), pad, sepconv, IN]``."""

    def __init__(self, stream, hidden, mask):
        super().__init__()
        m = [OriginalMask(hidden)] if mask else []
        m2 = [OriginalMask(stream)] if mask else []
        self.conv_block = nn.Sequential(
            nn.ReflectionPad2d(1), OriginalSeparableConv(stream, hidden), nn.InstanceNorm2d(hidden), *m,
            nn.ReLU(True), nn.Dropout(0.0), nn.ReflectionPad2d(1), OriginalSeparableConv(hidden, stream),
            nn.InstanceNorm2d(stream), *m2)

    def forward(self, x):
        return x + self.conv_block(x)


class OriginalMobileResnet(nn.Module):
    """The original's mobile ResNet-9 as one ``model`` Sequential (§5.1 / §5.2 indices, §5.5 blocks),
    built from a 23-entry cfg ``[c3, c7, R, (k_i, R) x 9, c24, c28]``; a block with ``k_i = 0`` is left out."""

    def __init__(self, cfg, mask):
        super().__init__()
        c3, c7, r, c24, c28 = cfg[0], cfg[1], cfg[2], cfg[21], cfg[22]
        mk = (lambda c: [OriginalMask(c)]) if mask else (lambda c: [])  # noqa: E731
        layers = [nn.ReflectionPad2d(3), nn.Conv2d(3, c3, 7), nn.InstanceNorm2d(c3), *mk(c3), nn.ReLU(True),
                  nn.Conv2d(c3, c7, 3, 2, 1), nn.InstanceNorm2d(c7), *mk(c7), nn.ReLU(True),
                  nn.Conv2d(c7, r, 3, 2, 1), nn.InstanceNorm2d(r), *mk(r), nn.ReLU(True)]
        layers += [OriginalBlock(r, cfg[3 + 2 * i], mask) for i in range(9) if cfg[3 + 2 * i] > 0]
        layers += [nn.ConvTranspose2d(r, c24, 3, 2, 1, output_padding=1), nn.InstanceNorm2d(c24), *mk(c24),
                   nn.ReLU(True), nn.ConvTranspose2d(c24, c28, 3, 2, 1, output_padding=1), nn.InstanceNorm2d(c28),
                   *mk(c28), nn.ReLU(True), nn.ReflectionPad2d(3), nn.Conv2d(c28, 3, 7), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def forward(self, x):
        return self.model(x)


def original(cfg, mask, seed=0, bound=0.0):
    torch.manual_seed(seed)
    net = OriginalMobileResnet(cfg, mask)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                m.weight.normal_(0, 0.1)
                m.bias.normal_(0, 0.1)
            if isinstance(m, OriginalMask):
                m.bound.fill_(bound)
    return net.eval()


FULL = [8, 16, 32] + [32, 32] * 9 + [16, 8]


def test_original_mask_keys_are_the_documented_ones():
    sd = original(FULL, mask=True).state_dict()
    for key in ("model.3.mask_weight", "model.7.bound", "model.11.mask_weight", "model.13.conv_block.1.conv.0.weight",
                "model.13.conv_block.1.conv.2.bias", "model.13.conv_block.3.mask_weight",
                "model.21.conv_block.7.conv.0.bias", "model.21.conv_block.9.mask_weight", "model.22.weight",
                "model.24.mask_weight", "model.26.weight", "model.28.mask_weight", "model.31.weight"):
        assert key in sd, key
    plain = original(FULL, mask=False).state_dict()
    for key in ("model.1.weight", "model.4.weight", "model.7.weight", "model.10.conv_block.1.conv.0.weight",
                "model.18.conv_block.6.conv.2.weight", "model.19.weight", "model.22.weight", "model.26.weight"):
        assert key in plain, key


@pytest.mark.parametrize("bound", [0.0, 0.3])
def test_original_search_checkpoint_gives_the_same_outputs(bound, tmp_path):
    ref_a, ref_b = original(FULL, True, seed=1, bound=bound), original(FULL, True, seed=2, bound=bound)
    config, state = legacy.convert_generator_state(ref_a.state_dict(), None, "G_A")
    assert config["family"] == "mobile_resnet" and config["mask"] and config["ngf"] == 8
    net = MobileResnetGenerator(**{k: v for k, v in config.items() if k != "family"})
    net.load_state_dict(state)
    assert_same(ref_a, net)
    # the whole file, as the original wrote it, through load_generator
    path = tmp_path / "model_best.pth"
    from models.discriminator import NLayerDiscriminator
    from tests.models.test_legacy import to_original_discriminator

    d = to_original_discriminator(NLayerDiscriminator(3, 8))
    torch.save({"G_A": ref_a.state_dict(), "G_B": ref_b.state_dict(), "D_A": d, "D_B": d, "epoch": 7,
                "fid": (70.0, 120.0)}, path)
    assert_same(ref_b, load_generator(str(path), "BtoA"))
    assert legacy.load_model_state(torch.load(path, weights_only=True), str(path))["model"] == "mobilecyclegan"


def test_original_pruned_checkpoint_with_a_removed_block_gives_the_same_outputs(tmp_path):
    cfg = [5, 11, 23] + [k for i in range(9) for k in ((0 if i == 3 else 7 + i), 23)] + [9, 4]
    ref = original(cfg, False, seed=3)
    from models.discriminator import NLayerDiscriminator
    from tests.models.test_legacy import to_original_discriminator

    d = to_original_discriminator(NLayerDiscriminator(6, 8, norm="instance"))
    path = tmp_path / "model_0.pth"
    # the mobile pix2pix stored (cfg, None) (§10)
    torch.save({"G": ref.state_dict(), "D": d, "epoch": 0, "cfg": (cfg, None), "fid": 30.0}, path)
    state = legacy.load_model_state(torch.load(path, weights_only=True), str(path))
    assert state["model"] == "mobilepix2pix" and state["stage"] == "pruned"
    net = load_generator(str(path))
    assert "3" not in net.blocks and net.widths["blocks.3"] == 0 and net.widths["stream"] == 23
    assert original_cfg(net.structure(), net.widths) == cfg
    assert_same(ref, net)


def test_pruning_an_original_search_checkpoint_matches_the_original_masked_net():
    ref = original(FULL, True, seed=4, bound=0.0)
    with torch.no_grad():
        ref.model[16].conv_block[3].mask_weight.fill_(-1)  # block 3 removed
    config, state = legacy.convert_generator_state(ref.state_dict(), None, "G")
    net = MobileResnetGenerator(**{k: v for k, v in config.items() if k != "family"})
    net.load_state_dict(state)
    slim, report = prune_generator(net)
    assert report["removed"] == ["blocks.3"]
    assert_same(ref, slim)


# ------------------------------------------------------------------------------------------ loss rules

@pytest.mark.parametrize("down1_role", ["bound", "own"])
@pytest.mark.parametrize("upconv_bound", [True, False])
def test_mask_loss_rules_of_method_3_4(down1_role, upconv_bound):
    """§3.4: mobile CycleGAN ("bound"): down-conv 1 always gets the bound loss, x --upconv_coeff with
    --upconv_bound; mobile pix2pix ("own"): --mask_loss_type, weight 1. Stem and up-conv 1 follow the
    "U" rule, the last up-conv gets bound x coeff, the stream masks the block loss."""
    from types import SimpleNamespace

    from compress.mask_losses import loss_types

    opt = SimpleNamespace(mask_loss_type="relu", upconv_bound=upconv_bound, upconv_relu=False, upconv_solo=False,
                          upconv_coeff=200.0, lambda_update_coeff=5.0)
    net = MobileResnetGenerator(ngf=4, mask=True, down1_role=down1_role)
    layers, group = loss_types(net.structure(), opt)
    rules = {path: (kind, mult) for path, kind, mult in layers}
    coeff = 200.0 if upconv_bound else 1.0
    u = "bound" if upconv_bound else "relu"
    assert rules["stem.mask"] == (u, coeff) and rules["up1.mask"] == (u, coeff)
    assert rules["down1.mask"] == (("bound", coeff) if down1_role == "bound" else ("relu", 1.0))
    assert rules["up2.mask"] == (("bound", 200.0) if upconv_bound else ("relu", 1.0))
    assert all(rules[f"blocks.{i}.conv1.mask"] == ("relu", 1.0) for i in range(9))
    assert group == ["down2.mask"] + [f"blocks.{i}.conv2.mask" for i in range(9)]
    assert net.config()["down1_role"] == down1_role
