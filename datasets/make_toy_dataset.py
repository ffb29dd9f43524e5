"""Write the small synthetic datasets that the tests and the demo train on.

    python datasets/make_toy_dataset.py [--root datasets/toy] [--n_train 64] [--n_test 16]

``<root>/unaligned/{trainA,trainB,testA,testB}``: 64x64 PNGs of two domains, A = warm filled circles
on a light background, B = cool squares and stripes on a dark background.
``<root>/aligned/{train,val,test}``: 128x64 PNG pairs, left = black outline of a shape on white,
right = the same shape filled with colour (edges -> shapes, pix2pix layout).

Every image is a function of (dataset, split, index) only, so the output is byte-identical on every
run and does not depend on the counts asked for; files whose bytes already match are left alone.
"""
import argparse
import io
import os
import re
import sys

import numpy as np
from PIL import Image, ImageDraw

SIZE = 64
SEED = 20201117
WARM = ((220, 60, 40), (240, 140, 30), (230, 200, 40), (200, 40, 90), (250, 100, 70))
COOL = ((40, 90, 220), (30, 170, 200), (110, 60, 200), (40, 160, 120), (90, 130, 250))
VIVID = WARM + COOL
SHAPES = ("circle", "square", "triangle", "diamond")
SPLIT_CODES = {"trainA": 1, "trainB": 2, "testA": 3, "testB": 4, "train": 5, "val": 6, "test": 7}


def _rng(split, index):
    return np.random.default_rng([SEED, SPLIT_CODES[split], index])


def _pick(rng, colours):
    return tuple(int(c) for c in colours[int(rng.integers(len(colours)))])


def domain_a(rng):
    """Light background, 1-3 warm filled circles."""
    bg = tuple(int(v) for v in rng.integers(225, 250, size=3))
    img = Image.new("RGB", (SIZE, SIZE), bg)
    draw = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(1, 4))):
        r = int(rng.integers(7, 17))
        cx, cy = (int(v) for v in rng.integers(r, SIZE - r, size=2))
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=_pick(rng, WARM))
    return img


def domain_b(rng):
    """Dark background, cool stripes and 1-2 cool squares."""
    bg = tuple(int(v) for v in rng.integers(15, 45, size=3))
    img = Image.new("RGB", (SIZE, SIZE), bg)
    draw = ImageDraw.Draw(img)
    stripe = _pick(rng, COOL)
    period, offset = int(rng.integers(8, 16)), int(rng.integers(0, 8))
    for x in range(offset - SIZE, SIZE, period):  # diagonal stripes
        draw.line((x, 0, x + SIZE, SIZE), fill=stripe, width=2)
    for _ in range(int(rng.integers(1, 3))):
        s = int(rng.integers(10, 26))
        x, y = (int(v) for v in rng.integers(0, SIZE - s, size=2))
        draw.rectangle((x, y, x + s, y + s), fill=_pick(rng, COOL))
    return img


def _outline(kind, cx, cy, r):
    if kind == "triangle":
        return [(cx, cy - r), (cx + r, cy + r), (cx - r, cy + r)]
    return [(cx, cy - r), (cx + r, cy), (cx, cy + r), (cx - r, cy)]  # diamond


def pair(rng):
    """128x64 image: left = black outline of a random shape on white, right = that shape filled."""
    kind = SHAPES[int(rng.integers(len(SHAPES)))]
    r = int(rng.integers(10, 23))
    cx, cy = (int(v) for v in rng.integers(r + 2, SIZE - r - 2, size=2))
    colour = _pick(rng, VIVID)
    edges = Image.new("RGB", (SIZE, SIZE), (255, 255, 255))
    filled = Image.new("RGB", (SIZE, SIZE), (255, 255, 255))
    de, df = ImageDraw.Draw(edges), ImageDraw.Draw(filled)
    box = (cx - r, cy - r, cx + r, cy + r)
    if kind == "circle":
        de.ellipse(box, outline=(0, 0, 0), width=2)
        df.ellipse(box, fill=colour)
    elif kind == "square":
        de.rectangle(box, outline=(0, 0, 0), width=2)
        df.rectangle(box, fill=colour)
    else:
        points = _outline(kind, cx, cy, r)
        de.line(points + points[:1], fill=(0, 0, 0), width=2, joint="curve")
        df.polygon(points, fill=colour)
    img = Image.new("RGB", (2 * SIZE, SIZE))
    img.paste(edges, (0, 0))
    img.paste(filled, (SIZE, 0))
    return img


def png_bytes(img):
    """The PNG encoding of the PIL image ``img``."""
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def sync_folder(folder, files, pattern):
    """Make ``folder`` hold ``files`` (``(name, bytes)`` pairs): write a file only when its bytes differ,
    remove files whose names match the regex ``pattern`` but are not among ``files``; return the number
    of files written or removed. Unchanged files keep their times, so reruns are cheap."""
    os.makedirs(folder, exist_ok=True)
    changed = 0
    wanted = set()
    for name, data in files:
        wanted.add(name)
        path = os.path.join(folder, name)
        if os.path.isfile(path):
            with open(path, "rb") as f:
                if f.read() == data:
                    continue
        with open(path, "wb") as f:
            f.write(data)
        changed += 1
    for name in os.listdir(folder):
        if re.fullmatch(pattern, name) and name not in wanted:
            os.remove(os.path.join(folder, name))
            changed += 1
    return changed


def write_split(folder, split, count, draw):
    """Write ``count`` images ``<split>_NNNN.png``, drop stale ones of that pattern; return #files changed."""
    files = ((f"{split}_{i:04d}.png", png_bytes(draw(_rng(split, i)))) for i in range(count))
    return sync_folder(folder, files, rf"{re.escape(split)}_\d{{4}}\.png")


def main(argv=None):
    here = os.path.dirname(os.path.abspath(__file__))
    parser = argparse.ArgumentParser(description="Write the synthetic toy datasets (unaligned and aligned).")
    parser.add_argument("--root", default=os.path.join(here, "toy"), help="output folder. default: datasets/toy")
    parser.add_argument("--n_train", type=int, default=64, help="training images per domain / pairs. default: 64")
    parser.add_argument("--n_test", type=int, default=16, help="test (and val) images per split. default: 16")
    args = parser.parse_args(argv)
    if args.n_train < 1 or args.n_test < 1:
        parser.error("--n_train and --n_test must be at least 1")

    unaligned = os.path.join(args.root, "unaligned")
    plan = {"trainA": (args.n_train, domain_a), "trainB": (args.n_train, domain_b),
            "testA": (args.n_test, domain_a), "testB": (args.n_test, domain_b)}
    changed = sum(write_split(os.path.join(unaligned, s), s, n, f) for s, (n, f) in plan.items())
    counts = ", ".join(f"{s} {n}" for s, (n, _) in plan.items())
    print(f"{unaligned}: {counts} images of {SIZE}x{SIZE} ({changed} files changed)")

    aligned = os.path.join(args.root, "aligned")
    plan = {"train": args.n_train, "val": args.n_test, "test": args.n_test}
    changed = sum(write_split(os.path.join(aligned, s), s, n, pair) for s, n in plan.items())
    counts = ", ".join(f"{s} {n}" for s, n in plan.items())
    print(f"{aligned}: {counts} pairs of {2 * SIZE}x{SIZE} ({changed} files changed)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
