"""Finding, checking, naming and opening the image files of a dataset folder."""
import logging
import math
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from PIL import Image, ImageOps
from tqdm import tqdm

from util.errors import UserError

IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".tif", ".tiff")

# Image.open can fail in several ways on a broken file; all of them mean "not a usable image".
_READ_ERRORS = (OSError, ValueError, SyntaxError, Image.DecompressionBombError)

logger = logging.getLogger(__name__)


def is_image_file(name):
    """True for a file name with an image extension (any case), hidden files (``._x.jpg``) excluded."""
    return not os.path.basename(name).startswith(".") and name.lower().endswith(IMG_EXTENSIONS)


def _inside(path, root):
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def find_images(root, max_size=math.inf):
    """All image files under ``root`` (recursive), as sorted paths, the first ``max_size`` of them.

    Links are never followed out of ``root`` or round in circles: links to folders are not walked
    (every folder inside ``root`` is reached through its real path anyway, and one outside does not
    belong to the data), and a link to a file is kept only when its target lies inside ``root`` and
    is not listed already. Skipped links are reported in one warning.
    Raises UserError when ``root`` is not a folder or holds no image.
    """
    if not os.path.isdir(root):
        raise UserError(f"image folder {root} does not exist: check --dataroot and --phase")
    real_root = os.path.realpath(root)
    paths, skipped, targets = [], [], set()
    for folder, dirs, names in os.walk(root, followlinks=False):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        # os.walk lists a link to a folder under dirs and does not enter it: record it as skipped
        skipped.extend(os.path.join(folder, d) for d in dirs if os.path.islink(os.path.join(folder, d)))
        for name in names:
            if not is_image_file(name):
                continue
            path = os.path.join(folder, name)
            if os.path.islink(path):
                target = os.path.realpath(path)
                if not _inside(target, real_root) or not os.path.isfile(target):
                    skipped.append(path)
                    continue
                targets.add(target)
            paths.append(path)
    # a link inside the folder to a file that is listed under its own name would count it twice
    real_files = {os.path.realpath(p) for p in paths if not os.path.islink(p)}
    paths = [p for p in paths if not (os.path.islink(p) and os.path.realpath(p) in real_files)]
    if skipped:
        logger.warning("%d link(s) under %s lead out of the folder, to a folder, or nowhere and were skipped "
                       "(first: %s): copy the images into the folder to use them", len(skipped), root, skipped[0])
    if not paths:
        hint = f" ({len(skipped)} links skipped: they lead out of the folder)" if skipped else ""
        raise UserError(f"no images ({', '.join(e[1:] for e in IMG_EXTENSIONS)}) found in {root}{hint}: "
                        "put the dataset's image files there")
    paths.sort()
    if max_size < len(paths):
        paths = paths[:int(max_size)]
    return paths


def result_names(paths, root):
    """A unique result name per path: its path relative to ``root`` (sub-folders kept, ``/``-separated)
    up to the first dot of the file name, as the original named results; where two files would share
    a name (``x.png`` and ``x.jpg``), each keeps its whole relative file name instead.

    Returns ``{path: name}``.
    """
    def stem(path):
        rel = os.path.relpath(path, root).replace(os.sep, "/")
        folder, base = os.path.split(rel)
        short = base.split(".", 1)[0] or base
        return f"{folder}/{short}" if folder else short

    short = {p: stem(p) for p in paths}
    counts = {}
    for name in short.values():
        counts[name] = counts.get(name, 0) + 1
    names = {p: (n if counts[n] == 1 else os.path.relpath(p, root).replace(os.sep, "/")) for p, n in short.items()}
    taken, unique = set(), {}
    for p in sorted(names):
        name, k = names[p], 1
        while name in taken:  # only for pathological names such as "a.png" next to "a.png.png"
            k += 1
            name = f"{names[p]}~{k}"
        taken.add(name)
        unique[p] = name
    return unique


# EXIF orientations 5-8 turn the picture a quarter: its displayed width is the stored height
_QUARTER_TURNS = (5, 6, 7, 8)
_ORIENTATION = 0x0112


def _displayed_size(img):
    """(width, height) of an opened image as it is displayed: swapped when its EXIF orientation turns it."""
    try:
        turned = img.getexif().get(_ORIENTATION) in _QUARTER_TURNS
    except Exception:  # a damaged EXIF block: Pillow's exif_transpose ignores it too
        turned = False
    return (img.size[1], img.size[0]) if turned else img.size


def _header_size(path):
    try:
        with Image.open(path) as img:  # reads the header (and EXIF) only
            return _displayed_size(img)
    except _READ_ERRORS as err:
        raise UserError(f"cannot read image {path} ({type(err).__name__}): replace or delete the file") from None


def image_sizes(paths):
    """(width, height) of every file from its header; UserError naming the first unreadable file.

    Cheap (no pixel decoding), so datasets run it once at construction: a broken file then fails
    before training starts instead of inside a loader worker.
    """
    if len(paths) < 64:
        return [_header_size(p) for p in paths]
    with ThreadPoolExecutor(max_workers=min(16, os.cpu_count() or 1)) as pool:
        return list(pool.map(_header_size, paths))


# modes whose pixels are numbers wider than 8 bits; the rest convert to L or RGB with Pillow
_WIDE = ("I", "I;16", "I;16L", "I;16B", "I;16N", "F")
_GRAY = ("1", "L", "LA", "La")


def _full_range(values):
    """The top of the value range of a wide image: 65535 for 16-bit data; for 32-bit integers the
    largest of 2^16 - 1 and 2^31 - 1 that holds every value; for floats the smallest of 1, 255 and
    65535 that does (float files store [0, 1] by convention, sometimes 8- or 16-bit values)."""
    top = float(values.max()) if values.size else 0.0
    if values.dtype.kind == "f":
        return next((r for r in (1.0, 255.0, 65535.0) if top <= r), top)
    if values.dtype.itemsize <= 2:
        return 65535.0
    return 65535.0 if top <= 65535 else float(2 ** 31 - 1)


def to_8bit(img):
    """A PIL image of any mode as an 8-bit ``L`` (gray modes) or ``RGB`` image with its full value range.

    16-bit and 32-bit gray images (modes ``I;16*``, ``I``, ``F``) are scaled, not clipped: value ``v``
    of a 16-bit image becomes ``round(v * 255 / 65535)``, the 8-bit copy of the same picture.
    Palette, alpha, CMYK, YCbCr, LAB and HSV images convert to RGB (alpha dropped, as the original did).
    """
    if img.mode in ("L", "RGB"):
        return img
    if img.mode in _WIDE:
        values = np.asarray(img)
        if values.dtype.byteorder == ">":
            values = values.astype(values.dtype.newbyteorder("="))
        top = _full_range(values)
        scaled = np.clip(np.rint(values.astype(np.float64) * (255.0 / top)), 0, 255).astype(np.uint8)
        return Image.fromarray(scaled, mode="L")
    if img.mode in _GRAY:
        return img.convert("LA").convert("L") if img.mode == "La" else img.convert("L")
    return img.convert("RGB")


def load_image(path):
    """The image at ``path`` decoded as an 8-bit ``L`` or ``RGB`` PIL image (see :func:`to_8bit`), turned
    upright as displayed when its EXIF orientation says so (phone photographs; Pillow's
    ``ImageOps.exif_transpose``); UserError naming the file if it is unreadable."""
    try:
        with Image.open(path) as img:
            img.load()
            return to_8bit(ImageOps.exif_transpose(img))
    except _READ_ERRORS as err:
        raise UserError(f"cannot read image {path} ({type(err).__name__}): replace or delete the file") from None


def _decodes(path):
    try:
        with Image.open(path) as img:
            img.load()
        return None
    except _READ_ERRORS as err:
        return f"cannot read image {path} ({type(err).__name__}): replace or delete the file"


def verify_images(paths, desc="checking images"):
    """Decode every file of ``paths`` fully (threads: Pillow decodes without the GIL), with a progress bar
    for long lists; UserError naming the first unreadable file in list order (a truncated JPEG or PNG
    passes the header check of :func:`image_sizes` and fails only here)."""
    paths = list(paths)
    if len(paths) < 64:
        errors = map(_decodes, paths)
    else:
        pool = ThreadPoolExecutor(max_workers=min(16, os.cpu_count() or 1))
        # the bar only on a terminal, where leave=False wipes it before an error line
        errors = tqdm(pool.map(_decodes, paths), total=len(paths), desc=desc, leave=False, unit="img", disable=None)
    try:
        for error in errors:
            if error:
                raise UserError(error)
    finally:
        if len(paths) >= 64:
            pool.shutdown(cancel_futures=True)
