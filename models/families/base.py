"""The contract every generator family answers (see models/families/__init__.py for what each part is for)."""
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
    norms = ("instance",)  # the norm layers (--norm) this family builds; the first is its default

    @classmethod
    def norm_of(cls, config):
        """The norm layers of the generator of ``config`` (a ``config()`` of this family), which names
        ``norm`` only when it is not the family's default (the first of ``norms``)."""
        return config.get("norm", cls.norms[0])

    @classmethod
    def norm_config(cls, opt):
        """The ``norm`` entry of :meth:`options_config` for ``--norm``: empty for the family's default,
        so that a config built from the options matches the ``config()`` of the network it builds
        (options without ``norm``, or with None, mean the default)."""
        norm = getattr(opt, "norm", None) or cls.norms[0]
        return {} if norm == cls.norms[0] else {"norm": norm}

    @classmethod
    def netG_args(cls, netG):
        """Constructor arguments fixed by a ``--netG`` string of ``netG_choices`` (e.g. the depth)."""
        raise NotImplementedError

    @classmethod
    def netG_of(cls, config):
        """The ``--netG`` string of ``netG_choices`` that builds the generator of ``config`` (a
        ``config()`` of this family: its depth), or None when none does."""
        return next((netG for netG in cls.netG_choices
                     if all(config.get(k) == v for k, v in cls.netG_args(netG).items())), None)

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
