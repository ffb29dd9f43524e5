"""Building blocks shared by the generator families."""
from torch import nn

from models.mask import Mask


class ConvUnit(nn.Module):
    """``pad -> conv -> norm -> mask -> act``: one prunable layer. Absent parts are None.

    The mask sits after the norm and before the activation (method.md §2.7), so it scales exactly
    the output channels of ``conv``.
    """

    def __init__(self, conv, norm=None, mask=False, act=None, pad=None, dropout=None):
        super().__init__()
        self.pad = pad
        self.conv = conv
        self.norm = norm
        out_channels = conv.out_channels
        self.mask = Mask(out_channels) if mask else None
        self.act = act
        self.dropout = dropout

    def forward(self, x):
        x = self.forward_pre_dropout(x)
        return x if self.dropout is None else self.dropout(x)

    def forward_pre_dropout(self, x):
        """The unit's output before its dropout (what the original's hooks on the norm saw)."""
        if self.pad is not None:
            x = self.pad(x)
        x = self.conv(x)
        if self.norm is not None:
            x = self.norm(x)
        if self.mask is not None:
            x = self.mask(x)
        if self.act is not None:
            x = self.act(x)
        return x


def instance_norm(channels):
    # affine-free and without running statistics, as in CycleGAN
    return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)


def masks(module):
    """{module path: Mask} of every Mask inside ``module``."""
    return {name: m for name, m in module.named_modules() if isinstance(m, Mask)}
