"""Generator families by name, and the contract every family answers.

A family is one file in this folder holding one ``nn.Module`` subclass of :class:`Generator`; its plain,
mask (search) and pruned forms are the same class built with other arguments (``widths``, ``mask``).
Everything the pipeline asks of a generator it asks the family, so nothing outside this folder branches
on a family name:

* options: the ``--netG`` strings it builds (``netG_choices``), the constructor arguments a string fixes
  (``netG_args``), the default for a crop size (``default_netG``), the full-width ``config`` the options
  describe (``options_config``) and the image sides it accepts (``size_multiple``, ``min_size``);
* architecture: ``config()`` (JSON-able constructor arguments; ``cls(**args)`` rebuilds it) and the
  argument that must agree between a teacher and its student (``depth_name``);
* channels: ``structure()``, a :class:`models.structure.ChannelStructure` naming every conv, the channel
  sets it reads and writes (a set that several convs write is a channel group; a depthwise conv reads
  and writes one set), its mask, norm, removable unit, the loss role of the mask and where a mask scale
  folds. The mask losses, the search, the folding, the pruning, its report and the MACs estimate read
  only this. The search state follows from it too: per-channel coefficients for every channel group,
  per-layer multipliers for the masks of role ``"balanced"`` (compress/mask_search.py);
* distillation: ``forward_features(x, roles)`` and the roles hooked by default (``distill_roles``);
* the original code's checkpoints: ``is_original(state_dict)``, ``from_original(state_dict, cfg,
  source)`` -> ``(config, state_dict)`` and back, ``net.to_original()``; both directions read one
  table of (our module, original module) pairs per family;
* pytorch-CycleGAN-and-pix2pix ("upstream", the code the original was built on): ``is_upstream(state_dict)``
  and ``from_upstream(state_dict, norm, dropout, source)`` -> ``(config, state_dict)``, reading the same
  table (upstream's plain generators have the original's plain layout, plus their norms and dropouts).
  A family upstream has no counterpart of keeps the defaults (never upstream).

Steps to add a family: write ``models/families/<name>.py`` with the subclass (see resnet.py), add it to
``FAMILIES`` below, and add its structure to tests/models/test_families.py, whose checks (pruned == masked,
MACs estimate == counted MACs, folding is exact, config round trip) then run for it.
"""
from models.families.base import NORMS, Generator, make_norm
from models.families.mobile_resnet import MobileResnetGenerator
from models.families.resnet import ResnetGenerator
from models.families.unet import UnetGenerator
from util.errors import UserError

__all__ = ["FAMILIES", "NETG_CHOICES", "NORMS", "Generator", "make_norm", "upstream_family", "build", "for_netG", "from_original", "get", "of_config",
           "upgrade_checkpoint"]

FAMILIES = {cls.family: cls for cls in (ResnetGenerator, UnetGenerator, MobileResnetGenerator)}
NETG_CHOICES = tuple(netG for cls in FAMILIES.values() for netG in cls.netG_choices)


def get(name, source="generator"):
    """The family class registered under ``name``; UserError naming ``source`` when there is none."""
    if name not in FAMILIES:
        raise UserError(f"{source}: unknown generator family {name!r} (known: {', '.join(FAMILIES)})")
    return FAMILIES[name]


def for_netG(netG):
    """The family class that builds ``--netG netG``; UserError when none does."""
    for cls in FAMILIES.values():
        if netG in cls.netG_choices:
            return cls
    raise UserError(f"unknown --netG {netG!r}: use one of {', '.join(NETG_CHOICES)}")


def of_config(config, source="generator"):
    return get(config.get("family"), source)


def build(config, source="generator"):
    """The generator a ``config()`` dict describes (weights as the constructor leaves them)."""
    args = dict(config)
    return get(args.pop("family"), source)(**args)


def from_original(state_dict, cfg, source):
    """``(config, state_dict)`` of this project for an original generator state dict, by the first
    family that recognises its key layout; UserError when none does."""
    for cls in FAMILIES.values():
        if cls.is_original(state_dict):
            return cls.from_original(state_dict, cfg, source)
    raise UserError(f"{source}: unknown generator layout (keys {sorted(state_dict)[:3]}...); expected a generator "
                    "of the original DMAD code (CycleGAN ResNet, pix2pix U-Net or the mobile ResNet, mask or plain)")


def upstream_family(state_dict, source):
    """The family class that recognises ``state_dict`` as a generator of pytorch-CycleGAN-and-pix2pix
    (``Generator.is_upstream``); UserError when none does."""
    for cls in FAMILIES.values():
        if cls.is_upstream(state_dict):
            return cls
    raise UserError(f"{source}: unknown generator layout (keys {sorted(state_dict)[:3]}...); expected a "
                    "pytorch-CycleGAN-and-pix2pix ResnetGenerator (--netG resnet_6blocks / resnet_9blocks) or "
                    "UnetGenerator (--netG unet_128 / unet_256)")


def upgrade_checkpoint(state):
    """Bring the generator state dicts of a checkpoint this project wrote to the current layout, in
    place (``Generator.upgrade_state_dict``); search state they held moves to
    ``state["search"]["group_coeff"]`` when the checkpoint has a search state, else it is dropped.
    Returns ``state``."""
    nets, configs = state.get("nets"), state.get("configs")
    if not isinstance(nets, dict) or not isinstance(configs, dict):
        return state
    for name, state_dict in nets.items():
        cls = FAMILIES.get((configs.get(name) or {}).get("family"))
        if cls is None or not isinstance(state_dict, dict):
            continue
        nets[name], coeff = cls.upgrade_state_dict(state_dict)
        if coeff and isinstance(state.get("search"), dict):
            state["search"].setdefault("group_coeff", {}).setdefault(name, coeff)
    return state
