"""Checkpoint files: plain dicts of tensors and JSON-able values, written atomically.

Every file this project writes carries ``format == "dmad"`` and a ``version``; it loads with
``torch.load(path, weights_only=True)``. Writing goes to a temporary file in the same folder that is
renamed over the target, so an interrupted save never leaves a truncated checkpoint behind.
"""
import os
import random
import tempfile

import numpy as np
import torch

from util.errors import UserError

FORMAT = "dmad"
VERSION = 1


def save_checkpoint(state, path):
    """Write ``state`` to ``path`` atomically (temp file + rename), creating the folder."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".pth", dir=folder)
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(state, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def load_checkpoint(path, map_location="cpu"):
    """Load a checkpoint with ``weights_only=True``; a missing or unreadable file is a UserError."""
    path = os.path.expanduser(path)
    if not os.path.isfile(path):
        raise UserError(f"checkpoint {path} does not exist: check --load_path / --pretrain_path")
    try:
        with torch.serialization.safe_globals(_numpy_scalar_globals()):
            state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unpickling failure means "not a checkpoint we can read"
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise UserError(f"{path} is not a readable checkpoint ({type(err).__name__}: {first[:160]})") from None
    if is_native(state):
        from models.families import upgrade_checkpoint  # the families know their earlier layouts

        upgrade_checkpoint(state)
    return state


def _numpy_scalar_globals():
    """NumPy scalars that the original code's checkpoints contain (its ``fid`` is a float64); allowed
    for the weights-only unpickler. Nothing else from NumPy is let through."""
    scalar = np._core.multiarray.scalar if hasattr(np, "_core") else np.core.multiarray.scalar
    allowed = [scalar, (scalar, "numpy.core.multiarray.scalar"), np.dtype]
    allowed += [type(np.dtype(t)) for t in (np.float64, np.float32, np.int64, np.int32)]
    return allowed


def is_native(state):
    return isinstance(state, dict) and state.get("format") == FORMAT


def rng_state():
    """The states of every random generator a run uses, as weights_only-loadable values."""
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


def options_dict(opt):
    """The options as JSON-able values (what checkpoints and opt.txt record)."""
    return {k: v for k, v in vars(opt).items() if isinstance(v, (int, float, str, bool, list, type(None)))}
