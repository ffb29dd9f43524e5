"""models/families/layout.py: the helpers that read the original DMAD code's generator layout: state dicts
without thop counters or a DataParallel prefix, module paths renamed by a family's table, refusals that
name the layout, and checkpoint metadata made plain."""
import numpy as np
import pytest
import torch

from models.families import layout
from models.families.resnet import ResnetGenerator
from util.errors import UserError


def test_clean_drops_thop_counters_and_the_dataparallel_prefix():
    sd = {"module.model.1.weight": torch.ones(2), "model.1.total_ops": torch.zeros(1),
          "model.1.total_params": torch.zeros(1), "model.2.bound": torch.tensor(0.5)}
    out = layout.clean(sd, "x.pth")
    assert list(out) == ["model.1.weight", "model.2.bound"]
    assert out["model.2.bound"].shape == (1,) and out["model.2.bound"].item() == 0.5  # 0-dim bounds of old files
    for bad in ({}, {"model.1.weight": 1.0}, [torch.ones(1)]):
        with pytest.raises(UserError, match="x.pth is not a state dict of tensors"):
            layout.clean(bad, "x.pth")


def test_rename_maps_module_paths_and_names_an_unknown_entry():
    sd = {"model.1.weight": torch.ones(1), "model.1.bias": torch.zeros(1)}
    assert list(layout.rename(sd, [("stem.conv", "model.1")], "x.pth")) == ["stem.conv.weight", "stem.conv.bias"]
    with pytest.raises(UserError, match="x.pth: unexpected entry 'model.1.weight'; not a generator layout"):
        layout.rename(sd, [("stem.conv", "model.2")], "x.pth")


def test_require_and_check_fits_name_the_layout():
    with pytest.raises(UserError, match="x.pth: no 'model.7.weight' entry; not a generator layout"):
        layout.require({}, "model.7.weight", "x.pth")
    net = ResnetGenerator(ngf=4, n_blocks=2)
    layout.check_fits(ResnetGenerator, net.config(), net.state_dict(), "x.pth")  # fits: nothing raised
    state = dict(net.state_dict())
    state.pop(next(iter(state)))
    with pytest.raises(UserError, match="do not form a ResnetGenerator"):
        layout.check_fits(ResnetGenerator, net.config(), state, "x.pth")


def test_plain_given_and_has_masks():
    assert layout.plain(torch.tensor(3.5)) == 3.5 and layout.plain(torch.tensor([1, 2])) == [1, 2]
    assert layout.plain((np.int64(4), np.float32(0.5), None, "x", True)) == [4, 0.5, None, "x", True]
    assert type(layout.plain(np.int64(4))) is int and type(layout.plain(np.float64(0.5))) is float
    assert not layout.given(None) and not layout.given((None, None)) and layout.given(([8, 16], None))
    assert layout.has_masks({"down1.mask.mask_weight": torch.ones(2)})
    assert not layout.has_masks({"down1.conv.weight": torch.ones(2)})
