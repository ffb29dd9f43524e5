"""Helpers the families share to read and write the original DMAD code's generator layout, whose
layers are named by their index in ``nn.Sequential`` containers (docs/method.md §5.1-§5.4, §10).
Each family keeps its own table of (our module, original module) pairs; models/legacy.py turns a
whole checkpoint of the original code into a native-like one with them."""
import numbers

import torch

from util.errors import UserError

_THOP_KEYS = ("total_ops", "total_params")
ORIGINAL_PLAIN_NGF = 64  # the original's plain ResNet ignored --ngf (§5.2)
# what the helpers below say a state dict is not, unless the caller names another layout
ORIGINAL_GENERATOR = "a generator layout of the original DMAD code (CycleGAN ResNet or pix2pix U-Net, mask or plain)"


def clean(sd, source):
    """The state dict without thop counters and without a DataParallel ``module.`` prefix."""
    if not isinstance(sd, dict) or not sd or not all(torch.is_tensor(v) for v in sd.values()):
        raise UserError(f"{source} is not a state dict of tensors: not a checkpoint of the original DMAD code")
    out = {}
    for key, value in sd.items():
        if key.rsplit(".", 1)[-1] in _THOP_KEYS:
            continue
        if key.endswith(".bound") and value.dim() == 0:
            value = value.reshape(1)
        out[key[len("module."):] if key.startswith("module.") else key] = value
    return out


def rename(sd, pairs, source, layout=ORIGINAL_GENERATOR):
    """``sd`` with each original module path replaced by ours; ``pairs`` = [(ours, original)].
    A key outside every pair means a layout this module does not know: UserError saying the file is
    not ``layout``."""
    ours_of = {orig: ours for ours, orig in pairs}
    out = {}
    for key, value in sd.items():
        module, _, leaf = key.rpartition(".")
        if module not in ours_of:
            raise UserError(f"{source}: unexpected entry {key!r}; not {layout}")
        out[f"{ours_of[module]}.{leaf}"] = value
    return out


def require(state, key, source, layout="a generator layout of the original DMAD code"):
    if key not in state:
        raise UserError(f"{source}: no {key!r} entry; not {layout}")
    return state[key]


def check_fits(cls, config, state, source, layout="a layout of the original DMAD code"):
    """Build ``cls`` from ``config`` without weights and compare every tensor name and shape;
    UserError saying the file is not ``layout`` when they differ."""
    args = {k: v for k, v in config.items() if k != "family"}
    try:
        with torch.device("meta"):
            expected = {k: tuple(v.shape) for k, v in cls(**args).state_dict().items()}
    except ValueError as err:
        raise UserError(f"{source}: unsupported architecture ({err})") from None
    got = {k: tuple(v.shape) for k, v in state.items()}
    if expected != got:
        diff = sorted(set(expected.items()) ^ set(got.items()))[:2]
        raise UserError(f"{source}: the weights do not form a {cls.__name__} ({diff}); not {layout}")


def plain(value):
    """Checkpoint metadata (fid, cfg, epoch) as JSON-able values."""
    if torch.is_tensor(value):
        return value.item() if value.numel() == 1 else value.tolist()
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    return value


def given(cfg):
    """Whether a stored cfg says anything: None and (None, None) do not."""
    return cfg is not None and not (isinstance(cfg, (list, tuple)) and all(c is None for c in cfg))


def has_masks(sd):
    return any(k.endswith(".mask_weight") for k in sd)
