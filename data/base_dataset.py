"""What the dataset modes share: options read once, per-item random streams, file checks."""
import hashlib
import logging
import os
import random
import struct

import torch.utils.data

from data.image_folder import find_images, image_sizes, load_image, result_names, verify_images
from data.transforms import DEFAULT_MULTIPLE, Preprocess
from util.errors import UserError

logger = logging.getLogger(__name__)

_MASK64 = (1 << 64) - 1

# aligned files already warned about as not 2:1 (square, 3:1, ...), so that a second dataset on them stays quiet
_WARNED_SHAPE = set()

# Tags keep the random streams of different purposes apart even for equal (seed, epoch, index).
STREAM_ITEM = 1
STREAM_ORDER = 2


def derive_seed(*values):
    """A 64-bit seed that depends on every integer in ``values`` and nothing else (process, worker, hash salt)."""
    packed = struct.pack(f"<{len(values)}Q", *(int(v) & _MASK64 for v in values))
    return int.from_bytes(hashlib.blake2b(packed, digest_size=8).digest(), "little")


class BaseDataset(torch.utils.data.Dataset):
    """Common state of the dataset modes.

    Every random choice for item ``index`` (crop corner, flip, unaligned partner) comes from
    :meth:`item_rng`, seeded from (opt.seed, epoch, index) only, so an item is the same in any
    process, worker or order of access; :meth:`set_epoch` selects the epoch.
    """

    def __init__(self, opt, phase, train=True):
        self.root = opt.dataroot
        if not self.root or not os.path.isdir(self.root):
            raise UserError(f"--dataroot {self.root} is not a folder: give the dataset's root folder "
                            "(e.g. --dataroot datasets/toy/unaligned)")
        if opt.direction not in ("AtoB", "BtoA"):
            raise UserError(f"--direction {opt.direction!r} is unknown: use AtoB or BtoA")
        self.phase = phase
        self.train = train
        self.seed = int(opt.seed)
        self.epoch = 1
        # evaluation pairs items by index, like upstream's test script (serial batches forced)
        self.serial = bool(opt.serial_batches) or not train
        self.max_size = opt.max_dataset_size
        self.truncated = False  # whether --max_dataset_size left out images of a split folder
        self.names = {}  # path -> unique result name (relative to its split folder)
        self.sizes = {}  # path -> (width, height) of the image (of one half for A|B pairs), from its header
        self.preprocess = Preprocess(opt.preprocess, opt.load_size, opt.crop_size,
                                     flip=not opt.no_flip, train=train,
                                     multiple=getattr(opt, "size_multiple", DEFAULT_MULTIPLE),
                                     min_size=getattr(opt, "min_size" if train else "min_size_G", 1))
        a_to_b = opt.direction == "AtoB"
        # the model swaps A and B for BtoA, so the side that becomes its input follows input_nc
        self.gray_A = (opt.input_nc if a_to_b else opt.output_nc) == 1
        self.gray_B = (opt.output_nc if a_to_b else opt.input_nc) == 1

    def set_epoch(self, epoch):
        """Select the epoch whose random crops, flips and pairings items are drawn with."""
        if int(epoch) < 0:
            raise ValueError(f"epoch must be non-negative, got {epoch}")
        self.epoch = int(epoch)

    def item_rng(self, index):
        """The private random stream of item ``index`` in the current epoch."""
        return random.Random(derive_seed(STREAM_ITEM, self.seed, self.epoch, index))

    def split_dir(self, name, layout):
        """``<dataroot>/<name>``; UserError naming it, and the expected ``layout``, when it is missing."""
        path = os.path.join(self.root, name)
        if not os.path.isdir(path):
            raise UserError(f"folder {path} is missing: {layout}")
        return path

    def find_checked(self, folder, halves=False):
        """The (truncated, sorted) images of ``folder``, each checked readable and big enough.

        ``halves``: files hold an A|B pair side by side, so the width must be even and each half fit.
        """
        paths = find_images(folder)
        if len(paths) > self.max_size:
            self.truncated = True  # FID statistics of part of a split are kept apart from the whole's
            paths = paths[:int(self.max_size)]
        misshapen = {}  # aligned files that are not twice as wide as high: path -> (width, height)
        for path, (w, h) in zip(paths, image_sizes(paths)):
            if halves:
                self.check_pair_width(path, w)
                if w != 2 * h:
                    misshapen[path] = (w, h)
                w //= 2
            self.preprocess.check((w, h), path)
            self.sizes[path] = (w, h)
        fresh = [p for p in misshapen if p not in _WARNED_SHAPE]
        if fresh:
            _WARNED_SHAPE.update(fresh)
            w, h = misshapen[fresh[0]]
            shape = "square" if w == h else f"{w}x{h}, {w / h:.3g}:1"
            more = f" (and {len(fresh) - 1} more images not 2:1)" if len(fresh) > 1 else ""
            logger.warning("aligned image %s is %s, not twice as wide as high%s: aligned data expects each A|B pair "
                           "side by side in one file twice as wide as high; it is split into left and right halves "
                           "(%dx%d) as such", fresh[0], shape, more, w // 2, h)
        self.names.update(result_names(paths, folder))
        return paths

    def image_paths(self):
        """Every image file of the dataset, side by side lists in order (A, B, or A|B pairs)."""
        return [p for side in ("A", "B", "AB") for p in getattr(self, f"{side}_paths", [])]

    def verify(self):
        """Decode every image of the split (:func:`data.image_folder.verify_images`); UserError naming the
        first unreadable one. Run before a stage writes anything it cannot take back."""
        verify_images(self.image_paths(), desc=f"checking {self.phase} images")

    def item_size_key(self, index):
        """The tensor sizes of item ``index`` (evaluation order: sides paired by index), from the file
        headers; items with equal keys can share a batch."""
        sides = [p for p in ("A", "B") if hasattr(self, f"{p}_paths")]
        key = []
        for side in sides:
            paths = getattr(self, f"{side}_paths")
            key.append(self.preprocess.output_size(self.sizes[paths[index % len(paths)]]))
        return tuple(key)

    def result_name(self, path):
        """The unique name results of the image at ``path`` are saved under: its path relative to its
        split folder, without extension (``cam1/frame`` for ``testA/cam1/frame.png``)."""
        return self.names[path]

    def domain(self, side):
        """The images of one side (``'A'`` or ``'B'``) as a dataset of their own, each image once:
        items ``{side: FloatTensor[C, H, W], side + '_paths': str}``."""
        return DomainDataset(self, side)

    def load_side(self, index, side):
        """Image ``index`` of the side's own list, as an item of :meth:`domain`."""
        path = getattr(self, f"{side}_paths")[index]
        gray = self.gray_A if side == "A" else self.gray_B
        return {side: self.load(path, self.item_rng(index), gray), f"{side}_paths": path}

    def side_length(self, side):
        return len(getattr(self, f"{side}_paths"))

    @staticmethod
    def check_pair_width(path, width):
        if width % 2:
            raise UserError(f"aligned image {path} has odd width {width}: A|B pairs need two halves of equal "
                            "width; re-save it with an even width")

    def load(self, path, rng, grayscale):
        """Image file -> FloatTensor[C, H, W] in [-1, 1] with crop/flip drawn from ``rng``."""
        img = load_image(path)
        self.preprocess.check(img.size, path)
        return self.preprocess.apply(img, self.preprocess.sample(img.size, rng), grayscale)

    def check_index(self, index):
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for a dataset of {len(self)} items")


class DomainDataset(torch.utils.data.Dataset):
    """One side of a dataset, every image once in file order (see :meth:`BaseDataset.domain`)."""

    def __init__(self, dataset, side):
        if side not in ("A", "B"):
            raise ValueError(f"side must be 'A' or 'B', got {side!r}")
        self.dataset, self.side = dataset, side

    def __len__(self):
        return self.dataset.side_length(self.side)

    def __getitem__(self, index):
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for a domain of {len(self)} images")
        return self.dataset.load_side(index, self.side)

    def set_epoch(self, epoch):
        self.dataset.set_epoch(epoch)

    def result_name(self, path):
        return self.dataset.result_name(path)
