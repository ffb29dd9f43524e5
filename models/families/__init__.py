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
  per-layer multipliers for the masks of role ``"balanced"`` (models/mask_search.py);
* distillation: ``forward_features(x, roles)`` and the roles hooked by default (``distill_roles``);
* the original code's checkpoints: ``is_original(state_dict)``, ``from_original(state_dict, cfg,
  source)`` -> ``(config, state_dict)`` and back, ``net.to_original()``; both directions read one
  table of (our module, original module) pairs per family;
* pytorch-CycleGAN-and-pix2pix ("upstream", the code the original was built on): ``is_upstream(state_dict)``
  and ``from_upstream(state_dict, norm, dropout, source)`` -> ``(config, state_dict)``, reading the same
  table (upstream's plain generators have the original's plain layout, plus their norms and dropouts).
  A family upstream has no counterpart of keeps the defaults (never upstream).

Steps to add a family: write ``models/families/<name>.py`` with the subclass (see resnet.py), add it to
``FAMILIES`` below, and add its structure to tests/test_families.py, whose checks (pruned == masked,
MACs estimate == counted MACs, folding is exact, config round trip) then run for it.
"""
from torch import nn

from util.errors import UserError

NORMS = ("instance", "batch")  # the norm layers a ResNet or U-Net generator can be built with


def make_norm(kind, channels):
    """The norm layer of a generator built with ``norm=kind``: ``"instance"`` is affine-free without
    running statistics (CycleGAN's), ``"batch"`` has per-channel affine parameters and running
    statistics (pix2pix's). ValueError for another kind."""
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    raise ValueError(f"unknown norm {kind!r}; expected one of {NORMS}")


class Generator(nn.Module):
    """The family contract (see the module docstring); subclasses fill in every attribute and method."""

    family = ""  # registry name, recorded as ``config()["family"]``
    netG_choices = ()  # the --netG strings this family builds
    depth_name = ""  # constructor argument a teacher and its student must share (e.g. "n_blocks")

    @classmethod
    def netG_args(cls, netG):
        """Constructor arguments fixed by a ``--netG`` string of ``netG_choices`` (e.g. the depth)."""
        raise NotImplementedError

    @classmethod
    def default_netG(cls, crop_size):
        """The ``--netG`` used when none is given; UserError when ``crop_size`` fits none."""
        raise NotImplementedError

    @classmethod
    def options_config(cls, opt, mask):
        """The full-width ``config()`` of the generator the options describe (A -> B channels)."""
        raise NotImplementedError

    @classmethod
    def size_multiple(cls, config):
        """Image sides the generator of ``config`` accepts are positive multiples of this."""
        raise NotImplementedError

    @classmethod
    def min_size(cls, config):
        """The smallest image side (px) the generator of ``config`` accepts; by default one pixel at its
        most downsampled level."""
        return cls.size_multiple(config)

    @classmethod
    def is_original(cls, state_dict):
        """Whether a generator state dict of the original code has this family's key layout."""
        raise NotImplementedError

    @classmethod
    def from_original(cls, state_dict, cfg, source):
        """``(config, state_dict)`` of this project for a generator state dict of the original code
        (cfg: the original's stored cfg or None); UserError for a layout the family does not know."""
        raise NotImplementedError

    @classmethod
    def is_upstream(cls, state_dict):
        """Whether a generator state dict of pytorch-CycleGAN-and-pix2pix has this family's key layout
        (``module.`` prefixes and stale norm statistics already dropped: models/upstream.py)."""
        return False

    @classmethod
    def from_upstream(cls, state_dict, norm, dropout, source):
        """``(config, state_dict)`` of this project for a generator state dict of pytorch-CycleGAN-and-pix2pix.
        ``norm``: "instance" or "batch", as the tensors say (models/upstream.py); ``dropout``: the
        upstream model's default, used where the weights do not record it. UserError for a variant
        the family cannot represent."""
        raise UserError(f"{source}: pytorch-CycleGAN-and-pix2pix has no {cls.__name__}")

    @classmethod
    def upgrade_state_dict(cls, state_dict):
        """A state dict this project wrote before a layout change -> ``(state_dict, group coefficients)``:
        the current layout, and the block-loss coefficients it held ({channel group: tensor}, search
        state since). Nothing to change by default."""
        return state_dict, {}

    def to_original(self):
        """This network's state dict in the original code's key layout."""
        raise NotImplementedError

    def structure(self):
        raise NotImplementedError

    def config(self):
        raise NotImplementedError

    def forward_features(self, x, names):
        """``(output, {role: feature})`` for the roles in ``names``."""
        raise NotImplementedError

    def distill_roles(self):
        """Roles of the features co-attention distillation pulls together (method.md §7.3)."""
        raise NotImplementedError


# The imports sit below the contract: each family module subclasses Generator from this package.
from models.families.mobile_resnet import MobileResnetGenerator  # noqa: E402
from models.families.resnet import ResnetGenerator  # noqa: E402
from models.families.unet import UnetGenerator  # noqa: E402

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
