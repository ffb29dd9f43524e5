"""U-Net generator family (pix2pix, ``--netG unet_<crop size>``): plain, mask (search) and pruned forms from one code path.

``n`` levels (8 for 256 px; the depth follows the crop size). Level L has a down unit ``down{L}``
(conv 4x4 s2 -> BatchNorm -> Mask; no norm at levels 1 and n) and, for L >= 2, an up unit ``up{L}``
(ReLU -> convT 4x4 s2 -> BatchNorm -> Mask [-> Dropout at the 8-ngf levels between 5 and n-1]); the
outermost up-conv ``up1`` has a bias and a tanh and no mask. Widths: down ngf, 2, 4, 8, 8, ... ngf.
With ``norm="instance"`` (pytorch-CycleGAN-and-pix2pix's ``--norm instance`` U-Net) the norms are
affine-free InstanceNorms and every conv has a bias.

The skip connections carry ``LeakyReLU(0.2)`` of the down outputs: the original applies the next
level's LeakyReLU in place, so its skips are activated (method.md §5.3); this module computes the same
values explicitly. Up-conv L reads ``[skip of level L ; output of up L+1]`` (skip first).
"""
import logging
import math
from fractions import Fraction

import torch
import torch.nn.functional as F
from torch import nn

from models.families import layout
from models.families.base import NORMS, Generator, make_norm
from models.layers import ConvUnit
from models.structure import ChannelSet, ChannelStructure, ConvSpec, resolve_widths
from util.errors import UserError

log = logging.getLogger("dmad")


def default_widths(ngf, num_downs):
    down = [ngf * min(2 ** i, 8) for i in range(num_downs)]
    widths = {f"down{L}": down[L - 1] for L in range(1, num_downs + 1)}
    widths.update({f"up{L}": down[L - 2] for L in range(num_downs, 1, -1)})
    return widths


class UnetGenerator(Generator):
    """U-Net generator; ``mask=True`` adds a Mask on every down and up unit (2n - 1 masks); ``norm``:
    "batch" (convs without biases but ``up1``) or "instance" (convs with biases).

    input [N, input_nc, H, W] with H, W multiples of 2^num_downs -> output [N, output_nc, H, W].
    """

    family = "unet"
    netG_choices = ("unet_256", "unet_128", "unet_64", "unet_32")
    depth_name = "num_downs"
    norms = ("batch", "instance")  # pix2pix's BatchNorm by default (--norm)

    @classmethod
    def netG_args(cls, netG):
        return {"num_downs": int(math.log2(int(netG.split("_")[1])))}  # one level per halving

    @classmethod
    def default_netG(cls, crop_size):
        """The depth follows the crop size: ``unet_<crop>`` up to 256 px."""
        size = min(256, crop_size)
        if size < 32 or size & (size - 1):
            raise UserError(f"--crop_size {crop_size} does not fit a U-Net: use a power of two >= 32 (e.g. 64 or 256)")
        return f"unet_{size}"

    @classmethod
    def options_config(cls, opt, mask):
        return {"family": cls.family, "input_nc": opt.input_nc, "output_nc": opt.output_nc, "ngf": opt.ngf,
                **cls.netG_args(opt.netG), "widths": None, "mask": mask, "use_dropout": not opt.no_dropout,
                **cls.norm_config(opt)}

    @classmethod
    def size_multiple(cls, config):
        return 2 ** config["num_downs"]  # every level halves

    def __init__(self, input_nc=3, output_nc=3, ngf=64, num_downs=8, widths=None, mask=False,
                 use_dropout=True, norm="batch"):
        super().__init__()
        if num_downs < 5:
            raise ValueError("a U-Net needs at least 5 levels")
        if norm not in NORMS:
            raise ValueError(f"unknown norm {norm!r}; expected one of {NORMS}")
        self.input_nc, self.output_nc, self.ngf, self.num_downs = input_nc, output_nc, ngf, num_downs
        self.has_mask, self.use_dropout, self.norm = mask, use_dropout, norm
        self.widths = w = resolve_widths(default_widths(ngf, num_downs), widths, f"a {num_downs}-level U-Net")
        n = num_downs
        bias = norm == "instance"  # a BatchNorm's shift replaces the conv bias
        for L in range(1, n + 1):
            c_in = input_nc if L == 1 else w[f"down{L - 1}"]
            c_out = w[f"down{L}"]
            unit_norm = make_norm(norm, c_out) if 1 < L < n else None
            setattr(self, f"down{L}", ConvUnit(nn.Conv2d(c_in, c_out, 4, 2, 1, bias=bias), unit_norm, mask))
        for L in range(n, 1, -1):
            c_in = w[f"down{n}"] if L == n else w[f"down{L}"] + w[f"up{L + 1}"]
            c_out = w[f"up{L}"]
            dropout = nn.Dropout(0.5) if use_dropout and 5 <= L < n else None
            setattr(self, f"up{L}", ConvUnit(nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=bias),
                                             make_norm(norm, c_out), mask, dropout=dropout))
        self.up1 = ConvUnit(nn.ConvTranspose2d(w["down1"] + w["up2"], output_nc, 4, 2, 1, bias=True),
                            act=nn.Tanh())

    def forward(self, x):
        return self.forward_features(x, ())[0]

    def forward_features(self, x, names):
        """Output and features by role: ``down{L}`` = the level-L down output as the skip carries it
        (after LeakyReLU, as the original's in-place activation leaves it; L < n) and ``up{L}`` = the
        level-L up unit's output before its dropout. Returns (output, {name: tensor})."""
        n = self.num_downs
        feats = {}
        skips = []
        for L in range(1, n + 1):
            x = getattr(self, f"down{L}")(x)
            if L < n:
                x = F.leaky_relu(x, 0.2)
                skips.append(x)
            if f"down{L}" in names:
                feats[f"down{L}"] = x
        y = self._up(n, F.relu(x), names, feats)
        for L in range(n - 1, 0, -1):
            y = self._up(L, F.relu(torch.cat([skips[L - 1], y], 1)), names, feats)
        return y, feats

    def _up(self, level, x, names, feats):
        unit = getattr(self, f"up{level}")
        if f"up{level}" not in names:
            return unit(x)
        # the feature is taken before the dropout, as the original's hook on the BatchNorm saw it
        y = unit.forward_pre_dropout(x)
        feats[f"up{level}"] = y
        return y if unit.dropout is None else unit.dropout(y)

    def structure(self):
        """The channel structure (see models/structure.py) of this instance. Every mask is "balanced"
        (method.md §3.5): per-layer multipliers and freezing. A scale folds into the BatchNorm after
        the conv, or into the conv itself where there is no norm; after an affine-free InstanceNorm
        it folds into the convs reading the set (the LeakyReLU / ReLU after it are positively
        homogeneous)."""
        n, w, m = self.num_downs, self.widths, self.has_mask
        affine = self.norm == "batch"
        bias = not affine
        normed_fold = "norm" if affine else "consumer"
        convs = []
        for L in range(1, n + 1):
            has_norm = 1 < L < n
            convs.append(ConvSpec(
                f"down{L}.conv", f"down{L}", (None,) if L == 1 else (f"down{L - 1}",),
                f"down{L}.mask" if m else None, f"down{L}.norm" if has_norm else None,
                norm_affine=has_norm and affine, kernel=4, bias=bias, out_scale=Fraction(1, 2 ** L), role="balanced",
                fold=normed_fold if has_norm else "conv"))
        for L in range(n, 1, -1):
            ins = (f"down{n}",) if L == n else (f"down{L}", f"up{L + 1}")
            convs.append(ConvSpec(
                f"up{L}.conv", f"up{L}", ins, f"up{L}.mask" if m else None, f"up{L}.norm", norm_affine=affine,
                transposed=True, kernel=4, bias=bias, out_scale=Fraction(1, 2 ** (L - 1)), role="balanced",
                fold=normed_fold))
        convs.append(ConvSpec("up1.conv", None, ("down1", "up2"), transposed=True, kernel=4, bias=True))
        sets = {name: ChannelSet(name, width) for name, width in w.items()}
        return ChannelStructure(self.input_nc, self.output_nc, sets, convs)

    def config(self):
        """Constructor arguments (JSON-able); ``UnetGenerator(**g.config())`` rebuilds the architecture.
        ``norm`` is named only when it is not the default BatchNorm, so that the configs of every
        generator built before it existed stay as they were."""
        config = {"family": self.family, "input_nc": self.input_nc, "output_nc": self.output_nc, "ngf": self.ngf,
                  "num_downs": self.num_downs, "widths": dict(self.widths), "mask": self.has_mask,
                  "use_dropout": self.use_dropout}
        if self.norm != "batch":
            config["norm"] = self.norm
        return config

    def distill_roles(self):
        """Level-2 and level-4 down outputs (LeakyReLU'd, as the skips carry them), level-5 and level-3
        up outputs (method.md §7.3)."""
        return ["down2", "down4", "up5", "up3"]

    # ------------------------------------------------------------------ the original code's layout
    @classmethod
    def is_original(cls, state_dict):
        return any(k.startswith("model.model.") for k in state_dict)

    @classmethod
    def from_original(cls, sd, cfg, source):
        """§5.3 (mask) / §5.4 (plain or pruned): nested ``model`` Sequentials; ``cfg`` =
        ``(filter_cfgs, channel_cfgs)`` is only compared with the weight shapes."""
        mask = layout.has_masks(sd)
        pairs, n = _original_pairs(sd, source)
        state = layout.rename(sd, pairs, source)
        config = _shape_config(cls, state, n, source)
        widths = config["widths"]
        if cfg is not None and isinstance(cfg, (list, tuple)) and len(cfg) == 2 and cfg[0] is not None:
            filters = [int(c) for c in layout.plain(cfg[0])]
            have = [widths[f"down{L}"] for L in range(1, n + 1)] + [widths[f"up{L}"] for L in range(n, 1, -1)]
            if filters != have:
                log.warning("%s: its filter_cfgs %s disagree with the weight shapes %s; the shapes are used",
                            source, filters, have)
        if not mask and widths != default_widths(config["ngf"], n):
            config["ngf"] = layout.ORIGINAL_PLAIN_NGF  # nominal: the full width of a pruned U-Net is not recorded
        config.update(mask=mask, use_dropout=True)
        layout.check_fits(cls, config, state, source)
        return config, state

    def to_original(self):
        """This network's state dict in the original code's layout (§5.3 mask, §5.4 plain or pruned).
        UserError for a U-Net with InstanceNorms, which the original could not build."""
        if self.norm != "batch":
            raise UserError(f"{type(self).__name__} with InstanceNorms: the original DMAD code has no such U-Net, "
                            "its layout cannot hold it")
        pairs = _pairs(self.has_mask, self.num_downs)
        return layout.rename(self.state_dict(), [(orig, ours) for ours, orig in pairs], type(self).__name__)

    # ------------------------------------------------------------------ pytorch-CycleGAN-and-pix2pix's layout
    @classmethod
    def is_upstream(cls, state_dict):
        return any(k.startswith("model.model.") for k in state_dict)

    @classmethod
    def from_upstream(cls, sd, norm, dropout, source):
        """Upstream's ``UnetGenerator`` (``--netG unet_128`` / ``unet_256``: 7 / 8 levels): the
        original's plain layout (§5.4); its norms hold tensors only as BatchNorms. Upstream appends a
        block's Dropout after its up-norm, so the weights do not record it: ``dropout`` (the upstream
        model's default) says whether there was one. The depth, ngf and the image channels come from
        the keys and shapes. UserError for another layout."""
        what = "a pytorch-CycleGAN-and-pix2pix UnetGenerator layout"
        n = _levels(sd, False)
        if n < 5:
            raise UserError(f"{source}: a U-Net with {n} levels; upstream's unet_128 / unet_256 have 7 / 8 (at least "
                            "5 are supported)")
        state = layout.rename(sd, _pairs(False, n), source, what)
        config = _shape_config(cls, state, n, source, what)
        config.update(mask=False, use_dropout=bool(dropout))
        if norm != "batch":
            config["norm"] = norm
        layout.check_fits(cls, config, state, source, what)
        return config, state


def _shape_config(cls, state, n, source, what="a generator layout of the original DMAD code"):
    """The config of an n-level U-Net from the weight shapes of ``state`` (our names): image channels,
    widths and ngf (its first width)."""
    shape = lambda role: layout.require(state, f"{role}.weight", source, what).shape  # noqa: E731
    widths = {f"down{L}": int(shape(f"down{L}.conv")[0]) for L in range(1, n + 1)}
    widths.update({f"up{L}": int(shape(f"up{L}.conv")[1]) for L in range(n, 1, -1)})
    return {"family": cls.family, "input_nc": int(shape("down1.conv")[1]), "output_nc": int(shape("up1.conv")[1]),
            "ngf": widths["down1"], "num_downs": n, "widths": widths}


def _levels(sd, mask):
    """The number of levels of a nested U-Net state dict (the original's or upstream's layout)."""
    n = 1
    while any(k.startswith(_prefixes(mask, n + 1)[-1] + ".") for k in sd):
        n += 1
    return n


def _original_pairs(sd, source):
    """[(our module, original module)] and the number of levels of a nested original U-Net."""
    mask = "model.model.1.mask_weight" in sd
    n = _levels(sd, mask)
    if n < 5:
        raise UserError(f"{source}: a U-Net with {n} levels; the original's U-Net has 8 (at least 5 are supported)")
    return _pairs(mask, n), n


def _prefixes(mask, n):
    """The ``model`` Sequential of each level 1..n: the sub-block sits at index 2 (mask) or 1 (plain) of
    the outermost level and at 4 / 3 of the middle levels (§5.3, §5.4)."""
    sub_outer, sub_middle = (2, 4) if mask else (1, 3)
    prefixes = ["model.model"]
    while len(prefixes) < n:
        prefixes.append(f"{prefixes[-1]}.{sub_outer if len(prefixes) == 1 else sub_middle}.model")
    return prefixes


def _pairs(mask, n):
    """[(our module, original module)] of an n-level U-Net in the original's nested layout."""
    pairs = []
    for level, p in enumerate(_prefixes(mask, n), start=1):
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
    return pairs
