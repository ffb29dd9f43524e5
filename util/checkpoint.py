"""Checkpoint files: plain dicts of tensors and JSON-able values, written atomically.

Every file this project writes carries ``format == "dmad"`` and a ``version``; it loads with
``torch.load(path, weights_only=True)``. Writing goes to a temporary file in the same folder that is
renamed over the target, so an interrupted save never leaves a truncated checkpoint behind.
"""
import os
import pickletools
import warnings
import zipfile

import numpy as np
import torch

from util.errors import UserError
from util.files import publish, temporary

FORMAT = "dmad"
VERSION = 1


def save_checkpoint(state, path):
    """Write ``state`` to ``path`` atomically (temp file + rename), creating the folder."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = temporary(folder, os.path.basename(path))
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(state, handle)
            handle.flush()
            os.fsync(handle.fileno())
        publish(tmp, path)  # permissions of the umask, like every other output
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def check_checkpoint_file(path, option="--load_path"):
    """UserError unless ``path`` is an existing file: a folder and a missing path get their own message."""
    path = os.path.expanduser(path)
    if os.path.isdir(path):
        raise UserError(f"{option} {path} is a folder, not a checkpoint file: give the .pth file inside it "
                        "(e.g. model_best.pth or checkpoints/latest.pth)")
    if not os.path.isfile(path):
        raise UserError(f"{option} {path} does not exist: check the path of the checkpoint")
    return path


def load_checkpoint(path, map_location="cpu"):
    """Load a checkpoint with ``weights_only=True`` and check its network tensors.

    Raises UserError with one line for a missing path or a folder, a file that is not a torch
    checkpoint, one holding objects other than plain tensors and values (pickled code is never run),
    and one whose network tensors are not floating point or not finite (see :func:`check_networks`).
    """
    path = check_checkpoint_file(path, "checkpoint")
    try:
        with torch.serialization.safe_globals(_numpy_scalar_globals()), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch warns about pickle protocols before failing
            state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # noqa: BLE001 - every failure to unpickle is reported as one of two kinds
        if _holds_objects(path, err):
            raise UserError(f"{path} is not a readable checkpoint: it holds objects that are not plain tensors "
                            "(pickled classes or code, never run here); use a checkpoint saved as plain state "
                            "dicts") from None
        raise UserError(f"{path} is not a readable checkpoint: not a torch.save archive (truncated, or another "
                        "format); give a .pth file written by this project or the original DMAD code") from None
    if is_native(state):
        from models.families import upgrade_checkpoint  # the families know their earlier layouts

        upgrade_checkpoint(state)
    check_networks(state, path)
    return state


_OBJECT_OPS = {"GLOBAL", "STACK_GLOBAL", "REDUCE", "INST", "OBJ", "NEWOBJ", "NEWOBJ_EX", "BUILD"}


def _holds_objects(path, err):
    """True when the unpickling failed because the file asks for classes or functions (the weights-only
    unpickler refused them), read from the pickle's opcodes without running any."""
    if "allowed global" in str(err):
        return True
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                names = [n for n in archive.namelist() if n.endswith("data.pkl")]
                data = archive.read(names[0]) if names else b""
        else:
            with open(path, "rb") as handle:
                data = handle.read(1 << 26)
        ops = [op.name for op, _, _ in pickletools.genops(data)]  # raises unless it is a whole pickle
        return bool(_OBJECT_OPS.intersection(ops))
    except Exception:  # noqa: BLE001 - not a pickle at all
        return False


# the networks of the original code's layouts, stored at the top level of its checkpoints
_LEGACY_NETS = ("G", "D", "G_A", "G_B", "D_A", "D_B")


def network_state_dicts(state):
    """``{name: state dict}`` of the networks in a loaded checkpoint (native ``nets`` or the original
    code's top-level ``G``/``D``/``G_A``... entries)."""
    if not isinstance(state, dict):
        return {}
    if is_native(state):
        nets = state.get("nets")
        return {k: v for k, v in nets.items() if isinstance(v, dict)} if isinstance(nets, dict) else {}
    return {k: state[k] for k in _LEGACY_NETS if isinstance(state.get(k), dict)}


def check_networks(state, path):
    """UserError naming the first network tensor that is not floating point or not finite.

    BatchNorm's ``num_batches_tracked`` counters (integers by design) and thop's counters are exempt.
    A NaN or infinite weight makes every output black or white, and integer weights would silently
    change them, so such a checkpoint is refused wherever it is loaded.
    """
    for name, sd in network_state_dicts(state).items():
        for key, value in sd.items():
            if not torch.is_tensor(value) or key.rsplit(".", 1)[-1] in _COUNTERS:
                continue
            if not value.is_floating_point():
                raise UserError(f"{path}: network tensor {name}.{key} is {str(value.dtype).replace('torch.', '')}, "
                                "not floating point: the checkpoint is damaged or not a network; use another one")
            if not bool(torch.isfinite(value).all()):
                raise UserError(f"{path}: network tensor {name}.{key} holds NaN or infinite values (training "
                                "diverged before it was saved): use an earlier checkpoint")


_COUNTERS = ("num_batches_tracked", "total_ops", "total_params")


def _numpy_scalar_globals():
    """NumPy scalars that the original code's checkpoints contain (its ``fid`` is a float64); allowed
    for the weights-only unpickler. Nothing else from NumPy is let through."""
    scalar = np._core.multiarray.scalar if hasattr(np, "_core") else np.core.multiarray.scalar
    allowed = [scalar, (scalar, "numpy.core.multiarray.scalar"), np.dtype]
    allowed += [type(np.dtype(t)) for t in (np.float64, np.float32, np.int64, np.int32)]
    return allowed


def is_native(state):
    return isinstance(state, dict) and state.get("format") == FORMAT


def options_dict(opt):
    """The options as JSON-able values (what checkpoints and opt.txt record)."""
    return {k: v for k, v in vars(opt).items() if isinstance(v, (int, float, str, bool, list, type(None)))}
