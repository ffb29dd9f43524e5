"""Write a small paired dataset (grayscale -> colour) from the real photographs scikit-image ships.

    python datasets/make_photo_dataset.py [--root datasets/photo] [--n_train 600] [--n_test 64]

The task is colourisation: A = the luma of a photograph (ITU-R 601-2, as ``PIL.Image.convert("L")``,
stored as three equal channels), B = the photograph itself. Each photograph is first resized so that
its shorter side is ``--short_side`` pixels (so a crop shows objects, not a blur of a few pixels), then
``--size`` px square crops are cut at random positions. Crop ``i`` of a split comes from photograph
``i mod (number of photographs of the split)``; its position is drawn from a generator seeded by
(seed, split, i), so the files are byte-identical on every run and do not depend on the counts asked
for. Files whose bytes already match are left alone.

The photographs are bundled with scikit-image (``skimage.data``, no download). The held-out split
(``val`` and ``test``) is cut from *different photographs* than ``train``:

* train: astronaut, rocket, motorcycle (left and right views of one stereo pair), hubble_deep_field,
  immunohistochemistry, retina;
* val / test: chelsea (a cat), coffee (a cup of coffee).

Output: ``<root>/{train,val,test}/<split>_NNNN_<photo>.png``, 2*size x size A|B pairs (pix2pix layout).
"""
import argparse
import os
import sys

import numpy as np
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # the sibling toy-data script
from make_toy_dataset import png_bytes, sync_folder  # noqa: E402

SEED = 20240612
SPLIT_CODES = {"train": 1, "val": 2, "test": 3}
TRAIN_PHOTOS = ("astronaut", "rocket", "motorcycle_left", "motorcycle_right", "hubble_deep_field",
                "immunohistochemistry", "retina")
HELD_OUT_PHOTOS = ("chelsea", "coffee")
PHOTOS = {"train": TRAIN_PHOTOS, "val": HELD_OUT_PHOTOS, "test": HELD_OUT_PHOTOS}


def load_photo(name):
    """The RGB photograph ``name`` of ``skimage.data`` as a PIL image (uint8)."""
    try:
        from skimage import data
    except ImportError:
        sys.exit("scikit-image is not installed: pip install scikit-image (it ships the photographs)")
    if name.startswith("motorcycle_"):
        left, right, _ = data.stereo_motorcycle()
        array = left if name.endswith("left") else right
    else:
        array = getattr(data, name)()
    return Image.fromarray(np.ascontiguousarray(array[..., :3])).convert("RGB")


def resize_short_side(img, short_side):
    """``img`` scaled (bicubic, antialiased) so that its shorter side is ``short_side`` px."""
    w, h = img.size
    scale = short_side / min(w, h)
    return img.resize((max(short_side, round(w * scale)), max(short_side, round(h * scale))), Image.BICUBIC)


def make_pair(photo, rng, size):
    """A 2*size x size image: left = luma of a random size x size crop of ``photo``, right = the crop."""
    w, h = photo.size
    x, y = int(rng.integers(0, w - size + 1)), int(rng.integers(0, h - size + 1))
    crop = photo.crop((x, y, x + size, y + size))
    pair = Image.new("RGB", (2 * size, size))
    pair.paste(crop.convert("L").convert("RGB"), (0, 0))
    pair.paste(crop, (size, 0))
    return pair


def write_split(root, split, count, photos, size):
    """Write ``count`` pairs of ``split``, remove stale files of the split's pattern; return #files changed."""
    names = PHOTOS[split]

    def files():
        for i in range(count):
            photo = names[i % len(names)]
            rng = np.random.default_rng([SEED, SPLIT_CODES[split], i])
            yield f"{split}_{i:04d}_{photo}.png", png_bytes(make_pair(photos[photo], rng, size))

    return sync_folder(os.path.join(root, split), files(), rf"{split}_\d{{4}}_[a-z_]+\.png")


def main(argv=None):
    here = os.path.dirname(os.path.abspath(__file__))
    parser = argparse.ArgumentParser(description="Write the grayscale -> colour pairs cut from scikit-image's photographs.")
    parser.add_argument("--root", default=os.path.join(here, "photo"), help="output folder. default: datasets/photo")
    parser.add_argument("--n_train", type=int, default=600, help="training pairs. default: 600")
    parser.add_argument("--n_test", type=int, default=64, help="test pairs (val gets half). default: 64")
    parser.add_argument("--size", type=int, default=64, help="side of a crop in px. default: 64")
    parser.add_argument("--short_side", type=int, default=192,
                        help="photographs are resized to this shorter side before cropping. default: 192")
    args = parser.parse_args(argv)
    if args.n_train < 1 or args.n_test < 2:
        parser.error("--n_train must be at least 1 and --n_test at least 2")
    if not 8 <= args.size <= args.short_side:
        parser.error(f"--size must be between 8 and --short_side ({args.short_side})")
    photos = {name: resize_short_side(load_photo(name), args.short_side)
              for name in TRAIN_PHOTOS + HELD_OUT_PHOTOS}
    plan = {"train": args.n_train, "val": args.n_test // 2, "test": args.n_test}
    changed = sum(write_split(args.root, split, n, photos, args.size) for split, n in plan.items())
    counts = ", ".join(f"{split} {n}" for split, n in plan.items())
    print(f"{args.root}: {counts} pairs of {2 * args.size}x{args.size} ({changed} files changed)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
