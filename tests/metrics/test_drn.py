"""metrics/drn.py: the DRN-D-105 segmenter has the layout of the published Cityscapes weights, a
bilinear upsampling and log-softmax output, and loads from a file."""
import pytest
import torch
from torch import nn

from metrics import drn as drn_mod
from tests.metrics.conftest import SIZE
from util.errors import UserError


def test_drn_layout_matches_the_published_cityscapes_weights():
    net = drn_mod.DRNSeg()
    state = net.state_dict()
    assert len(net.base) == 9  # layer0 ... layer8
    expected_shapes = {
        "base.0.0.weight": (16, 3, 7, 7), "base.1.0.weight": (16, 16, 3, 3), "base.2.0.weight": (32, 16, 3, 3),
        "base.3.0.downsample.0.weight": (256, 32, 1, 1), "base.4.3.conv3.weight": (512, 128, 1, 1),
        "base.5.22.conv2.weight": (256, 256, 3, 3), "base.6.0.downsample.1.running_var": (2048,),
        "base.7.0.weight": (512, 2048, 3, 3), "base.8.1.bias": (512,), "seg.weight": (19, 512, 1, 1),
        "seg.bias": (19,), "up.weight": (19, 1, 16, 16)}
    for key, shape in expected_shapes.items():
        assert tuple(state[key].shape) == shape, key
    assert "base.5.23.conv1.weight" not in state and "up.bias" not in state
    convs = {name: m for name, m in net.named_modules() if isinstance(m, nn.Conv2d)}
    assert convs["base.5.0.conv2"].dilation == (2, 2) and convs["base.6.1.conv2"].dilation == (4, 4)
    assert convs["base.7.0"].dilation == (2, 2) and convs["base.4.0.conv2"].stride == (2, 2)


def test_drn_up_is_bilinear_and_output_is_log_softmax():
    net = drn_mod.DRNSeg().eval()
    with torch.no_grad():
        flat = net.up(torch.ones(1, 19, 4, 4))
        assert flat.shape == (1, 19, 32, 32)
        assert torch.allclose(flat[..., 4:-4, 4:-4], torch.ones(1), atol=1e-6)  # constant stays constant
        out = net(torch.randn(2, 3, SIZE, SIZE))
    assert out.shape == (2, 19, SIZE, SIZE)
    assert torch.allclose(out.exp().sum(1), torch.ones(2, SIZE, SIZE), atol=1e-5)


def test_load_drn(tmp_path, drn_file):
    with pytest.raises(UserError, match="--drn_path"):
        drn_mod.load_drn(str(tmp_path / "missing.pth"), "cpu")
    assert drn_mod.load_drn(str(tmp_path / "missing.pth"), "cpu", explicit=False) is None
    net = drn_mod.load_drn(drn_file, "cpu")
    assert not net.training and not any(p.requires_grad for p in net.parameters())
    state = torch.load(drn_file, weights_only=True)
    assert torch.equal(net.base[5][7].conv2.weight, state["base.5.7.conv2.weight"])
    wrapped = tmp_path / "dataparallel.pth"
    torch.save({"module." + k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}, wrapped)
    assert torch.equal(drn_mod.load_drn(str(wrapped), "cpu").seg.weight, state["seg.weight"])
