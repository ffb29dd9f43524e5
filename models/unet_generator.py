"""U-Net generator family (pix2pix): plain, mask (search) and pruned forms from one code path.

``n`` levels (8 for 256 px; the depth follows the crop size). Level L has a down unit ``down{L}``
(conv 4x4 s2 -> BatchNorm -> Mask; no norm at levels 1 and n) and, for L >= 2, an up unit ``up{L}``
(ReLU -> convT 4x4 s2 -> BatchNorm -> Mask [-> Dropout at the 8-ngf levels between 5 and n-1]); the
outermost up-conv ``up1`` has a bias and a tanh and no mask. Widths: down ngf, 2, 4, 8, 8, ... ngf.

The skip connections carry ``LeakyReLU(0.2)`` of the down outputs: the original applies the next
level's LeakyReLU in place, so its skips are activated (method.md §5.3); this module computes the same
values explicitly. Up-conv L reads ``[skip of level L ; output of up L+1]`` (skip first).
"""
from fractions import Fraction

import torch
import torch.nn.functional as F
from torch import nn

from models.layers import ConvUnit
from models.structure import ChannelSet, ChannelStructure, ConvSpec, resolve_widths


def default_widths(ngf, num_downs):
    down = [ngf * min(2 ** i, 8) for i in range(num_downs)]
    widths = {f"down{L}": down[L - 1] for L in range(1, num_downs + 1)}
    widths.update({f"up{L}": down[L - 2] for L in range(num_downs, 1, -1)})
    return widths


class UnetGenerator(nn.Module):
    """U-Net generator; ``mask=True`` adds a Mask on every down and up unit (2n - 1 masks).

    input [N, input_nc, H, W] with H, W multiples of 2^num_downs -> output [N, output_nc, H, W].
    """

    family = "unet"

    def __init__(self, input_nc=3, output_nc=3, ngf=64, num_downs=8, widths=None, mask=False,
                 use_dropout=True):
        super().__init__()
        if num_downs < 5:
            raise ValueError("a U-Net needs at least 5 levels")
        self.input_nc, self.output_nc, self.ngf, self.num_downs = input_nc, output_nc, ngf, num_downs
        self.has_mask, self.use_dropout = mask, use_dropout
        self.widths = w = resolve_widths(default_widths(ngf, num_downs), widths, f"a {num_downs}-level U-Net")
        n = num_downs
        for L in range(1, n + 1):
            c_in = input_nc if L == 1 else w[f"down{L - 1}"]
            c_out = w[f"down{L}"]
            norm = nn.BatchNorm2d(c_out) if 1 < L < n else None
            setattr(self, f"down{L}", ConvUnit(nn.Conv2d(c_in, c_out, 4, 2, 1, bias=False), norm, mask))
        for L in range(n, 1, -1):
            c_in = w[f"down{n}"] if L == n else w[f"down{L}"] + w[f"up{L + 1}"]
            c_out = w[f"up{L}"]
            dropout = nn.Dropout(0.5) if use_dropout and 5 <= L < n else None
            setattr(self, f"up{L}", ConvUnit(nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=False),
                                             nn.BatchNorm2d(c_out), mask, dropout=dropout))
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
        """The channel structure (see models/structure.py) of this instance."""
        n, w, m = self.num_downs, self.widths, self.has_mask
        convs = []
        for L in range(1, n + 1):
            has_norm = 1 < L < n
            convs.append(ConvSpec(
                f"down{L}.conv", f"down{L}", (None,) if L == 1 else (f"down{L - 1}",),
                f"down{L}.mask" if m else None, f"down{L}.norm" if has_norm else None, norm_affine=has_norm,
                kernel=4, out_scale=Fraction(1, 2 ** L), kind="unet", fold="norm" if has_norm else "conv"))
        for L in range(n, 1, -1):
            ins = (f"down{n}",) if L == n else (f"down{L}", f"up{L + 1}")
            convs.append(ConvSpec(
                f"up{L}.conv", f"up{L}", ins, f"up{L}.mask" if m else None, f"up{L}.norm", norm_affine=True,
                transposed=True, kernel=4, out_scale=Fraction(1, 2 ** (L - 1)), kind="unet", fold="norm"))
        convs.append(ConvSpec("up1.conv", None, ("down1", "up2"), transposed=True, kernel=4))
        sets = {name: ChannelSet(name, width) for name, width in w.items()}
        return ChannelStructure(self.input_nc, self.output_nc, sets, convs, {}, has_bias={"up1.conv": True})

    def config(self):
        """Constructor arguments (JSON-able); ``UnetGenerator(**g.config())`` rebuilds the architecture."""
        return {"family": self.family, "input_nc": self.input_nc, "output_nc": self.output_nc, "ngf": self.ngf,
                "num_downs": self.num_downs, "widths": dict(self.widths), "mask": self.has_mask,
                "use_dropout": self.use_dropout}
