"""The random generators of a run: seeding them at the start of a stage, and their state in checkpoints.

A run has three global generators: torch's (weight initialisation, dropout; CUDA's with it), NumPy's
and Python's ``random`` (seeded and checkpointed too, so that any code drawing from them repeats). The
data order, crops, flips and the image pools draw from generators of their own, derived from
``--seed`` alone (``data.base_dataset.derive_seed``, ``models.image_pool``), so they do not depend on
these states.
"""
import random

import numpy as np
import torch


def seed_everything(seed):
    """Seed torch (the CPU and every CUDA device), Python's ``random`` and NumPy's global generator
    with the integer ``seed``, in that order.

    NumPy's global generator takes 32-bit seeds: it gets ``seed mod 2**32`` (the same value for every
    seed below 2**32). train.py and prune.py --finetune call this with ``--seed`` before they build
    their model; under torchrun each process then splits its stream with ``seed + rank``
    (util/distributed.py)."""
    seed = int(seed)
    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed % 2 ** 32)


def rng_state():
    """The states of every random generator a run uses, as weights_only-loadable values:
    ``{"torch", "numpy", "python"[, "cuda"]}``."""
    np_state = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *map(_plain, np_state[2:])],
        "python": _plain(random.getstate()),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state):
    """Restore the generators from :func:`rng_state`'s record (CUDA only when the device count matches)."""
    torch.set_rng_state(state["torch"])
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    random.setstate(_tuples(state["python"]))
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


def _plain(value):
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def _tuples(value):
    if isinstance(value, list):
        return tuple(_tuples(v) for v in value)
    return value
