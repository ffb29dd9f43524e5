"""MAC / parameter counts (util/flops.py) against the reference numbers of method.md §12.2 (the
channel-structure estimate against this counter: tests/models/test_structure.py)."""
import pytest
import torch
from torch import nn

from models.discriminator import NLayerDiscriminator
from models.families.resnet import ResnetGenerator
from models.families.unet import UnetGenerator
from util.flops import count_macs_params, format_count


def g_macs(macs):
    return round(macs / 1e9, 3)


@pytest.fixture(scope="module")
def resnet9():
    return ResnetGenerator(ngf=64, n_blocks=9)


def test_resnet9_reference(resnet9):
    macs, params = count_macs_params(resnet9, (1, 3, 256, 256))
    assert g_macs(macs) == 56.864 and macs == 56_864_276_480
    assert params == 11_378_179


def test_resnet9_at_64_px(resnet9):
    macs, params = count_macs_params(resnet9, (1, 3, 64, 64))
    assert g_macs(macs) == 3.554
    assert params == 11_378_179


def test_mask_resnet9_masks_cost_nothing():
    net = ResnetGenerator(ngf=64, n_blocks=9, mask=True)
    macs, params = count_macs_params(net, (1, 3, 256, 256))
    assert g_macs(macs) == 56.864 and params == 11_378_179
    # all parameters, masks included (23 masks, 5,248 weights): the counter leaves them out
    assert sum(p.numel() for p in net.parameters()) == 11_378_179 + 5_248


def test_unet256_reference():
    net = UnetGenerator(ngf=64, num_downs=8)
    macs, params = count_macs_params(net, (1, 3, 256, 256))
    assert g_macs(macs) == 18.152 and params == 54_413_955


def test_unet256_ngf48_reference():
    macs, params = count_macs_params(UnetGenerator(ngf=48, num_downs=8), (1, 3, 256, 256))
    assert g_macs(macs) == 10.298 and params == 30_611_427


def test_patchgan_references():
    macs, params = count_macs_params(NLayerDiscriminator(3, 64, norm="instance"), (1, 3, 256, 256))
    assert g_macs(macs) == 3.149 and params == 2_764_737
    macs, params = count_macs_params(NLayerDiscriminator(6, 128, norm="batch"), (1, 6, 256, 256))
    assert g_macs(macs) == 12.583 and params == 11_042_433


def test_counter_conventions():
    # conv: output elements x C_in x k x k, bias ignored; a transposed conv counts from its output
    conv = nn.Conv2d(3, 5, 3, padding=1)
    assert count_macs_params(conv, (1, 3, 8, 8)) == (5 * 8 * 8 * 3 * 9, 5 * 3 * 9 + 5)
    convt = nn.ConvTranspose2d(4, 2, 3, stride=2, padding=1, output_padding=1)
    assert count_macs_params(convt, (1, 4, 8, 8))[0] == 2 * 16 * 16 * 4 * 9
    # norms: 2x elements, 4x with affine parameters; activations free
    assert count_macs_params(nn.InstanceNorm2d(3), (1, 3, 4, 4)) == (2 * 48, 0)
    assert count_macs_params(nn.BatchNorm2d(3), (1, 3, 4, 4)) == (4 * 48, 6)
    assert count_macs_params(nn.Sequential(nn.ReLU(), nn.Dropout()), (1, 3, 4, 4)) == (0, 0)


def test_counter_restores_mode_and_weights():
    net = ResnetGenerator(ngf=4)
    net.train()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    count_macs_params(net, (1, 3, 32, 32))
    assert net.training
    assert all(torch.equal(v, net.state_dict()[k]) for k, v in before.items())
    net.eval()
    count_macs_params(net, (1, 3, 32, 32))
    assert not net.training


@pytest.mark.parametrize("value, digits, text", [
    (56_864_276_480, 2, "56.86G"),  # the original's "%.2fG" at the paper's sizes
    (11_378_179, 2, "11.38M"), (5_630_000, 2, "5.63M"), (28_310, 2, "28.31K"), (28_310, 3, "28.310K"),
    (512, 2, "512"), (0, 2, "0"), (999_999, 2, "1.00M"), (994_000, 2, "994.00K"), (1_000, 2, "1.00K")])
def test_format_count_picks_a_readable_unit(value, digits, text):
    assert format_count(value, digits) == text


def test_counts_at_tiny_sizes_are_not_written_as_zero():
    macs, params = count_macs_params(ResnetGenerator(ngf=8, n_blocks=2), (1, 3, 32, 32))
    assert macs < 1e7 and format_count(macs).endswith("M") and not format_count(macs).startswith("0.")
