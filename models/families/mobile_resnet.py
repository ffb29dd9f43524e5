"""Separable-convolution ("mobile") ResNet family (``--model mobilecyclegan`` / ``mobilepix2pix``, or
``--netG mobile_resnet_9blocks``): plain, mask (search) and pruned forms from one code path.

Stem, down-convs, up-convs and head are those of the ResNet family (models/families/resnet.py); each
residual-block convolution is a *separable conv* ``[3x3 depthwise conv (groups = C_in, bias),
InstanceNorm(C_in), 1x1 pointwise conv C_in -> C_out (bias)]`` (method.md §5.5). A block is
``x + conv2(conv1(x))`` with

    conv1: pad 1 -> separable conv (stream -> hidden) -> InstanceNorm -> Mask -> ReLU
    conv2: pad 1 -> separable conv (hidden -> stream) -> InstanceNorm -> Mask

(the original's ``Dropout(p=0)`` between them computes nothing and is left out). Masks sit where §5.5
puts them: after each block's first norm (own loss) and after its second norm (the stream, a channel
group with the mask after down-conv 2); norms are affine-free.

Channel structure: a depthwise conv reads and writes the channels of its input set, so pruning the
stream drops the depthwise filters of every block's first separable conv and pruning a block's hidden
set those of its second; pointwise convs are sliced like ordinary convs. A mask scale folds into the
depthwise filters that read its channels, which is exact (the original folded into the pointwise
rows, which the InstanceNorm after them normalised away: §4.4, §13.13). Loss roles (§3.4): as the
ResNet's, except down-conv 1's mask: ``down1_role="bound"`` (the mobile CycleGAN's: always the
``bound`` loss) or ``"own"`` (the mobile pix2pix's: ``--mask_loss_type``, weight 1).

MACs / params of the full generator at 256 px (§12.2): ngf 64: 18.417 G / 1,987,075; ngf 48:
10.642 G / 1,130,883; ngf 32: 4.981 G / 514,307.
"""
from fractions import Fraction

from torch import nn

from models.families.resnet import ResnetGenerator
from models.layers import ConvUnit, instance_norm


class SeparableConv2d(nn.Module):
    """``depthwise`` (k x k, groups = in_channels, bias) -> ``norm`` (InstanceNorm, affine-free) ->
    ``pointwise`` (1 x 1, bias). [N, in_channels, H, W] -> [N, out_channels, H - k + 1, W - k + 1]."""

    def __init__(self, in_channels, out_channels, kernel_size=3):
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.depthwise = nn.Conv2d(in_channels, in_channels, kernel_size, groups=in_channels, bias=True)
        self.norm = instance_norm(in_channels)
        self.pointwise = nn.Conv2d(in_channels, out_channels, 1, bias=True)

    def forward(self, x):
        return self.pointwise(self.norm(self.depthwise(x)))


class MobileResnetBlock(nn.Module):
    """``x + conv2(conv1(x))`` with separable convs; conv1 writes the hidden set, conv2 the stream."""

    def __init__(self, stream, hidden, mask):
        super().__init__()
        self.conv1 = ConvUnit(SeparableConv2d(stream, hidden), instance_norm(hidden), mask, nn.ReLU(True),
                              nn.ReflectionPad2d(1))
        self.conv2 = ConvUnit(SeparableConv2d(hidden, stream), instance_norm(stream), mask, None,
                              nn.ReflectionPad2d(1))

    def forward(self, x):
        return x + self.conv2(self.conv1(x))


class MobileResnetGenerator(ResnetGenerator):
    """ResNet generator with separable-conv residual blocks (``mask=True``: 22 or 23 masks for 9 blocks).

    input: [N, input_nc, H, W] in [-1, 1] (H, W multiples of 4) -> output [N, output_nc, H, W]. Same
    constructor, widths, roles and ``forward_features`` as :class:`ResnetGenerator`.
    """

    family = "mobile_resnet"
    netG_choices = ("mobile_resnet_9blocks", "mobile_resnet_6blocks")
    norms = ("instance",)  # affine-free InstanceNorms only
    block_class = MobileResnetBlock
    DOWN1_ROLES = ("bound", "own")

    def __init__(self, input_nc=3, output_nc=3, ngf=64, n_blocks=9, widths=None, mask=False,
                 unmask_last_upconv=False, down1_role="bound"):
        if down1_role not in self.DOWN1_ROLES:
            raise ValueError(f"down1_role must be one of {self.DOWN1_ROLES}, got {down1_role!r}")
        self.down1_role = down1_role  # read by structure(); a plain attribute, set before Module init is fine
        super().__init__(input_nc, output_nc, ngf, n_blocks, widths, mask, unmask_last_upconv)

    def make_block(self, stream, hidden, mask):
        return self.block_class(stream, hidden, mask)  # InstanceNorms, no dropout

    @classmethod
    def options_config(cls, opt, mask):
        return dict(super().options_config(opt, mask), down1_role="bound")

    def config(self):
        return dict(super().config(), down1_role=self.down1_role)

    @classmethod
    def netG_args(cls, netG):
        return {"n_blocks": int(netG.split("_")[-1].replace("blocks", ""))}

    @classmethod
    def default_netG(cls, crop_size):
        return "mobile_resnet_9blocks"

    @staticmethod
    def block_convs(p, mask, conv):
        q = Fraction(1, 4)
        return [
            conv(f"{p}.conv1.conv.depthwise", "stream", ("stream",), norm=f"{p}.conv1.conv.norm", depthwise=True,
                 out_scale=q, unit=p),
            conv(f"{p}.conv1.conv.pointwise", p, ("stream",), mask(f"{p}.conv1.mask"), f"{p}.conv1.norm", kernel=1,
                 out_scale=q, unit=p, fold="consumer"),
            conv(f"{p}.conv2.conv.depthwise", p, (p,), norm=f"{p}.conv2.conv.norm", depthwise=True, out_scale=q,
                 unit=p),
            conv(f"{p}.conv2.conv.pointwise", "stream", (p,), mask(f"{p}.conv2.mask"), f"{p}.conv2.norm", kernel=1,
                 out_scale=q, unit=p),
        ]

    # ------------------------------------------------------------------ the original code's layout
    # §5.5: mask block [0 pad, 1 sepconv, 2 IN, 3 Mask, 4 ReLU, 5 Dropout, 6 pad, 7 sepconv, 8 IN, 9 Mask],
    # plain block [0 pad, 1 sepconv, 2 IN, 3 ReLU, 4 Dropout, 5 pad, 6 sepconv, 7 IN]; a separable conv
    # holds ``conv.0`` (depthwise), ``conv.1`` (its norm, no tensors) and ``conv.2`` (pointwise)
    original_block = {True: {"conv1": 1, "conv1.mask": 3, "conv2": 7, "conv2.mask": 9},
                      False: {"conv1": 1, "conv2": 6}}
    original_conv_parts = {".depthwise": ".conv.0", ".pointwise": ".conv.2"}
    hidden_conv = "conv1.conv.pointwise"

    @classmethod
    def is_original(cls, state_dict):
        return "model.1.weight" in state_dict and any(k.endswith(".conv_block.1.conv.0.weight") for k in state_dict)

    @classmethod
    def is_upstream(cls, state_dict):
        return False  # pytorch-CycleGAN-and-pix2pix has no separable-conv generator
