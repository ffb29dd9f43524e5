"""models/layers.py: a ConvUnit applies pad, conv, norm, mask and activation in this order and its dropout
last; instance_norm has no affine parameters or running statistics; masks() finds every Mask by path."""
import torch
from torch import nn

from models.layers import ConvUnit, instance_norm, masks


def test_conv_unit_applies_its_parts_in_order_and_the_dropout_last():
    torch.manual_seed(0)
    unit = ConvUnit(nn.Conv2d(2, 3, 3), norm=instance_norm(3), mask=True, act=nn.ReLU(), pad=nn.ReflectionPad2d(1),
                    dropout=nn.Dropout(0.5))
    x = torch.randn(1, 2, 6, 6)
    with torch.no_grad():
        expected = unit.act(unit.mask(unit.norm(unit.conv(unit.pad(x)))))
        assert expected.shape == (1, 3, 6, 6) and expected.abs().sum() > 0
        assert torch.equal(unit.forward_pre_dropout(x), expected)
        unit.eval()
        assert torch.equal(unit(x), expected)
        unit.train()
        assert not torch.equal(unit(x), expected)  # the dropout acts in training only
    plain = ConvUnit(nn.Conv2d(2, 3, 1))
    assert plain.mask is None and torch.equal(plain(x), plain.conv(x))


def test_instance_norm_has_no_affine_parameters_or_running_statistics():
    norm = instance_norm(5)
    assert isinstance(norm, nn.InstanceNorm2d) and norm.num_features == 5
    assert list(norm.parameters()) == [] and list(norm.buffers()) == []


def test_masks_finds_every_mask_by_its_module_path():
    net = nn.Sequential(ConvUnit(nn.Conv2d(3, 4, 3), mask=True), ConvUnit(nn.Conv2d(4, 4, 3)),
                        nn.ModuleDict({"up": ConvUnit(nn.Conv2d(4, 2, 3), mask=True)}))
    found = masks(net)
    assert list(found) == ["0.mask", "2.up.mask"]
    assert found["0.mask"] is net[0].mask and found["2.up.mask"] is net[2]["up"].mask
    assert masks(nn.Conv2d(1, 1, 1)) == {}
