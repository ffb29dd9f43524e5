"""ResNet generator family (CycleGAN): plain, mask (search) and pruned forms from one code path.

Layout (ngf = 64, 9 blocks): stem 7x7 conv (ngf) -> down1 (2 ngf) -> down2 (4 ngf, the residual
stream) -> blocks 0..8 (``x + conv2(conv1(x))``) -> up1 (2 ngf) -> up2 (ngf) -> head 7x7 conv, tanh.
Norms are affine-free InstanceNorms; masks (``mask=True``) sit after each norm (method.md §5.1).

Pruned widths come as ``widths`` = {channel set: width}; a block whose hidden width is 0 is removed
(it is the identity: method.md §5.1), and ``blocks`` keeps the original block numbers as keys so that
roles such as ``blocks.5`` survive pruning.
"""
from fractions import Fraction

import torch
from torch import nn

from models.layers import ConvUnit, instance_norm
from models.structure import ChannelSet, ChannelStructure, ConvSpec, resolve_widths


def default_widths(ngf, n_blocks):
    widths = {"stem": ngf, "down1": 2 * ngf, "stream": 4 * ngf}
    widths.update({f"blocks.{i}": 4 * ngf for i in range(n_blocks)})
    widths.update({"up1": 2 * ngf, "up2": ngf})
    return widths


class ResnetBlock(nn.Module):
    """``x + conv2(conv1(x))``; conv1 writes the block's hidden set, conv2 writes the stream."""

    def __init__(self, stream, hidden, mask):
        super().__init__()
        self.conv1 = ConvUnit(nn.Conv2d(stream, hidden, 3, bias=True), instance_norm(hidden), mask,
                              nn.ReLU(True), nn.ReflectionPad2d(1))
        self.conv2 = ConvUnit(nn.Conv2d(hidden, stream, 3, bias=True), instance_norm(stream), mask,
                              None, nn.ReflectionPad2d(1))

    def forward(self, x):
        return x + self.conv2(self.conv1(x))


class ResnetGenerator(nn.Module):
    """ResNet generator; ``mask=True`` adds a Mask after every norm (22 or 23 masks for 9 blocks).

    input: [N, input_nc, H, W] in [-1, 1] (H, W multiples of 4) -> output [N, output_nc, H, W].
    """

    family = "resnet"

    def __init__(self, input_nc=3, output_nc=3, ngf=64, n_blocks=9, widths=None, mask=False,
                 unmask_last_upconv=False):
        super().__init__()
        self.input_nc, self.output_nc, self.ngf, self.n_blocks = input_nc, output_nc, ngf, n_blocks
        self.has_mask, self.unmask_last_upconv = mask, unmask_last_upconv
        self.widths = w = resolve_widths(default_widths(ngf, n_blocks), widths, f"a {n_blocks}-block ResNet")
        relu = lambda: nn.ReLU(True)  # noqa: E731
        self.stem = ConvUnit(nn.Conv2d(input_nc, w["stem"], 7, bias=True), instance_norm(w["stem"]), mask,
                             relu(), nn.ReflectionPad2d(3))
        self.down1 = ConvUnit(nn.Conv2d(w["stem"], w["down1"], 3, 2, 1, bias=True), instance_norm(w["down1"]),
                              mask, relu())
        self.down2 = ConvUnit(nn.Conv2d(w["down1"], w["stream"], 3, 2, 1, bias=True),
                              instance_norm(w["stream"]), mask, relu())
        self.blocks = nn.ModuleDict({
            str(i): ResnetBlock(w["stream"], w[f"blocks.{i}"], mask)
            for i in range(n_blocks) if w[f"blocks.{i}"] > 0})
        self.up1 = ConvUnit(nn.ConvTranspose2d(w["stream"], w["up1"], 3, 2, 1, output_padding=1, bias=True),
                            instance_norm(w["up1"]), mask, relu())
        self.up2 = ConvUnit(nn.ConvTranspose2d(w["up1"], w["up2"], 3, 2, 1, output_padding=1, bias=True),
                            instance_norm(w["up2"]), mask and not unmask_last_upconv, relu())
        self.head = ConvUnit(nn.Conv2d(w["up2"], output_nc, 7, bias=True), act=nn.Tanh(),
                             pad=nn.ReflectionPad2d(3))
        # per-stream-channel coefficients of the block loss (method.md §3.3); search state
        if mask:
            self.register_buffer("block_coeff", torch.ones(w["stream"]))

    def forward(self, x):
        x = self.down2(self.down1(self.stem(x)))
        for block in self.blocks.values():
            x = block(x)
        return self.head(self.up2(self.up1(x)))

    def forward_features(self, x, names):
        """Output and features by role: ``down2`` (the stream after down-conv 2) and ``blocks.i`` (the
        stream after original block i; a removed block is the identity, so its feature is the stream
        after the last kept block before it). Returns (output, {name: tensor})."""
        wanted = set(names)
        feats = {}
        x = self.down2(self.down1(self.stem(x)))
        if "down2" in wanted:
            feats["down2"] = x
        for i in range(self.n_blocks):
            block = self.blocks[str(i)] if str(i) in self.blocks else None
            if block is not None:
                x = block(x)
            if f"blocks.{i}" in wanted:
                feats[f"blocks.{i}"] = x
        return self.head(self.up2(self.up1(x))), feats

    def structure(self):
        """The channel structure (see models/structure.py) of this instance."""
        w, m = self.widths, self.has_mask
        q = Fraction(1, 4)
        mask = (lambda path: path if m else None)  # noqa: E731
        convs = [
            ConvSpec("stem.conv", "stem", (None,), mask("stem.mask"), "stem.norm", kernel=7, kind="outer",
                     fold="consumer"),
            ConvSpec("down1.conv", "down1", ("stem",), mask("down1.mask"), "down1.norm", out_scale=Fraction(1, 2),
                     kind="outer", fold="consumer"),
            ConvSpec("down2.conv", "stream", ("down1",), mask("down2.mask"), "down2.norm", out_scale=q,
                     kind="group"),
        ]
        for i in range(self.n_blocks):
            p = f"blocks.{i}"
            convs += [
                ConvSpec(f"{p}.conv1.conv", p, ("stream",), mask(f"{p}.conv1.mask"), f"{p}.conv1.norm",
                         out_scale=q, unit=p, kind="hidden", fold="consumer"),
                ConvSpec(f"{p}.conv2.conv", "stream", (p,), mask(f"{p}.conv2.mask"), f"{p}.conv2.norm",
                         out_scale=q, unit=p, kind="group"),
            ]
        convs += [
            ConvSpec("up1.conv", "up1", ("stream",), mask("up1.mask"), "up1.norm", transposed=True,
                     out_scale=Fraction(1, 2), kind="outer", fold="consumer"),
            ConvSpec("up2.conv", "up2", ("up1",), mask("up2.mask") if not self.unmask_last_upconv else None,
                     "up2.norm", transposed=True, kind="last_up", fold="consumer"),
            ConvSpec("head.conv", None, ("up2",), kernel=7),
        ]
        sets = {"stem": ChannelSet("stem", w["stem"]), "down1": ChannelSet("down1", w["down1"]),
                "stream": ChannelSet("stream", w["stream"])}
        for i in range(self.n_blocks):
            sets[f"blocks.{i}"] = ChannelSet(f"blocks.{i}", w[f"blocks.{i}"], removes=f"blocks.{i}")
        sets["up1"] = ChannelSet("up1", w["up1"])
        sets["up2"] = ChannelSet("up2", w["up2"])
        groups = {"stream": [c.mask for c in convs if c.out == "stream" and c.mask]} if m else {}
        return ChannelStructure(self.input_nc, self.output_nc, sets, convs, groups,
                                has_bias={c.name: True for c in convs})

    def config(self):
        """Constructor arguments (JSON-able); ``ResnetGenerator(**g.config())`` rebuilds the architecture."""
        return {"family": self.family, "input_nc": self.input_nc, "output_nc": self.output_nc, "ngf": self.ngf,
                "n_blocks": self.n_blocks, "widths": dict(self.widths), "mask": self.has_mask,
                "unmask_last_upconv": self.unmask_last_upconv}
