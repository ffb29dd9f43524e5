"""Datasets and loaders, chosen by ``--dataset_mode`` (unaligned | aligned | single).

Items are dicts of FloatTensor[C, H, W] images in [-1, 1] plus their file paths. All randomness
(crops, flips, unaligned pairing, shuffling) is a function of (opt.seed, epoch, index), never of
global RNG state, worker count or process, so an epoch can be replayed bit for bit on resume.
"""
import logging
import os

import torch
from torch.utils.data import DataLoader, Sampler, default_collate

from data.aligned_dataset import AlignedDataset
from data.base_dataset import STREAM_ORDER, derive_seed
from data.image_folder import IMG_EXTENSIONS, find_images
from data.single_dataset import SingleDataset
from data.unaligned_dataset import UnalignedDataset
from util.errors import UserError

__all__ = ["IMG_EXTENSIONS", "find_images", "create_dataset", "create_dataloader", "EpochSampler", "DistributedEpochSampler",
           "EpochDataLoader"]

logger = logging.getLogger(__name__)

DATASETS = {"unaligned": UnalignedDataset, "aligned": AlignedDataset, "single": SingleDataset}


def create_dataset(opt, phase=None, dataset_mode=None, train=True):
    """The dataset of ``dataset_mode`` (default opt.dataset_mode) for split ``phase`` (default opt.phase).

    ``train=False`` is the evaluation protocol: deterministic transforms (crop modes resize to
    crop_size², scale-width modes do not crop, no flip) and unaligned pairs taken by index.
    Raises UserError for a missing folder, a folder without images or an unreadable image.
    """
    phase = opt.phase if phase is None else phase
    mode = opt.dataset_mode if dataset_mode is None else dataset_mode
    if mode not in DATASETS:
        raise UserError(f"--dataset_mode {mode!r} is unknown: use one of {', '.join(DATASETS)}")
    dataset = DATASETS[mode](opt, phase, train)
    logger.info("dataset [%s] was created: %d items from %s (phase %s)",
                type(dataset).__name__, len(dataset), opt.dataroot, phase)
    return dataset


class EpochSampler(Sampler):
    """Indices 0..n-1, in order or in a permutation drawn from a torch.Generator seeded by (seed, epoch)."""

    def __init__(self, n, seed, shuffle, epoch=1):
        self.n, self.seed, self.shuffle, self.epoch = n, int(seed), bool(shuffle), int(epoch)

    def set_epoch(self, epoch):
        self.epoch = int(epoch)

    def __iter__(self):
        if not self.shuffle:
            return iter(range(self.n))
        generator = torch.Generator()
        generator.manual_seed(derive_seed(STREAM_ORDER, self.seed, self.epoch))
        return iter(torch.randperm(self.n, generator=generator).tolist())

    def __len__(self):
        return self.n


class DistributedEpochSampler(EpochSampler):
    """This process's share of :class:`EpochSampler`'s order: items ``rank, rank + world, ...`` of the
    one permutation every process draws from (seed, epoch), the order padded by wrapping around to a
    multiple of ``world`` (as torch's DistributedSampler pads). Iteration k of ``world`` processes at
    batch b thus sees the images that iteration k of one process at batch ``world * b`` sees."""

    def __init__(self, n, seed, shuffle, epoch=1, rank=0, world=1):
        super().__init__(n, seed, shuffle, epoch)
        self.rank, self.world = int(rank), int(world)

    def __iter__(self):
        order = list(super().__iter__())
        padded = -(-self.n // self.world) * self.world
        order = (order * -(-padded // max(self.n, 1)))[:padded]
        return iter(order[self.rank:padded:self.world])

    def __len__(self):
        return -(-self.n // self.world)


class EpochDataLoader(DataLoader):
    """A DataLoader whose order and augmentation follow :meth:`set_epoch`; iterating twice in one epoch
    gives the same batches. A UserError raised in a worker reaches the caller as a one-line UserError.
    """

    def set_epoch(self, epoch):
        """Select the epoch for the next iteration (workers start afresh each iteration, with this epoch)."""
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)
        if hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(epoch)

    def __iter__(self):
        iterator = super().__iter__()
        try:
            yield from iterator
        except UserError as err:
            raise UserError(_worker_message(str(err))) from None
        finally:
            # after an error or an early break, stop the workers now: left to garbage collection,
            # their shutdown waits out torch's join timeouts (seconds per worker)
            shutdown = getattr(iterator, "_shutdown_workers", None)
            if shutdown is not None:
                shutdown()


def _worker_message(text):
    """The original one-line message of a UserError re-raised by torch from a worker with its traceback."""
    if not text.startswith("Caught UserError"):
        return text
    marker = "UserError: "
    for line in reversed(text.splitlines()):
        if marker in line:
            return line.split(marker, 1)[1]
    return text.splitlines()[0]


def _collate(items):
    """torch's default collation, with images of different sizes in one batch as a UserError."""
    for key in ("A", "B"):
        shapes = {tuple(item[key].shape) for item in items if key in item}
        if len(shapes) > 1:
            break
    if len(shapes) > 1:
        raise UserError(f"images of one batch differ in size ({', '.join(sorted(map(str, shapes)))}): use "
                        "--batch_size 1 or a --preprocess that crops to one size (resize_and_crop, crop)")
    return default_collate(items)


def _workers(requested):
    """Loader processes: as requested, but no more than the CPUs this process may use (the default
    of 8 would oversubscribe a laptop and makes torch warn)."""
    try:
        available = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        available = os.cpu_count() or 1
    return min(requested, available)


def size_batches(dataset, batch_size):
    """Batches of indices in dataset order in which every item has the same image sizes
    (``dataset.item_size_key``): a batch is closed when it is full, so when all images share one size
    these are the plain consecutive batches. Lets evaluation batch images of different sizes."""
    batches, filling = [], {}
    for index in range(len(dataset)):
        batch = filling.setdefault(dataset.item_size_key(index), [])
        batch.append(index)
        if len(batch) == batch_size:
            batches.append(batch)
            filling[dataset.item_size_key(index)] = []
    batches.extend(b for b in filling.values() if b)
    return batches


def create_dataloader(opt, dataset, epoch=1, shuffle=None, batch_size=None, num_workers=None, by_size=False, rank=0,
                      world=1):
    """A loader over ``dataset`` for ``epoch``: shuffled unless opt.serial_batches (or ``shuffle=False``),
    batches of ``batch_size`` (default opt.batch_size), ``num_workers`` (default opt.num_threads) workers,
    last partial batch kept. Call ``loader.set_epoch(e)`` to reuse it for a later epoch. With
    ``world > 1`` the loader reads process ``rank``'s share (:class:`DistributedEpochSampler`).

    ``by_size`` (in order, not shuffled): batches of images of one size each (:func:`size_batches`),
    for evaluation on images that keep their own sizes (``--preprocess none`` or ``scale_width``).
    """
    if shuffle is None:
        shuffle = not opt.serial_batches
    if by_size and hasattr(dataset, "item_size_key"):
        loader = EpochDataLoader(
            dataset,
            batch_sampler=size_batches(dataset, opt.batch_size if batch_size is None else batch_size),
            num_workers=_workers(opt.num_threads if num_workers is None else num_workers),
            persistent_workers=False,
            collate_fn=_collate,
        )
        loader.set_epoch(epoch)
        return loader
    sampler = EpochSampler(len(dataset), opt.seed, shuffle, epoch) if world == 1 else \
        DistributedEpochSampler(len(dataset), opt.seed, shuffle, epoch, rank, world)
    loader = EpochDataLoader(
        dataset,
        batch_size=opt.batch_size if batch_size is None else batch_size,
        sampler=sampler,
        num_workers=_workers(opt.num_threads if num_workers is None else num_workers),
        drop_last=False,
        persistent_workers=False,
        collate_fn=_collate,
    )
    loader.set_epoch(epoch)
    return loader
