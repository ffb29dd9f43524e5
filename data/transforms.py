"""Image preprocessing with the geometry of pytorch-CycleGAN-and-pix2pix (``--preprocess``), done with PIL.

Randomness is split from the transform: :meth:`Preprocess.sample` draws the crop position and the flip
from a caller-supplied ``random.Random``, and :meth:`Preprocess.apply` is a pure function of the image
and those parameters. That lets aligned pairs share one draw and makes every item reproducible from
its (seed, epoch, index) alone.
"""
from typing import NamedTuple

import numpy as np
import torch
from PIL import Image

from util.errors import UserError

MODES = ("resize_and_crop", "crop", "scale_width", "scale_width_and_crop", "none")

_BICUBIC = Image.Resampling.BICUBIC
# Uncropped images get sides rounded to multiples of this (upstream's make_power_2(base=4) for
# --preprocess none); the generator's own multiple (opt.size_multiple, 2^levels for a U-Net) wins.
DEFAULT_MULTIPLE = 4


class Params(NamedTuple):
    """Random choices for one image: crop corner (x, y) in the resized image, horizontal flip."""
    x: int
    y: int
    flip: bool


def check_crop(mode, load_size, crop_size):
    """UserError when ``--preprocess mode`` resizes to ``load_size`` and then crops a larger
    ``crop_size`` (px) from it; the parser and the training transform both ask here."""
    if mode in ("resize_and_crop", "scale_width_and_crop") and load_size < crop_size:
        raise UserError(f"--crop_size {crop_size} is larger than --load_size {load_size}: "
                        f"crop at most the loaded size (e.g. --load_size {crop_size})")


class Preprocess:
    """Resize, crop and flip for one ``--preprocess`` mode, then a [-1, 1] tensor.

    Training (``train=True``) follows upstream exactly: ``resize_and_crop`` resizes to load_size²
    (bicubic) and crops crop_size² at random; ``crop`` only crops; ``scale_width`` sets the width to
    load_size and the height by the aspect ratio but at least crop_size; ``scale_width_and_crop``
    adds the random crop; ``none`` rounds both sides to multiples of ``multiple`` (4, upstream's
    make_power_2, unless the generator needs more), and so does ``scale_width`` without a crop, so that
    every image fits the generator. Flips are random unless ``flip=False``.

    Evaluation (``train=False``) is deterministic: the crop modes resize to crop_size² instead of
    cropping, the scale-width modes scale the width to crop_size without cropping, ``none`` is
    unchanged, and nothing is flipped.
    """

    def __init__(self, mode, load_size, crop_size, flip=True, train=True, multiple=DEFAULT_MULTIPLE, min_size=1):
        if mode not in MODES:
            raise UserError(f"--preprocess {mode!r} is unknown: use one of {', '.join(MODES)}")
        if train:
            self.resize = {"resize_and_crop": "square", "crop": None, "scale_width": "width",
                           "scale_width_and_crop": "width", "none": "base"}[mode]
            self.target = load_size
            self.crop = mode in ("resize_and_crop", "crop", "scale_width_and_crop")
        else:
            self.resize = {"resize_and_crop": "square", "crop": "square", "scale_width": "width",
                           "scale_width_and_crop": "width", "none": "base"}[mode]
            self.target = crop_size
            self.crop = False
        self.mode = mode
        self.multiple = multiple
        self.min_size = min_size  # the smallest side the networks accept
        self.crop_size = crop_size
        self.flip = bool(train and flip)
        if train:
            check_crop(mode, load_size, crop_size)

    def resized_size(self, size):
        """(width, height) of an image of ``size`` after the resize step, before cropping."""
        w, h = size
        t = self.target
        if self.resize == "square":
            return t, t
        m = self.multiple
        if self.resize == "width":
            height = int(max(t * h / w, self.crop_size))
            if self.crop:
                return t, height
            return max(m, int(round(t / m) * m)), max(m, int(round(height / m) * m))
        if self.resize == "base":
            # Python's round (half to even) as upstream, so results match its sizes exactly
            # (at least one multiple: a side smaller than half of it would round to nothing)
            return max(m, int(round(w / m) * m)), max(m, int(round(h / m) * m))
        return w, h

    def output_size(self, size):
        """(width, height) of the tensor made from an image of ``size``."""
        if self.crop:
            return self.crop_size, self.crop_size
        return self.resized_size(size)

    def check(self, size, path):
        """UserError naming ``path`` when an image of ``size`` is too small for this mode."""
        rw, rh = self.resized_size(size)
        w, h = size
        if self.crop and (rw < self.crop_size or rh < self.crop_size):
            raise UserError(f"image {path} is {w}x{h} px, {rw}x{rh} after --preprocess {self.mode}, smaller than "
                            f"--crop_size {self.crop_size}: use a smaller --crop_size or a resizing --preprocess")
        if rw < 1 or rh < 1:
            raise UserError(f"image {path} is {w}x{h} px, too small for --preprocess {self.mode}: "
                            f"use images of at least {self.multiple // 2 + 1} px a side")
        ow, oh = self.output_size(size)
        if min(ow, oh) < self.min_size:
            raise UserError(f"image {path} is {w}x{h} px, {ow}x{oh} after --preprocess {self.mode}, smaller than the "
                            f"{self.min_size} px the networks need: use larger images or a resizing --preprocess")

    def sample(self, size, rng):
        """Draw crop corner and flip for an image of ``size`` from ``rng`` (a ``random.Random``)."""
        rw, rh = self.resized_size(size)
        x = y = 0
        if self.crop:
            x = rng.randint(0, max(0, rw - self.crop_size))
            y = rng.randint(0, max(0, rh - self.crop_size))
        flip = self.flip and rng.random() > 0.5
        return Params(x, y, flip)

    def apply(self, img, params, grayscale=False):
        """Transform an 8-bit PIL image (L or RGB) into a FloatTensor[C, H, W] in [-1, 1], C = 1 if
        ``grayscale`` else 3 (gray images are repeated to RGB, RGB images reduced to luma)."""
        img = img.convert("L" if grayscale else "RGB")
        size = self.resized_size(img.size)
        if img.size != size:
            img = img.resize(size, _BICUBIC)
        if self.crop:
            c = self.crop_size
            img = img.crop((params.x, params.y, params.x + c, params.y + c))
        if params.flip:
            img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        return to_tensor(img)


def to_tensor(img):
    """PIL image (L or RGB) -> FloatTensor[C, H, W] in [-1, 1], as torchvision ToTensor + Normalize(0.5, 0.5)."""
    t = torch.from_numpy(np.array(img, dtype=np.uint8))
    t = t[None] if t.ndim == 2 else t.permute(2, 0, 1).contiguous()
    return t.float().div(255).sub(0.5).div(0.5)
