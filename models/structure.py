"""One description of a generator's channel structure (the shared machinery of every family).

Every generator family (models/families/) describes each instance as a :class:`ChannelStructure`:
the convolutions in forward order, which *channel set* each writes, which channel sets each reads
(concatenated in order), which Mask scales its outputs, the loss role of that mask, and which
removable unit the conv belongs to. The mask losses, the bound-update folding, the MACs estimate of a
candidate architecture, the pruning and its report all read this description, never a family name
or a list of layer indices.

A *channel set* is what pruning keeps or removes as one: the output channels of one conv, or the
channels that several convs write and add up (a residual stream). The latter is a *channel group*;
:meth:`ChannelStructure.groups` is its one representation: a set with more than one writer. A
group channel is kept when more than ``--threshold`` of the group's masks keep it (method.md §6.2),
its masks share the block loss and its per-channel coefficients (§3.2-3.3) and the group lasso.

A *depthwise* conv (``groups == channels``) reads one set and writes the same channels of the same
set (output c from input c alone): pruning the set removes its filters with the channels, folding a
scale into it scales its filter rows, and it does not make its set a group.
"""
from dataclasses import dataclass
from fractions import Fraction

import torch

# Loss roles of a mask (ConvSpec.role), read by compress/mask_losses.py and compress/mask_search.py:
#   "own":      --mask_loss_type, weight 1 (method.md §3.4 rule 4);
#   "outer":    the "U" type (bound with --upconv_bound, uprelu with --upconv_relu), x --upconv_coeff
#               with --upconv_bound unless --upconv_solo (§3.4 rule 3: first conv, down-conv 1, up-conv 1);
#   "last_up":  bound x --upconv_coeff with --upconv_bound, else --mask_loss_type (§3.4 rule 2);
#   "bound":    bound always, x --upconv_coeff with --upconv_bound unless --upconv_solo (§3.4: down-conv 1
#               of the mobile CycleGAN);
#   "balanced": --mask_loss_type x a per-layer multiplier, and the layer freezes once its off-fraction
#               exceeds --frozen_threshold (§3.5, the U-Net masks).
# A mask of a channel group takes the block loss instead while --lambda_update_coeff > 0 (§3.4 rule 1).
MASK_ROLES = ("own", "outer", "last_up", "bound", "balanced")

FOLDS = (None, "norm", "conv", "consumer")


@dataclass(frozen=True)
class ConvSpec:
    """One convolution of a generator.

    name:        module path of the conv (``"down2.conv"``).
    out:         channel set its outputs belong to; None = the output image.
    ins:         channel sets concatenated on its input, in order; None entries = the input image.
    mask:        module path of the Mask on its outputs, or None.
    norm:        module path of the norm on its outputs, or None.
    norm_affine: whether that norm has per-channel parameters (BatchNorm) that slice with the outputs.
    transposed:  ConvTranspose2d (weight layout (in, out, k, k)).
    depthwise:   ``groups == channels``: ``ins == (out,)`` and output c is computed from input c alone
                 (weight ``[C, 1, k, k]``), as in a separable conv (method.md §5.5). Pruning drops the
                 filters of removed channels, whose input is 0 in the masked net: with a bias, an
                 affine-free norm must follow so that their output is 0 too (as in §5.5).
    kernel:      square kernel side.
    bias:        whether the conv has a bias (sliced with its outputs, counted as parameters).
    out_scale:   output side / input image side.
    unit:        removable unit (``"blocks.3"``) the conv belongs to, or None.
    role:        loss role of its mask (see ``MASK_ROLES``).
    fold:        where a mask scale is folded exactly: "norm" (affine norm), "conv" (the conv's own
                 output rows, no norm in between), "consumer" (input channels of the convs reading the
                 set; valid because the activation after the mask is positively homogeneous), or None
                 (no exact fold: the channels of a group jump to scale 1, method.md §4.4).
    """

    name: str
    out: str | None
    ins: tuple
    mask: str | None = None
    norm: str | None = None
    norm_affine: bool = False
    transposed: bool = False
    depthwise: bool = False
    kernel: int = 3
    bias: bool = False
    out_scale: Fraction = Fraction(1)
    unit: str | None = None
    role: str = "own"
    fold: str | None = None

    def __post_init__(self):
        if self.role not in MASK_ROLES:
            raise ValueError(f"{self.name}: unknown mask role {self.role!r}; expected one of {MASK_ROLES}")
        if self.fold not in FOLDS:
            raise ValueError(f"{self.name}: unknown fold {self.fold!r}; expected one of {FOLDS}")
        if self.depthwise and (self.out is None or tuple(self.ins) != (self.out,) or self.transposed):
            raise ValueError(f"{self.name}: a depthwise conv reads and writes one channel set (ins == (out,))")
        if self.depthwise and self.bias and (self.norm is None or self.norm_affine):
            raise ValueError(f"{self.name}: a depthwise conv with a bias needs an affine-free norm after it, or a "
                             "pruned channel would output its bias instead of 0")


@dataclass(frozen=True)
class ChannelSet:
    """Channels kept or removed together. ``removes`` = the unit that vanishes when the set is empty
    (a residual block's hidden layer); other sets keep at least one (zeroed) channel."""

    name: str
    width: int
    removes: str | None = None


@dataclass
class ChannelStructure:
    """The channel structure of one generator instance (see module docstring)."""

    input_nc: int
    output_nc: int
    sets: dict  # name -> ChannelSet, in forward order
    convs: list  # ConvSpec, in forward order

    def masked_convs(self):
        """The convs that carry a mask, in state-dict (the original's cfg) order."""
        return [c for c in self.convs if c.mask is not None]

    def mask_names(self):
        return [c.mask for c in self.masked_convs()]

    def masks_of(self, set_name):
        """Mask paths that scale channels of ``set_name``."""
        return [c.mask for c in self.convs if c.out == set_name and c.mask is not None]

    def writers(self, set_name):
        """The convs that produce channels of ``set_name`` (a depthwise conv only passes them on)."""
        return [c for c in self.convs if c.out == set_name and not c.depthwise]

    def groups(self):
        """The channel groups: {set name: its mask paths, forward order} for every set that more than one
        conv writes (their outputs are added: a residual stream). Empty lists in a plain generator."""
        return {name: self.masks_of(name) for name in self.sets if len(self.writers(name)) > 1}

    def input_offsets(self, conv):
        """[(set name, channel offset)] of the sets ``conv`` reads, concatenated in order: each set
        starts after the full widths of those before it (None: the image)."""
        found, offset = [], 0
        for s in conv.ins:
            found.append((s, offset))
            offset += self.width(s)
        return found

    def consumers(self, set_name):
        """(conv, channel offset of the set in that conv's input) for every conv reading the set."""
        return [(conv, offset) for conv in self.convs for s, offset in self.input_offsets(conv) if s == set_name]

    def readers_of(self, spec):
        """(conv, channel offset) for the convs that read the output of ``spec`` itself: those reading
        its set after it in forward order, up to the next conv writing the set (a depthwise conv reads
        the set and writes its own output, which later readers see instead)."""
        found = []
        for conv in self.convs[self.convs.index(spec) + 1:]:
            found += [(conv, offset) for s, offset in self.input_offsets(conv) if s == spec.out]
            if conv.out == spec.out:
                break
        return found

    def width(self, set_name):
        """Full width of a set; None stands for the image (input side)."""
        if set_name is None:
            return self.input_nc
        return self.sets[set_name].width

    def keep(self, weights, threshold=0.0, vote=0):
        """Kept channels per set from mask weights.

        weights:   {mask path: tensor [C]} (the ``mask_weight`` of every mask).
        threshold: a mask keeps channel c when ``w_c > threshold`` (0 at pruning; ``-b`` for a candidate
                   at bound b, i.e. everything not yet fully off).
        vote:      a group keeps c when more than ``vote`` of its masks keep it (``--threshold``).
        Returns {set name: BoolTensor [width]}; unmasked sets keep everything.
        """
        groups = self.groups()
        kept = {}
        for name, cset in self.sets.items():
            masks = self.masks_of(name)
            if not masks:
                kept[name] = torch.ones(cset.width, dtype=torch.bool)
                continue
            votes = torch.stack([(weights[m].detach().cpu() > threshold) for m in masks]).sum(0)
            kept[name] = votes > (vote if name in groups else 0)
        return kept

    def widths_from_keep(self, kept):
        """Pruned widths: removable sets may reach 0; any other set keeps at least one channel."""
        widths = {}
        for name, cset in self.sets.items():
            count = int(kept[name].sum())
            widths[name] = count if cset.removes is not None else max(1, count)
        return widths

    def removed_units(self, widths):
        return {self.sets[n].removes for n, w in widths.items() if w == 0 and self.sets[n].removes}

    def macs_params(self, widths, image_size):
        """MACs and parameters of the generator with ``widths`` at ``image_size`` (H, W), by the counting
        conventions of ``util.flops.count_macs_params`` (method.md §12.2), from channel counts alone:
        a conv costs ``output elements x input channels per group x k^2`` (1 input channel per output
        for a depthwise conv), a norm 2 (4 with affine parameters) per output element."""
        removed = self.removed_units(widths)
        height, width = image_size
        macs = params = 0
        for conv in self.convs:
            if conv.unit in removed:
                continue
            c_in = sum(self.input_nc if s is None else widths[s] for s in conv.ins)
            c_out = self.output_nc if conv.out is None else widths[conv.out]
            per_output = 1 if conv.depthwise else c_in
            out_elems = c_out * int(height * conv.out_scale) * int(width * conv.out_scale)
            macs += out_elems * per_output * conv.kernel ** 2
            params += c_out * per_output * conv.kernel ** 2 + (c_out if conv.bias else 0)
            if conv.norm is not None:
                macs += out_elems * (4 if conv.norm_affine else 2)
                params += 2 * c_out if conv.norm_affine else 0
        return macs, params


def resolve_widths(defaults, widths, what):
    """``defaults`` updated by ``widths`` (None = full width); a set name not in ``defaults`` is an
    error naming ``what`` (e.g. "a 9-block ResNet")."""
    resolved = dict(defaults)
    if widths is not None:
        unknown = set(widths) - set(defaults)
        if unknown:
            raise ValueError(f"unknown channel sets for {what}: {sorted(unknown)}")
        resolved.update(widths)
    return resolved


def full_widths(structure):
    return {name: cset.width for name, cset in structure.sets.items()}
