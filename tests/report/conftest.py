"""Helpers of the report/ tests: the Visualizer's options, visuals and mask-search records."""
from types import SimpleNamespace

import torch
from PIL import Image


def _opt(tmp_path, **overrides):
    opt = dict(display_id=0, display_server="http://127.0.0.1", display_port=8097, display_env="main",
               display_ncols=4, display_winsize=64, no_html=False, checkpoints_dir=str(tmp_path / "ckpt"),
               name="run", isTrain=True)
    opt.update(overrides)
    return SimpleNamespace(**opt)


def _visuals(size=8):
    g = torch.Generator().manual_seed(0)
    return {"real_A": torch.rand(1, 3, size, size, generator=g) * 2 - 1,
            "fake_B": torch.rand(1, 3, size, size, generator=g) * 2 - 1,
            "real_B": torch.rand(1, 1, size, size, generator=g) * 2 - 1}


def _records():
    widths = {"down1": 16, "down2": 32, "blocks.0.conv1": 64}
    return [
        {"step": 1.0, "bound": 1.0, "layers": {"down1": 16, "down2": 32, "blocks.0.conv1": 64}, "widths": widths},
        {"step": 1.5, "bound": 0.42, "layers": {"down1": 12, "down2": 20, "blocks.0.conv1": 30}, "widths": widths},
        {"step": 2.0, "bound": 0.0, "layers": {"down1": 10, "down2": 8, "blocks.0.conv1": 0}, "widths": widths},
    ]


def _size(path):
    with Image.open(path) as im:
        return im.size
