"""Checkpoints written by the original DMAD code (method.md §5.1-§5.4, §5.6, §10).

The original names layers by their index in ``nn.Sequential`` containers (``model.11``,
``model.13.conv_block.8``, ``model.model.2.model.4.model.3``). This module is the only place that
knows those indices: it maps them to this project's role names (``down2.mask``,
``blocks.0.conv2.mask``, ``down3.mask``), reads the architecture (family, widths, kept blocks) off
the tensor shapes, and returns native-like checkpoints ``{"model", "nets", "configs", ...}``.

Layouts understood (thop's ``total_ops``/``total_params`` entries and a DataParallel ``module.``
prefix are dropped):

* search: ``{G_A, G_B, D_A, D_B, epoch, fid}`` / ``{G, D, epoch, fid}`` with ``*.mask_weight`` and
  ``*.bound`` in the generators;
* plain or pruned: ``{G_A, G_B, D_A, D_B, [epoch], cfg: (cfgA, cfgB) | (None, None), fid}`` /
  ``{G, D, [epoch], cfg: (filter_cfgs, channel_cfgs), fid}``.
"""
import logging
import numbers

import torch

from util.errors import UserError

log = logging.getLogger("dmad")

_THOP_KEYS = ("total_ops", "total_params")
_ORIGINAL_PLAIN_NGF = 64  # the original's plain ResNet ignored --ngf (§5.2)


# ------------------------------------------------------------------------------------------ helpers

def _clean(sd, source):
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


def _rename(sd, pairs, source):
    """``sd`` with each original module path replaced by ours; ``pairs`` = [(ours, original)].
    A key outside every pair means a layout this module does not know."""
    ours_of = {orig: ours for ours, orig in pairs}
    out = {}
    for key, value in sd.items():
        module, _, leaf = key.rpartition(".")
        if module not in ours_of:
            raise UserError(f"{source}: unexpected entry {key!r}; not a generator layout of the original DMAD "
                            "code (CycleGAN ResNet or pix2pix U-Net, mask or plain)")
        out[f"{ours_of[module]}.{leaf}"] = value
    return out


def _require(state, key, source):
    if key not in state:
        raise UserError(f"{source}: no {key!r} entry; not a generator layout of the original DMAD code")
    return state[key]


def _check_fits(cls, config, state, source):
    """Build ``cls`` from ``config`` without weights and compare every tensor name and shape."""
    args = {k: v for k, v in config.items() if k != "family"}
    try:
        with torch.device("meta"):
            expected = {k: tuple(v.shape) for k, v in cls(**args).state_dict().items()}
    except ValueError as err:
        raise UserError(f"{source}: unsupported architecture ({err})") from None
    got = {k: tuple(v.shape) for k, v in state.items()}
    if expected != got:
        diff = sorted(set(expected.items()) ^ set(got.items()))[:2]
        raise UserError(f"{source}: the weights do not form a {cls.__name__} ({diff}); "
                        "not a layout of the original DMAD code")


def _plain(value):
    """Checkpoint metadata (fid, cfg, epoch) as JSON-able values."""
    if torch.is_tensor(value):
        return value.item() if value.numel() == 1 else value.tolist()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    return value


def _given(cfg):
    """Whether a stored cfg says anything: None and (None, None) do not."""
    return cfg is not None and not (isinstance(cfg, (list, tuple)) and all(c is None for c in cfg))


def _has_masks(sd):
    return any(k.endswith(".mask_weight") for k in sd)


# ------------------------------------------------------------------------------------------ ResNet

def _resnet_kept_blocks(cfg, present, source):
    """Original block numbers of the ``present`` blocks of a pruned plain ResNet, and the total
    number of blocks, from its 23-entry cfg (k_i = cfg[3 + 2i] = 0 marks a removed block)."""
    if cfg is None:
        return list(range(len(present))), len(present)
    cfg = [int(c) for c in _plain(cfg)]
    if len(cfg) < 5 or (len(cfg) - 5) % 2:
        raise UserError(f"{source}: its cfg has {len(cfg)} entries; a ResNet cfg has 5 + 2 x blocks")
    n_blocks = (len(cfg) - 5) // 2
    kept = [i for i in range(n_blocks) if cfg[3 + 2 * i] > 0]
    if len(kept) != len(present):
        raise UserError(f"{source}: its cfg keeps {len(kept)} residual blocks but the weights hold {len(present)}")
    return kept, n_blocks


def _resnet_pairs(sd, cfg, source):
    """[(our module, original module)], n_blocks, kept block numbers, unmask_last_upconv."""
    mask = _has_masks(sd)
    present = sorted({int(k.split(".")[1]) for k in sd if ".conv_block." in k})
    first = 13 if mask else 10  # first block index (§5.1 / §5.2)
    if present != list(range(first, first + len(present))):
        raise UserError(f"{source}: residual blocks at model.{present}; not a ResNet layout of the original DMAD code")
    n = len(present)
    if mask:
        kept, n_blocks = list(range(n)), n
        pairs = [("stem.conv", "model.1"), ("stem.mask", "model.3"), ("down1.conv", "model.5"),
                 ("down1.mask", "model.7"), ("down2.conv", "model.9"), ("down2.mask", "model.11")]
        for j in range(n):
            b = f"model.{first + j}.conv_block"
            pairs += [(f"blocks.{j}.conv1.conv", f"{b}.1"), (f"blocks.{j}.conv1.mask", f"{b}.3"),
                      (f"blocks.{j}.conv2.conv", f"{b}.6"), (f"blocks.{j}.conv2.mask", f"{b}.8")]
        up1, up2 = first + n, first + n + 4  # convT, IN, Mask, ReLU
        unmask_last = f"model.{up2 + 2}.mask_weight" not in sd
        pairs += [("up1.conv", f"model.{up1}"), ("up1.mask", f"model.{up1 + 2}"), ("up2.conv", f"model.{up2}")]
        if not unmask_last:
            pairs.append(("up2.mask", f"model.{up2 + 2}"))
        # after up2: IN, [Mask], ReLU, pad, conv
        pairs.append(("head.conv", f"model.{up2 + (4 if unmask_last else 5)}"))
    else:
        kept, n_blocks = _resnet_kept_blocks(cfg, present, source)
        unmask_last = False
        pairs = [("stem.conv", "model.1"), ("down1.conv", "model.4"), ("down2.conv", "model.7")]
        for j, i in enumerate(kept):
            b = f"model.{first + j}.conv_block"
            pairs += [(f"blocks.{i}.conv1.conv", f"{b}.1"), (f"blocks.{i}.conv2.conv", f"{b}.5")]
        # convT, IN, ReLU, convT, IN, ReLU, pad, conv
        pairs += [("up1.conv", f"model.{first + n}"), ("up2.conv", f"model.{first + n + 3}"),
                  ("head.conv", f"model.{first + n + 7}")]
    return pairs, n_blocks, kept, unmask_last


def _convert_resnet(sd, cfg, source):
    from models.resnet_generator import ResnetGenerator, default_widths

    mask = _has_masks(sd)
    pairs, n_blocks, kept, unmask_last = _resnet_pairs(sd, cfg, source)
    state = _rename(sd, pairs, source)
    shape = lambda role: _require(state, f"{role}.weight", source).shape  # noqa: E731
    widths = {"stem": shape("stem.conv")[0], "down1": shape("down1.conv")[0], "stream": shape("down2.conv")[0],
              "up1": shape("up1.conv")[1], "up2": shape("up2.conv")[1]}
    for i in range(n_blocks):
        widths[f"blocks.{i}"] = shape(f"blocks.{i}.conv1.conv")[0] if i in kept else 0
    widths = {k: int(v) for k, v in widths.items()}
    if cfg is not None and not mask:
        expected = [int(c) for c in _plain(cfg)]
        have = [widths[k] for k in ("stem", "down1", "stream")]
        if expected[:3] != have:
            log.warning("%s: its cfg %s disagrees with the weight shapes %s; the shapes are used", source,
                        expected[:3], have)
    ngf = widths["stem"]
    if not mask and widths != default_widths(ngf, n_blocks):
        ngf = _ORIGINAL_PLAIN_NGF  # a pruned model: the full width it came from
    if mask:
        state["block_coeff"] = torch.ones(widths["stream"])  # search state the original did not save
    config = {"family": "resnet", "input_nc": int(shape("stem.conv")[1]), "output_nc": int(shape("head.conv")[0]),
              "ngf": ngf, "n_blocks": n_blocks, "widths": widths, "mask": mask, "unmask_last_upconv": unmask_last}
    _check_fits(ResnetGenerator, config, state, source)
    return config, state


# ------------------------------------------------------------------------------------------ U-Net

def _unet_pairs(sd, source):
    """[(our module, original module)] and the number of levels of a nested original U-Net."""
    mask = "model.model.1.mask_weight" in sd
    # index of the sub-block inside the outermost / middle Sequentials (§5.3, §5.4)
    sub_outer, sub_middle = (2, 4) if mask else (1, 3)
    prefixes = ["model.model"]
    while True:
        nxt = f"{prefixes[-1]}.{sub_outer if len(prefixes) == 1 else sub_middle}.model"
        if not any(k.startswith(nxt + ".") for k in sd):
            break
        prefixes.append(nxt)
    n = len(prefixes)
    if n < 5:
        raise UserError(f"{source}: a U-Net with {n} levels; the original's U-Net has 8 (at least 5 are supported)")
    pairs = []
    for level, p in enumerate(prefixes, start=1):
        d, u = f"down{level}", f"up{level}"
        if level == 1:
            pairs += [(f"{d}.conv", f"{p}.0"), (f"{u}.conv", f"{p}.4" if mask else f"{p}.3")]
            if mask:
                pairs.append((f"{d}.mask", f"{p}.1"))
        elif level < n:
            if mask:
                pairs += [(f"{d}.conv", f"{p}.1"), (f"{d}.norm", f"{p}.2"), (f"{d}.mask", f"{p}.3"),
                          (f"{u}.conv", f"{p}.6"), (f"{u}.norm", f"{p}.7"), (f"{u}.mask", f"{p}.8")]
            else:
                pairs += [(f"{d}.conv", f"{p}.1"), (f"{d}.norm", f"{p}.2"), (f"{u}.conv", f"{p}.5"),
                          (f"{u}.norm", f"{p}.6")]
        else:
            if mask:
                pairs += [(f"{d}.conv", f"{p}.1"), (f"{d}.mask", f"{p}.2"), (f"{u}.conv", f"{p}.4"),
                          (f"{u}.norm", f"{p}.5"), (f"{u}.mask", f"{p}.6")]
            else:
                pairs += [(f"{d}.conv", f"{p}.1"), (f"{u}.conv", f"{p}.3"), (f"{u}.norm", f"{p}.4")]
    return pairs, n


def _convert_unet(sd, cfg, source):
    from models.unet_generator import UnetGenerator, default_widths

    mask = _has_masks(sd)
    pairs, n = _unet_pairs(sd, source)
    state = _rename(sd, pairs, source)
    shape = lambda role: _require(state, f"{role}.weight", source).shape  # noqa: E731
    widths = {f"down{L}": int(shape(f"down{L}.conv")[0]) for L in range(1, n + 1)}
    widths.update({f"up{L}": int(shape(f"up{L}.conv")[1]) for L in range(n, 1, -1)})
    if cfg is not None and isinstance(cfg, (list, tuple)) and len(cfg) == 2 and cfg[0] is not None:
        filters = [int(c) for c in _plain(cfg[0])]
        have = [widths[f"down{L}"] for L in range(1, n + 1)] + [widths[f"up{L}"] for L in range(n, 1, -1)]
        if filters != have:
            log.warning("%s: its filter_cfgs %s disagree with the weight shapes %s; the shapes are used",
                        source, filters, have)
    ngf = widths["down1"]
    if not mask and widths != default_widths(ngf, n):
        ngf = _ORIGINAL_PLAIN_NGF  # nominal: the full width of a pruned U-Net is not recorded
    config = {"family": "unet", "input_nc": int(shape("down1.conv")[1]), "output_nc": int(shape("up1.conv")[1]),
              "ngf": ngf, "num_downs": n, "widths": widths, "mask": mask, "use_dropout": True}
    _check_fits(UnetGenerator, config, state, source)
    return config, state


# ------------------------------------------------------------------------------------------ public

def convert_generator_state(sd, cfg=None, source="generator"):
    """``(config, state_dict)`` of this project for a generator state dict of the original code.

    The family (ResNet / U-Net), masks, ngf, blocks / levels, ``unmask_last_upconv``, the image
    channels and every width come from the keys and tensor shapes. ``cfg`` (the original's list for a
    pruned ResNet) tells which blocks a pruned ResNet kept; without it the present blocks are taken
    as blocks 0..n-1. UserError for any other layout.
    """
    sd = _clean(sd, source)
    if any(k.startswith("model.model.") for k in sd):
        return _convert_unet(sd, cfg, source)
    if "model.1.weight" in sd and any(".conv_block." in k for k in sd):
        return _convert_resnet(sd, cfg, source)
    raise UserError(f"{source}: unknown generator layout (keys {sorted(sd)[:3]}...); expected the original "
                    "DMAD code's ResNet (model.1.weight, model.N.conv_block...) or U-Net (model.model...)")


def convert_discriminator_state(sd, source="discriminator"):
    """``(config, state_dict)`` for an original PatchGAN state dict (``model.0`` ... ``model.11``):
    convs at 0, 2, 5, 8 and the head at 3n + 2, norms right after convs 2, 5, 8 (§5.6)."""
    from models.discriminator import NLayerDiscriminator

    sd = _clean(sd, source)
    convs = sorted({int(k.split(".")[1]) for k, v in sd.items()
                    if k.startswith("model.") and k.endswith(".weight") and v.dim() == 4})
    n_layers = (convs[-1] - 2) // 3 if convs else 0
    if n_layers < 1 or convs != [0] + [2 + 3 * j for j in range(n_layers)] + [2 + 3 * n_layers]:
        raise UserError(f"{source}: convs at model.{convs}; not a PatchGAN layout of the original DMAD code")
    pairs = [("layers.conv1", "model.0"), ("layers.head", f"model.{2 + 3 * n_layers}")]
    for j in range(n_layers):
        pairs += [(f"layers.conv{j + 2}", f"model.{2 + 3 * j}"), (f"layers.norm{j + 2}", f"model.{3 + 3 * j}")]
    state = _rename(sd, pairs, source)
    first = state["layers.conv1.weight"]
    norm = "batch" if any(k.endswith(".running_mean") for k in state) else "instance"
    config = {"input_nc": int(first.shape[1]), "ndf": int(first.shape[0]), "n_layers": n_layers, "norm": norm}
    _check_fits(NLayerDiscriminator, config, state, source)
    return config, state


def load_model_state(state, path):
    """A checkpoint of the original code as a native-like dict: ``{"model", "stage", "legacy": True,
    "nets": {name: state_dict}, "configs": {name: config}, "epoch", "fid", "cfg": {name: cfg}}``."""
    if not isinstance(state, dict):
        raise UserError(f"{path} is neither a checkpoint of this project nor one of the original DMAD code")
    if "G_A" in state and "G_B" in state:
        model, gens, discs = "cyclegan", ("G_A", "G_B"), ("D_A", "D_B")
        pair = state.get("cfg")
        cfgs = dict(zip(gens, pair)) if isinstance(pair, (list, tuple)) and len(pair) == 2 else {}
        cfgs = {k: v for k, v in cfgs.items() if _given(v)}
    elif "G" in state:
        model, gens, discs = "pix2pix", ("G",), ("D",)
        cfgs = {"G": state["cfg"]} if _given(state.get("cfg")) else {}
    else:
        raise UserError(f"{path}: unknown checkpoint layout (keys {sorted(map(str, state))[:6]}); expected a "
                        "checkpoint of this project or the original's {G_A, G_B, D_A, D_B, ...} / {G, D, ...}")
    nets, configs = {}, {}
    for name in gens:
        configs[name], nets[name] = convert_generator_state(state[name], cfgs.get(name), f"{path} [{name}]")
    for name in discs:
        if name in state:
            configs[name], nets[name] = convert_discriminator_state(state[name], f"{path} [{name}]")
    if any(configs[g]["mask"] for g in gens):
        stage = "search"
    elif any(_given(c) for c in cfgs.values()):
        stage = "pruned"
    else:
        stage = "train"
    epoch = state.get("epoch")
    return {"model": model, "stage": stage, "legacy": True, "nets": nets, "configs": configs,
            "epoch": int(epoch) if epoch is not None else None, "fid": _plain(state.get("fid")),
            "cfg": {k: _plain(v) for k, v in cfgs.items()}}


def load_generator(state, direction, path):
    """The generator translating ``direction`` ('AtoB'/'BtoA') of an original checkpoint, in eval mode."""
    from models import generator_from_state

    converted = load_model_state(state, path)
    for name in {"AtoB": ("G_A", "G"), "BtoA": ("G_B", "G")}[direction]:
        if name in converted["nets"]:
            return generator_from_state(converted["configs"][name], converted["nets"][name], path).eval()
    raise UserError(f"{path} holds no generator for {direction}")
