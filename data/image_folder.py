"""Finding, checking and opening the image files of a dataset folder."""
import math
import os
from concurrent.futures import ThreadPoolExecutor

from PIL import Image

from util.errors import UserError

IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".tif", ".tiff")

# Image.open can fail in several ways on a broken file; all of them mean "not a usable image".
_READ_ERRORS = (OSError, ValueError, SyntaxError, Image.DecompressionBombError)


def is_image_file(name):
    """True for a file name with an image extension (any case), hidden files (``._x.jpg``) excluded."""
    return not os.path.basename(name).startswith(".") and name.lower().endswith(IMG_EXTENSIONS)


def find_images(root, max_size=math.inf):
    """All image files under ``root`` (recursive), as sorted paths, the first ``max_size`` of them.

    Raises UserError when ``root`` is not a folder or holds no image.
    """
    if not os.path.isdir(root):
        raise UserError(f"image folder {root} does not exist: check --dataroot and --phase")
    paths = []
    for folder, dirs, names in os.walk(root, followlinks=True):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        paths.extend(os.path.join(folder, n) for n in names if is_image_file(n))
    if not paths:
        raise UserError(f"no images ({', '.join(e[1:] for e in IMG_EXTENSIONS)}) found in {root}: "
                        "put the dataset's image files there")
    paths.sort()
    if max_size < len(paths):
        paths = paths[:int(max_size)]
    return paths


def _header_size(path):
    try:
        with Image.open(path) as img:  # reads the header only
            return img.size
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


def load_rgb(path):
    """The image at ``path`` decoded as an RGB PIL image; UserError naming the file if it is unreadable."""
    try:
        with Image.open(path) as img:
            return img.convert("RGB")
    except _READ_ERRORS as err:
        raise UserError(f"cannot read image {path} ({type(err).__name__}): replace or delete the file") from None
