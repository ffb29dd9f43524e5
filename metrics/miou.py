"""Cityscapes mIoU of generated photos, segmented by DRN-D-105 (method.md §9.3).

Labels are train-id images (0 ... 18, 255 = ignored) at full resolution; the segmenter's output is
resized to the label's own size before the arg-max.
"""
import os

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from util.errors import UserError

NUM_CLASSES = 19
# Cityscapes label ids of the 19 evaluated classes, in train-id order; every other id maps to 255.
EVAL_LABEL_IDS = (7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 31, 32, 33)
IGNORE = 255
TRAIN_IDS = frozenset(range(NUM_CLASSES)) | {IGNORE}  # the values a train-id label may hold
LABEL_IDS = 34  # Cityscapes label ids are 0 ... 33
CHECKED_LABELS = 8  # label files whose values check_labels reads (spread over the split)
# DRN's Cityscapes normalisation (fyu/drn datasets/cityscapes/info.json).
DRN_MEAN = (0.29010095242892997, 0.32808144844279574, 0.28696394422942517)
DRN_STD = (0.1829540508368939, 0.18656561047509476, 0.18447508988480435)


def label_id_to_train_id():
    """Lookup table ``uint8[256]``: Cityscapes label id -> train id (0 ... 18, else 255)."""
    lut = np.full(256, IGNORE, dtype=np.uint8)
    lut[list(EVAL_LABEL_IDS)] = np.arange(NUM_CLASSES, dtype=np.uint8)
    return lut


def fast_hist(pred, label, n=NUM_CLASSES):
    """Confusion matrix ``int64[n, n]`` (rows: label, columns: prediction) over pixels with label in [0, n)."""
    pred = np.asarray(pred).ravel().astype(np.int64)
    label = np.asarray(label).ravel().astype(np.int64)
    if pred.shape != label.shape:
        raise ValueError(f"prediction has {pred.size} pixels, label {label.size}")
    keep = (label >= 0) & (label < n)
    return np.bincount(n * label[keep] + pred[keep], minlength=n * n).reshape(n, n)


def per_class_iou(hist):
    """IoU per class ``float[n]``: diag / (row + column - diag); NaN for classes absent from both."""
    hist = np.asarray(hist, dtype=np.float64)
    diag = np.diag(hist)
    with np.errstate(divide="ignore", invalid="ignore"):
        return diag / (hist.sum(1) + hist.sum(0) - diag)


def mean_iou(hist):
    """Mean IoU in percent over the classes present, rounded to 2 decimals (NaN if none is present)."""
    ious = per_class_iou(hist)
    if np.all(np.isnan(ious)):
        return float("nan")
    return round(float(np.nanmean(ious) * 100), 2)


def _as_uint8_batch(images):
    """``np.uint8[H, W, 3]``, ``uint8 Tensor[3, H, W]`` or ``[N, 3, H, W]`` -> ``uint8 Tensor[N, 3, H, W]``."""
    if isinstance(images, np.ndarray):
        if images.ndim != 3 or images.shape[2] != 3:
            raise ValueError(f"expected an RGB image [H, W, 3], got {images.shape}")
        images = torch.from_numpy(np.ascontiguousarray(images)).permute(2, 0, 1)
    if images.dtype != torch.uint8:
        raise ValueError(f"expected uint8 images, got {images.dtype}")
    return images.unsqueeze(0) if images.dim() == 3 else images


@torch.no_grad()
def segment_batch(drn, images, device, out_sizes):
    """Train-id predictions ``[int64[H_i, W_i]]`` of uint8 images ``[N, 3, h, w]`` fed at their own size.

    ``out_sizes`` is one ``(H, W)`` for all images or a list with one per image: the log-probabilities
    are resized bilinearly to it before the arg-max (one image at a time, since 19 channels at
    2048x1024 are large). Bilinear upsampling with ``align_corners=False`` is what PIL's BILINEAR
    resize of each channel computes.
    """
    images = _as_uint8_batch(images)
    if isinstance(out_sizes, tuple) and len(out_sizes) == 2 and isinstance(out_sizes[0], int):
        out_sizes = [out_sizes] * images.shape[0]
    mean = torch.tensor(DRN_MEAN, device=device).view(1, 3, 1, 1)
    std = torch.tensor(DRN_STD, device=device).view(1, 3, 1, 1)
    x = (images.to(device).float() / 255 - mean) / std
    logp = drn(x)
    preds = []
    for i, size in enumerate(out_sizes):
        out = logp[i:i + 1]
        if tuple(out.shape[-2:]) != tuple(size):
            out = F.interpolate(out, size=tuple(size), mode="bilinear", align_corners=False)
        preds.append(out.argmax(dim=1)[0].cpu().numpy())
    return preds


def segment_image(drn, image, device, out_size):
    """Train-id prediction ``int64[H, W]`` of one uint8 image (``[H, W, 3]`` array or ``[3, h, w]`` tensor)."""
    return segment_batch(drn, image, device, [tuple(out_size)])[0]


def read_table(dataroot, table="table.txt"):
    """``{image name: label path}`` from ``<dataroot>/table.txt``.

    Each line is ``<name> <label path relative to dataroot> <photo path>``. The photo's file stem is
    a second name for the same label (the original also matched names against the photo path).
    """
    path = os.path.join(dataroot, table)
    if not os.path.isfile(path):
        raise UserError(f"{path} not found: the mIoU needs the label table written by "
                        "datasets/prepare_cityscapes_dataset.py")
    entries, by_photo = {}, {}
    with open(path) as f:
        for lineno, line in enumerate(f, 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) < 2:
                raise UserError(f"{path}:{lineno} should read '<name> <label path> <photo path>': "
                                "rewrite it with datasets/prepare_cityscapes_dataset.py")
            label = os.path.join(dataroot, parts[1])
            entries[parts[0]] = label
            if len(parts) > 2:
                by_photo[os.path.splitext(os.path.basename(parts[2]))[0]] = label
    return {**by_photo, **entries}


def find_label(table, name):
    """The label path of image ``name``: its own entry, else the entry whose name ends with it."""
    if name in table:
        return table[name]
    for key, label in table.items():
        if key.endswith(name):
            return label
    raise UserError(f"no label for image '{name}' in table.txt: regenerate the dataset with "
                    "datasets/prepare_cityscapes_dataset.py")


def read_label(path):
    """Train-id label image ``uint8[H, W]``."""
    try:
        with Image.open(path) as img:
            return np.array(img)
    except OSError as err:
        raise UserError(f"cannot read label {path} ({err}): convert the labels with datasets/get_trainIds.py "
                        "or datasets/prepare_cityscapes_dataset.py") from None


def check_labels(paths, sample=CHECKED_LABELS):
    """UserError (one line) unless the label files ``paths`` hold Cityscapes train ids: every file is
    opened (its header only) and must have one channel; the values of ``sample`` files spread over the
    list (the first and the last among them) must be train ids (0 ... 18, 255). Label ids (0 ... 33,
    what Cityscapes' ``*_labelIds.png`` hold) would be scored as if they were train ids, whatever
    the files are called, and give a wrong mIoU (7.86 for a perfect segmentation)."""
    fix = ("convert the dataset with datasets/prepare_cityscapes_dataset.py, or map its label ids to train ids "
           "(datasets/get_trainIds.py <gtFine folder>)")
    for path in paths:
        try:
            with Image.open(path) as img:
                bands, mode = img.getbands(), img.mode
        except OSError as err:
            raise UserError(f"cannot read label {path} ({err}): {fix}") from None
        if len(bands) != 1:
            raise UserError(f"label {path} is a {mode} image, not a single-channel train-id image (0-18, 255 = "
                            f"ignored): {fix}")
    paths = list(paths)
    if len(paths) > sample:
        paths = [paths[round(i * (len(paths) - 1) / (sample - 1))] for i in range(sample)]
    for path in paths:
        bad = sorted(int(v) for v in np.unique(read_label(path)) if int(v) not in TRAIN_IDS)
        if bad:
            shown = ", ".join(map(str, bad[:6])) + (", ..." if len(bad) > 6 else "")
            kind = "label ids (0-33)" if max(bad) < LABEL_IDS else "no Cityscapes ids"
            raise UserError(f"label {path} holds values ({shown}) that are not Cityscapes train ids (0-18, 255 = "
                            f"ignored), which the mIoU needs; they look like {kind}: {fix}")
