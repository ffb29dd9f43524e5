"""One description of a generator's channel structure.

Every generator family describes itself as a :class:`ChannelStructure`: the convolutions in forward
order, which *channel set* each writes, which channel sets each reads (concatenated in order), which
Mask scales its outputs and which removable unit it belongs to. The mask losses, the bound-update
folding, the MACs estimate of a candidate architecture, the pruning and the distillation hooks all read
this description instead of lists of layer indices, so a new family (e.g. separable convolutions) only
has to describe itself.

A *channel set* is what pruning keeps or removes as one: the output channels of one conv, or, for the
residual stream of a ResNet, channels written by several convs (a *group*: kept when more than
``--threshold`` of its masks keep it).
"""
from dataclasses import dataclass, field
from fractions import Fraction

import torch


@dataclass(frozen=True)
class ConvSpec:
    """One convolution of a generator.

    name:       module path of the conv (``"down2.conv"``).
    out:        channel set its outputs belong to; None = the output image.
    ins:        channel sets concatenated on its input, in order; None entries = the input image.
    mask:       module path of the Mask on its outputs, or None.
    norm:       module path of the norm on its outputs, or None.
    norm_affine: whether that norm has per-channel parameters (BatchNorm) that slice with the outputs.
    transposed: ConvTranspose2d (weight layout (in, out, k, k)).
    kernel, groups: as the conv's.
    out_scale:  output side / input image side.
    unit:       removable unit (``"blocks.3"``) the conv belongs to, or None.
    kind:       role of its mask for the sparsity losses: "outer", "hidden", "group", "last_up", "unet".
    fold:       where a mask scale is folded exactly: "norm" (affine norm), "conv" (the conv's own
                output rows, no norm in between), "consumer" (input channels of the convs reading the
                set; valid because the activation after the mask is positively homogeneous), or None.
    """

    name: str
    out: str | None
    ins: tuple
    mask: str | None = None
    norm: str | None = None
    norm_affine: bool = False
    transposed: bool = False
    kernel: int = 3
    groups: int = 1
    out_scale: Fraction = Fraction(1)
    unit: str | None = None
    kind: str | None = None
    fold: str | None = None


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
    groups: dict = field(default_factory=dict)  # group set name -> mask paths writing it

    def masked_convs(self):
        """The convs that carry a mask, in state-dict (the original's cfg) order."""
        return [c for c in self.convs if c.mask is not None]

    def mask_names(self):
        return [c.mask for c in self.masked_convs()]

    def masks_of(self, set_name):
        """Mask paths that scale channels of ``set_name``."""
        return [c.mask for c in self.convs if c.out == set_name and c.mask is not None]

    def writers(self, set_name):
        return [c for c in self.convs if c.out == set_name]

    def consumers(self, set_name):
        """(conv, channel offset of the set in that conv's input) for every conv reading the set."""
        found = []
        for conv in self.convs:
            offset = 0
            for s in conv.ins:
                if s == set_name:
                    found.append((conv, offset))
                offset += self.width(s)
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
        vote:      a group set keeps c when more than ``vote`` of its masks keep it (``--threshold``).
        Returns {set name: BoolTensor [width]}; unmasked sets keep everything.
        """
        kept = {}
        for name, cset in self.sets.items():
            masks = self.masks_of(name)
            if not masks:
                kept[name] = torch.ones(cset.width, dtype=torch.bool)
                continue
            votes = torch.stack([(weights[m].detach().cpu() > threshold) for m in masks]).sum(0)
            kept[name] = votes > (vote if len(masks) > 1 else 0)
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
        conventions of ``util.flops.count_macs_params`` (method.md §12.2), from channel counts alone."""
        removed = self.removed_units(widths)
        height, width = image_size
        macs = params = 0
        for conv in self.convs:
            if conv.unit in removed:
                continue
            c_in = sum(self.input_nc if s is None else widths[s] for s in conv.ins)
            c_out = self.output_nc if conv.out is None else widths[conv.out]
            out_elems = c_out * int(height * conv.out_scale) * int(width * conv.out_scale)
            macs += out_elems * (c_in // conv.groups) * conv.kernel ** 2
            params += c_out * (c_in // conv.groups) * conv.kernel ** 2
            if conv.norm is not None:
                macs += out_elems * (4 if conv.norm_affine else 2)
                params += 2 * c_out if conv.norm_affine else 0
        return macs, params + self._bias_params(widths, removed)

    def _bias_params(self, widths, removed):
        return sum((self.output_nc if c.out is None else widths[c.out])
                   for c in self.convs if c.unit not in removed and self.has_bias.get(c.name, False))

    has_bias: dict = field(default_factory=dict)  # conv name -> whether it has a bias


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
