"""report/image.py: tensors to 8-bit images, and images saved at an aspect ratio into new folders."""
import numpy as np
import pytest
import torch

from report.image import save_image, tensor2im
from tests.report.conftest import _size


def test_tensor2im_value_mapping():
    t = torch.tensor([-1.0, 0.0, 1.0, 2.0, -3.0, 0.5]).view(1, 1, 6).expand(3, 1, 6).clone()
    im = tensor2im(t)
    assert im.dtype == np.uint8 and im.shape == (1, 6, 3)
    assert im[0, :, 0].tolist() == [0, 127, 255, 255, 0, 191]  # (x+1)/2*255, clipped, truncated


def test_tensor2im_batch_and_grayscale():
    batch = torch.stack([torch.full((1, 2, 3), 1.0), torch.full((1, 2, 3), -1.0)])  # [2,1,2,3]
    im = tensor2im(batch)
    assert im.shape == (2, 3, 3)
    assert (im == 255).all()  # first image only, gray repeated to RGB
    with pytest.raises(ValueError):
        tensor2im(torch.zeros(2, 4, 4))


def test_save_image_aspect_ratio_and_folders(tmp_path):
    arr = np.zeros((4, 6, 3), dtype=np.uint8)
    wide = save_image(arr, tmp_path / "a" / "b" / "wide.png", aspect_ratio=2.0)
    tall = save_image(arr, tmp_path / "tall.png", aspect_ratio=0.5)
    same = save_image(arr, tmp_path / "same.png")
    assert _size(wide) == (12, 4)  # PIL size is (W, H)
    assert _size(tall) == (6, 8)
    assert _size(same) == (6, 4)
    assert sorted(p.name for p in (tmp_path / "a" / "b").iterdir()) == ["wide.png"]
