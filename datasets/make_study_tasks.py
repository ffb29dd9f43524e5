"""Write the compression study's two tasks from real photographs that installed packages ship offline.

    python datasets/make_study_tasks.py [--root datasets/study]

The task is Gaussian denoising at sigma 25 (on the 0-255 scale) of grey photographs, in two forms:

* ``<root>/paired``: pix2pix pairs ``{train,val,test}/<photo>_<row>_<col>.png`` (A|B side by side,
  A = the noisy tile, B = the clean tile; 8-bit grey);
* ``<root>/unpaired``: CycleGAN domains. ``trainA`` = noisy tiles of one half of the training
  photographs, ``trainB`` = clean tiles of the *other* half (no tile, and no photograph, appears in
  both domains); ``testA`` / ``testB`` (and ``valA`` / ``valB``) = the noisy and clean tiles of the
  held-out photographs under the same names. The unpaired task is scored on the held-out *pairs*
  (``paired/test``), so that it has a ground-truth number too.

Why denoising rather than x4 super-resolution: a small network trained for minutes on a CPU learns
sigma-25 denoising well past the classical floor (the best Gaussian blur), which leaves a wide band
between the floor and the teacher for compressed models to be told apart in; x4 super-resolution's
headroom over bicubic interpolation is about 1 dB for small networks and takes long training, so at
this budget every model would sit within noise of the floor. The degradation is also local, so it
is the same on a 32 px tile as on a whole photograph.

Photographs (18): the 9 colour photographs of ``skimage.data`` and matplotlib's
``sample_data/grace_hopper.jpg``, converted to luma (ITU-R 601-2, ``PIL.Image.convert("L")``), and 8
grey photographs of ``skimage.data``; synthetic images (chessboard, colour wheel, logo, phantom,
horse silhouette), the motion-blurred clock, the right view of the motorcycle stereo pair (nearly
the left one) and the 102 px microaneurysms crop are left out. Leave-photographs-out split, drawn
once by a fixed seed (SPLIT_SEED), stratified by whether the source photograph is colour or grey:
4 test photographs (2 + 2), 2 validation photographs (1 + 1), 12 training photographs (6 + 6).
The training photographs are dealt to the two CycleGAN domains in the order of their mean luma, in
the pattern A B B A A B B A ..., so that both domains have about the same brightness (mean luma 104
and 105): the domains then differ by the noise, not by how bright their photographs are (with the
photographs dealt at random, domain A's mean luma was 90 and B's 118, and a CycleGAN learns that
brightness shift instead of denoising).

Each photograph is scaled (bicubic, antialiased; never enlarged) so that its shorter side is at most
SHORT_SIDE px, then cut into non-overlapping TILE px tiles on a centred grid. The noise of a tile is
drawn from a generator seeded by (NOISE_SEED, photograph, row, column): the files are byte-identical
on every run; files whose bytes already match are left alone. ``<root>/tasks.json`` records the
split, the tile counts and the settings.
"""
import argparse
import hashlib
import json
import os
import sys

import numpy as np
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # the sibling toy-data script
from make_toy_dataset import png_bytes, sync_folder  # noqa: E402

SIGMA = 25.0  # noise standard deviation, 0-255 scale
TILE = 32
SHORT_SIDE = 256
SPLIT_SEED = 20250117
NOISE_SEED = 20250118
# skimage.data function -> photograph name; "grace_hopper" is matplotlib's sample photograph
COLOUR_PHOTOS = ("astronaut", "chelsea", "coffee", "hubble_deep_field", "immunohistochemistry", "motorcycle_left",
                 "retina", "rocket", "grace_hopper")
GREY_PHOTOS = ("brick", "camera", "cell", "coins", "grass", "gravel", "moon", "page", "text")
SPLIT_SIZES = {"test": 2, "val": 1}  # per stratum (colour, grey); the rest train
PATTERN = r"[a-z_]+_\d{2}_\d{2}\.png"


def load_photo(name):
    """The photograph ``name`` as an 8-bit grey PIL image (luma of a colour photograph)."""
    if name == "grace_hopper":
        import matplotlib

        path = os.path.join(matplotlib.get_data_path(), "sample_data", "grace_hopper.jpg")
        return Image.open(path).convert("L")
    try:
        from skimage import data
    except ImportError:
        sys.exit("scikit-image is not installed: pip install scikit-image (it ships the photographs)")
    if name == "motorcycle_left":
        array = data.stereo_motorcycle()[0]
    else:
        array = getattr(data, name)()
    array = np.ascontiguousarray(array)
    if array.ndim == 3:
        return Image.fromarray(array[..., :3]).convert("L")
    return Image.fromarray(array).convert("L")


def split_photos(short_side=SHORT_SIDE):
    """{"train": [...], "val": [...], "test": [...], "domain_A": [...], "domain_B": [...]}: the
    leave-photographs-out split, drawn by SPLIT_SEED, stratified by colour / grey source; the training
    photographs dealt to the CycleGAN domains by mean luma (A B B A A B ...)."""
    rng = np.random.default_rng(SPLIT_SEED)
    split = {"test": [], "val": [], "train": [], "domain_A": [], "domain_B": []}
    for stratum in (COLOUR_PHOTOS, GREY_PHOTOS):
        order = [stratum[i] for i in rng.permutation(len(stratum))]
        n_test, n_val = SPLIT_SIZES["test"], SPLIT_SIZES["val"]
        split["test"] += order[:n_test]
        split["val"] += order[n_test:n_test + n_val]
        split["train"] += order[n_test + n_val:]
    luma = {p: float(np.asarray(scaled(load_photo(p), short_side), dtype=np.float64).mean()) for p in split["train"]}
    for i, photo in enumerate(sorted(split["train"], key=lambda p: (luma[p], p))):
        split["domain_A" if i % 4 in (0, 3) else "domain_B"].append(photo)
    return split


def scaled(img, short_side=SHORT_SIDE):
    """``img`` scaled (bicubic, antialiased) so that its shorter side is ``short_side``; never enlarged."""
    w, h = img.size
    if min(w, h) <= short_side:
        return img
    scale = short_side / min(w, h)
    return img.resize((round(w * scale), round(h * scale)), Image.BICUBIC)


def tiles(img, size=TILE):
    """``[(row, col, uint8 array size x size)]``: non-overlapping tiles on a grid centred in ``img``."""
    array = np.asarray(img, dtype=np.uint8)
    h, w = array.shape
    rows, cols = h // size, w // size
    top, left = (h - rows * size) // 2, (w - cols * size) // 2
    return [(r, c, array[top + r * size:top + (r + 1) * size, left + c * size:left + (c + 1) * size])
            for r in range(rows) for c in range(cols)]


def noisy(clean, photo, row, col, sigma=SIGMA):
    """``clean`` (uint8) plus Gaussian noise of std ``sigma``, rounded and clipped to 0-255; the noise is
    a function of (NOISE_SEED, photo, row, col) only."""
    key = int.from_bytes(hashlib.sha256(photo.encode()).digest()[:4], "little")
    rng = np.random.default_rng([NOISE_SEED, key, row, col])
    return np.clip(np.rint(clean.astype(np.float64) + rng.normal(0.0, sigma, clean.shape)), 0, 255).astype(np.uint8)


def tile_name(photo, row, col):
    return f"{photo}_{row:02d}_{col:02d}.png"


def photo_of(filename):
    """The photograph a tile file comes from: ``"camera_03_05.png"`` -> ``"camera"``."""
    stem = os.path.basename(filename).rsplit(".", 1)[0]
    return stem.rsplit("_", 2)[0]


def pair_image(noisy_tile, clean_tile):
    return Image.fromarray(np.concatenate([noisy_tile, clean_tile], axis=1), mode="L")


def build(root, tile=TILE, short_side=SHORT_SIDE, photos=None):
    """Write both tasks under ``root``; returns the record written to ``<root>/tasks.json``.
    ``photos``: only these photographs (a subset of the split, for tests); default all."""
    split = split_photos(short_side)
    if photos is not None:
        split = {k: [p for p in v if p in photos] for k, v in split.items()}
    cut = {}
    for photo in sorted({p for k in ("train", "val", "test") for p in split[k]}):
        cut[photo] = [(r, c, t, noisy(t, photo, r, c))
                      for r, c, t in tiles(scaled(load_photo(photo), short_side), tile)]
    changed = 0
    paired = os.path.join(root, "paired")
    for phase in ("train", "val", "test"):
        files = ((tile_name(p, r, c), png_bytes(pair_image(n, t))) for p in split[phase] for r, c, t, n in cut[p])
        changed += sync_folder(os.path.join(paired, phase), files, PATTERN)
    unpaired = os.path.join(root, "unpaired")
    sides = {"trainA": ("domain_A", 3), "trainB": ("domain_B", 2), "valA": ("val", 3), "valB": ("val", 2),
             "testA": ("test", 3), "testB": ("test", 2)}
    for folder, (key, which) in sides.items():
        files = ((tile_name(p, r, c), png_bytes(Image.fromarray(entry[which], mode="L")))
                 for p in split[key] for entry in cut[p] for r, c in [entry[:2]])
        changed += sync_folder(os.path.join(unpaired, folder), files, PATTERN)
    record = {"task": "Gaussian denoising, sigma 25 (0-255 scale), 8-bit grey", "sigma": SIGMA, "tile": tile,
              "short_side": short_side, "split_seed": SPLIT_SEED, "noise_seed": NOISE_SEED, "split": split,
              "tiles": {p: len(v) for p, v in cut.items()},
              "counts": {phase: sum(len(cut[p]) for p in split[phase]) for phase in ("train", "val", "test")}
              | {"trainA": sum(len(cut[p]) for p in split["domain_A"]),
                 "trainB": sum(len(cut[p]) for p in split["domain_B"])}}
    text = json.dumps(record, indent=2) + "\n"
    path = os.path.join(root, "tasks.json")
    if not os.path.isfile(path) or open(path).read() != text:
        with open(path, "w") as handle:
            handle.write(text)
    record["changed"] = changed
    return record


def main(argv=None):
    here = os.path.dirname(os.path.abspath(__file__))
    parser = argparse.ArgumentParser(description="Write the study's denoising tasks (paired and unpaired) from "
                                                 "the photographs scikit-image and matplotlib ship.")
    parser.add_argument("--root", default=os.path.join(here, "study"), help="output folder. default: datasets/study")
    args = parser.parse_args(argv)
    record = build(args.root)
    counts = ", ".join(f"{k} {v}" for k, v in record["counts"].items())
    print(f"{args.root}: tiles of {TILE} px: {counts} ({record['changed']} files changed)")
    for key in ("train", "val", "test", "domain_A", "domain_B"):
        print(f"  {key}: {', '.join(record['split'][key])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
