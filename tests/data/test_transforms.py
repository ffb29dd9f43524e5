"""data/transforms.py: the preprocessing modes, resize, crop and flip, grayscale, and the sides rounded
to the generator's multiple."""
import os

import numpy as np
import pytest
import torch
from PIL import Image

import data
from data.transforms import Preprocess, to_tensor
from tests.data.conftest import make_opt
from util.errors import UserError


def flipped(t):
    return torch.flip(t, dims=[2])


TRAIN_SHAPES = {  # trainA images are 51 wide, 62 high; load 36, crop 32
    "resize_and_crop": (32, 32),
    "crop": (32, 32),
    # height int(max(36 * 62 / 51, 32)) = 43, rounded to a multiple of 4 the generator accepts
    "scale_width": (44, 36),
    "scale_width_and_crop": (32, 32),
    "none": (64, 52),  # 62/4 = 15.5 -> 16 (half to even), 51/4 = 12.75 -> 13
}
EVAL_SHAPES = {
    "resize_and_crop": (32, 32),
    "crop": (32, 32),
    "scale_width": (40, 32),  # height int(max(32 * 62 / 51, 32)) = 38 -> 40 (multiple of 4)
    "scale_width_and_crop": (40, 32),
    "none": (64, 52),
}


@pytest.mark.parametrize("mode", sorted(TRAIN_SHAPES))
def test_preprocess_output_sizes(unaligned_root, mode):
    opt = make_opt(unaligned_root, preprocess=mode)
    item = data.create_dataset(opt)[0]
    assert tuple(item["A"].shape) == (3, *TRAIN_SHAPES[mode])
    assert item["A"].dtype == torch.float32
    assert -1.0 <= item["A"].min() and item["A"].max() <= 1.0
    evaluation = data.create_dataset(opt, phase="train", train=False)[0]
    assert tuple(evaluation["A"].shape) == (3, *EVAL_SHAPES[mode])


def test_resize_is_pil_bicubic_and_normalised(unaligned_root):
    """Evaluation with resize_and_crop is a plain bicubic resize to crop_size², scaled to [-1, 1]."""
    ds = data.create_dataset(make_opt(unaligned_root), train=False)
    item = ds[1]
    img = Image.open(item["A_paths"]).convert("RGB").resize((32, 32), Image.Resampling.BICUBIC)
    expected = torch.from_numpy(np.array(img)).permute(2, 0, 1).float() / 255 * 2 - 1
    assert torch.allclose(item["A"], expected, atol=1e-6)
    assert item["A"].min() < -0.5 and item["A"].max() > 0.5


def test_crop_is_a_window_of_the_resized_image(unaligned_root):
    opt = make_opt(unaligned_root, no_flip=True)
    item = data.create_dataset(opt)[0]
    full = to_tensor(Image.open(item["A_paths"]).convert("RGB").resize((36, 36), Image.Resampling.BICUBIC))
    windows = [full[:, y:y + 32, x:x + 32] for y in range(5) for x in range(5)]
    assert sum(torch.equal(item["A"], w) for w in windows) >= 1


def test_no_flip_and_flip(unaligned_root):
    """preprocess none keeps the whole image, so a flip is exactly a mirrored tensor."""
    path = sorted(os.listdir(unaligned_root / "trainA"))[0]
    plain = to_tensor(Image.open(unaligned_root / "trainA" / path).convert("RGB").resize((52, 64), Image.Resampling.BICUBIC))
    still = data.create_dataset(make_opt(unaligned_root, preprocess="none", no_flip=True))
    flips = data.create_dataset(make_opt(unaligned_root, preprocess="none"))
    seen = []
    for epoch in range(1, 17):
        still.set_epoch(epoch)
        flips.set_epoch(epoch)
        assert torch.equal(still[0]["A"], plain)
        a = flips[0]["A"]
        assert torch.equal(a, plain) or torch.equal(a, flipped(plain))
        seen.append(torch.equal(a, flipped(plain)))
    assert any(seen) and not all(seen)


def test_preprocess_rejects_crop_larger_than_load():
    with pytest.raises(UserError, match="--crop_size 40 is larger than --load_size 36"):
        Preprocess("resize_and_crop", 36, 40)
    with pytest.raises(UserError, match="--preprocess 'zoom'"):
        Preprocess("zoom", 36, 32)


def test_grayscale_is_luma_of_the_rgb(unaligned_root):
    opt = dict(preprocess="none", no_flip=True)
    rgb = data.create_dataset(make_opt(unaligned_root, **opt))[0]
    gray = data.create_dataset(make_opt(unaligned_root, input_nc=1, **opt))[0]
    expected = to_tensor(Image.open(gray["A_paths"]).convert("L").resize((52, 64), Image.Resampling.BICUBIC))
    assert torch.equal(gray["A"], expected)
    assert torch.equal(rgb["B"], gray["B"])  # the B side is untouched


def test_uncropped_sizes_follow_the_generator_multiple(tmp_path):
    """Without a crop, image sides are rounded to the multiple the generator needs (4 for a ResNet,
    2^levels for a U-Net), so portrait or odd-sized images never break a forward pass."""
    from data.transforms import Preprocess

    assert Preprocess("scale_width", 36, 32, train=True).output_size((51, 62)) == (36, 44)
    assert Preprocess("none", 36, 32, train=True, multiple=32).output_size((51, 62)) == (64, 64)
    assert Preprocess("scale_width", 40, 32, train=False, multiple=32).output_size((30, 70)) == (32, 64)
