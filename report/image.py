"""Tensor <-> image helpers and atomic file writes for the visualiser and the test/eval image dumps."""
import os

import numpy as np
import torch
from PIL import Image

from util.files import atomic_path


def tensor2im(t):
    """An image tensor in [-1, 1] as an ``H x W x 3`` uint8 array.

    ``t`` is ``[C, H, W]`` or ``[N, C, H, W]`` (only the first image of a batch is used) with C = 1 or 3;
    grayscale is repeated to three channels. Values map by ``(x + 1) / 2 * 255``, clipped to [0, 255]
    and truncated (not rounded) like the original; NaN becomes 0.
    """
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"tensor2im expects a torch.Tensor, got {type(t).__name__}")
    t = t.detach()
    if t.dim() == 4:
        t = t[0]
    if t.dim() == 2:
        t = t.unsqueeze(0)
    if t.dim() != 3 or t.shape[0] not in (1, 3):
        raise ValueError(f"tensor2im expects [C,H,W] or [N,C,H,W] with C in (1, 3), got shape {tuple(t.shape)}")
    arr = t.cpu().float().numpy()
    if arr.shape[0] == 1:
        arr = np.repeat(arr, 3, axis=0)
    arr = (np.transpose(arr, (1, 2, 0)) + 1.0) / 2.0 * 255.0
    arr = np.nan_to_num(arr, nan=0.0, posinf=255.0, neginf=0.0)
    return np.clip(arr, 0.0, 255.0).astype(np.uint8)


def write_bytes(path, data):
    """Write ``data`` to ``path`` atomically (:func:`util.files.atomic_path`); returns ``path``."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
    return path


def save_image(arr, path, aspect_ratio=1.0):
    """Save an ``H x W x 3`` (or ``H x W``) uint8 array to ``path`` (format from the extension).

    ``aspect_ratio`` > 1 stretches the width to ``int(W * aspect_ratio)``; < 1 stretches the height to
    ``int(H / aspect_ratio)`` (bicubic). The original passed these sizes to PIL in (H, W) order, which
    swaps the axes for non-square images; here the result is always ``H x int(W*r)`` or ``int(H/r) x W``.
    Parent folders are created and the file is replaced atomically. Returns ``path``.
    """
    if aspect_ratio <= 0:
        raise ValueError(f"aspect_ratio must be positive, got {aspect_ratio}")
    image = Image.fromarray(np.asarray(arr))
    h, w = image.height, image.width
    if aspect_ratio > 1.0:
        image = image.resize((int(w * aspect_ratio), h), Image.BICUBIC)
    elif aspect_ratio < 1.0:
        image = image.resize((w, int(h / aspect_ratio)), Image.BICUBIC)
    fmt = Image.registered_extensions().get(os.path.splitext(os.fspath(path))[1].lower(), "PNG")
    with atomic_path(path) as tmp:
        image.save(tmp, format=fmt)
    return path
