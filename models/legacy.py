"""Checkpoints written by the original DMAD code (method.md §5.1-§5.4, §5.6, §10).

The original names layers by their index in ``nn.Sequential`` containers (``model.11``,
``model.13.conv_block.8``, ``model.model.2.model.4.model.3``). Each generator family maps its own
indices to this project's role names (``Generator.from_original`` in models/families/, with the
helpers of models/families/layout.py); this module holds the PatchGAN discriminator's map and turns a
whole checkpoint into a native-like one ``{"model", "nets", "configs", ...}``.

Layouts understood (thop's ``total_ops``/``total_params`` entries and a DataParallel ``module.``
prefix are dropped):

* search: ``{G_A, G_B, D_A, D_B, epoch, fid}`` / ``{G, D, epoch, fid}`` with ``*.mask_weight`` and
  ``*.bound`` in the generators;
* plain or pruned: ``{G_A, G_B, D_A, D_B, [epoch], cfg: (cfgA, cfgB) | (None, None), fid}`` /
  ``{G, D, [epoch], cfg: (filter_cfgs, channel_cfgs), fid}``.
"""
import logging

from models import MODELS, families
from models.discriminator import NLayerDiscriminator
from models.families.layout import check_fits, clean, given, plain, rename
from util.errors import UserError

log = logging.getLogger("dmad")


def convert_generator_state(sd, cfg=None, source="generator"):
    """``(config, state_dict)`` of this project for a generator state dict of the original code.

    The family whose key layout the state dict has converts it (``Generator.from_original`` in
    models/families/): masks, ngf, depth, the image channels and every width come from the keys and
    tensor shapes; ``cfg`` is the original's stored cfg (which blocks a pruned ResNet kept).
    UserError for any other layout.
    """
    return families.from_original(clean(sd, source), cfg, source)


def convert_discriminator_state(sd, source="discriminator", origin="the original DMAD code"):
    """``(config, state_dict)`` for an original PatchGAN state dict (``model.0`` ... ``model.11``):
    convs at 0, 2, 5, 8 and the head at 3n + 2, norms right after convs 2, 5, 8 (§5.6); n_layers from
    the conv indices, BatchNorm when running statistics are present, else InstanceNorm.
    pytorch-CycleGAN-and-pix2pix's NLayerDiscriminator has the same layout (``origin`` names the code
    the errors say the file is not of). UserError for another layout."""
    sd = clean(sd, source)
    layout = f"a PatchGAN layout of {origin}"
    convs = sorted({int(k.split(".")[1]) for k, v in sd.items()
                    if k.startswith("model.") and k.endswith(".weight") and v.dim() == 4})
    n_layers = (convs[-1] - 2) // 3 if convs else 0
    if n_layers < 1 or convs != [0] + [2 + 3 * j for j in range(n_layers)] + [2 + 3 * n_layers]:
        raise UserError(f"{source}: convs at model.{convs}; not {layout}")
    pairs = [("layers.conv1", "model.0"), ("layers.head", f"model.{2 + 3 * n_layers}")]
    for j in range(n_layers):
        pairs += [(f"layers.conv{j + 2}", f"model.{2 + 3 * j}"), (f"layers.norm{j + 2}", f"model.{3 + 3 * j}")]
    state = rename(sd, pairs, source, layout)
    first = state["layers.conv1.weight"]
    norm = "batch" if any(k.endswith(".running_mean") for k in state) else "instance"
    config = {"input_nc": int(first.shape[1]), "ndf": int(first.shape[0]), "n_layers": n_layers, "norm": norm}
    check_fits(NLayerDiscriminator, config, state, source, layout)
    return config, state


def load_model_state(state, path):
    """A checkpoint of the original code as a native-like dict: ``{"model", "stage", "legacy": True,
    "nets": {name: state_dict}, "configs": {name: config}, "epoch", "fid", "cfg": {name: cfg}}``."""
    if not isinstance(state, dict):
        raise UserError(f"{path} is neither a checkpoint of this project nor one of the original DMAD code")
    # the models whose generator nets the file holds, those with more generators first (G_A, G_B before G)
    fitting = sorted((cls for cls in MODELS.values() if all(name in state for name in cls.generator_names)),
                     key=lambda cls: -len(cls.generator_names))
    if not fitting:
        layouts = " / ".join("{" + ", ".join(cls.generator_names + cls.discriminator_names) + ", ...}"
                             for cls in {cls.generator_names: cls for cls in MODELS.values()}.values())
        raise UserError(f"{path}: unknown checkpoint layout (keys {sorted(map(str, state))[:6]}); expected a "
                        f"checkpoint of this project, the original's {layouts}, or a pytorch-CycleGAN-and-pix2pix "
                        "network's state dict")
    gens, discs = fitting[0].generator_names, fitting[0].discriminator_names
    fitting = [cls for cls in fitting if cls.generator_names == gens]
    cfg = state.get("cfg")
    if len(gens) == 1:  # one generator: cfg is its channel list
        cfgs = {gens[0]: cfg} if given(cfg) else {}
    else:  # one channel list per generator, in generator order
        cfgs = dict(zip(gens, cfg)) if isinstance(cfg, (list, tuple)) and len(cfg) == len(gens) else {}
        cfgs = {k: v for k, v in cfgs.items() if given(v)}
    nets, configs = {}, {}
    for name in gens:
        configs[name], nets[name] = convert_generator_state(state[name], cfgs.get(name), f"{path} [{name}]")
    for name in discs:
        if name in state:
            configs[name], nets[name] = convert_discriminator_state(state[name], f"{path} [{name}]")
    # among the models with these nets, the one whose generators are of the file's family (e.g. mobilecyclegan)
    family = configs[gens[0]]["family"]
    model = next((cls.name for cls in fitting if cls.generator_family.family == family), fitting[0].name)
    if any(configs[g]["mask"] for g in gens):
        stage = "search"
    elif any(given(c) for c in cfgs.values()):
        stage = "pruned"
    else:
        stage = "train"
    epoch = state.get("epoch")
    return {"model": model, "stage": stage, "legacy": True, "nets": nets, "configs": configs,
            "epoch": int(epoch) if epoch is not None else None, "fid": plain(state.get("fid")),
            "cfg": {k: plain(v) for k, v in cfgs.items()}}
