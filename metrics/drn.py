"""DRN-D-105 semantic segmentation network for the Cityscapes mIoU (method.md §9.3).

The module layout reproduces the state-dict keys of the public ``drn-d-105_ms_cityscapes.pth``
(fyu/drn ``DRNSeg('drn_d_105', 19)``): ``base.0`` ... ``base.8`` are the DRN stages layer0 ... layer8
(its pooling and classifier are not part of the segmenter), ``seg`` is the 1x1 classifier and ``up``
the fixed bilinear x8 transposed convolution.
"""
import os

import torch
import torch.nn.functional as F
from torch import nn

from metrics.fid import load_state_strict, read_weights
from util.errors import UserError

NUM_CLASSES = 19
DRN_D_105_LAYERS = (1, 1, 3, 4, 23, 3, 1, 1)
DRN_D_CHANNELS = (16, 32, 64, 128, 256, 512, 512, 512)


class Bottleneck(nn.Module):
    """1x1 -> 3x3 (stride, dilation) -> 1x1 (x4 channels) residual block; keys as in fyu/drn."""
    expansion = 4

    def __init__(self, inplanes, planes, stride=1, dilation=1, downsample=None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=stride, padding=dilation,
                               dilation=dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        residual = x if self.downsample is None else self.downsample(x)
        return self.relu(out + residual)


def _conv_stage(inplanes, planes, convs, stride=1, dilation=1):
    """DRN-D's plain stages: ``convs`` x (3x3 conv, BN, ReLU), the first with ``stride``."""
    modules = []
    for i in range(convs):
        modules += [nn.Conv2d(inplanes if i == 0 else planes, planes, kernel_size=3, stride=stride if i == 0 else 1,
                              padding=dilation, dilation=dilation, bias=False),
                    nn.BatchNorm2d(planes), nn.ReLU(inplace=True)]
    return nn.Sequential(*modules)


def _bottleneck_stage(inplanes, planes, blocks, stride=1, dilation=1):
    """``blocks`` Bottlenecks; the first projects the residual when the shape changes."""
    downsample = None
    if stride != 1 or inplanes != planes * Bottleneck.expansion:
        downsample = nn.Sequential(
            nn.Conv2d(inplanes, planes * Bottleneck.expansion, kernel_size=1, stride=stride, bias=False),
            nn.BatchNorm2d(planes * Bottleneck.expansion))
    layers = [Bottleneck(inplanes, planes, stride, dilation, downsample)]
    layers += [Bottleneck(planes * Bottleneck.expansion, planes, 1, dilation) for _ in range(1, blocks)]
    return nn.Sequential(*layers)


def drn_d_body(layers=DRN_D_105_LAYERS, channels=DRN_D_CHANNELS):
    """The DRN-D stages layer0 ... layer8 as one Sequential: ``[N, 3, H, W] -> [N, channels[-1], H/8, W/8]``.

    Stride 2 in layer2, layer3 and layer4 (output stride 8); layer5/6/7 dilate by 2/4/2 instead of
    striding further. Stages with zero layers (layer6-8) are left out, as in the original.
    """
    c = channels
    stages = [
        nn.Sequential(nn.Conv2d(3, c[0], kernel_size=7, padding=3, bias=False), nn.BatchNorm2d(c[0]),
                      nn.ReLU(inplace=True)),
        _conv_stage(c[0], c[0], layers[0]),
        _conv_stage(c[0], c[1], layers[1], stride=2),
        _bottleneck_stage(c[1], c[2], layers[2], stride=2),
        _bottleneck_stage(c[2] * 4, c[3], layers[3], stride=2),
        _bottleneck_stage(c[3] * 4, c[4], layers[4], dilation=2),
    ]
    width = c[4] * 4
    if layers[5]:
        stages.append(_bottleneck_stage(width, c[5], layers[5], dilation=4))
        width = c[5] * 4
    if layers[6]:
        stages.append(_conv_stage(width, c[6], layers[6], dilation=2))
        width = c[6]
    if layers[7]:
        stages.append(_conv_stage(width, c[7], layers[7], dilation=1))
    return nn.Sequential(*stages)


def bilinear_up_weight(channels, kernel_size):
    """The fixed weight ``[channels, 1, k, k]`` of a depthwise transposed conv that upsamples bilinearly."""
    f = (kernel_size + 1) // 2
    center = (2 * f - 1 - f % 2) / (2.0 * f)
    ramp = 1 - torch.abs(torch.arange(kernel_size, dtype=torch.float64) / f - center)
    return torch.outer(ramp, ramp).float().expand(channels, 1, kernel_size, kernel_size).clone()


class DRNSeg(nn.Module):
    """Images ``[N, 3, H, W]`` (normalised) -> per-pixel log-probabilities ``[N, 19, H, W]`` (H, W multiples of 8)."""

    def __init__(self, classes=NUM_CLASSES, layers=DRN_D_105_LAYERS, channels=DRN_D_CHANNELS):
        super().__init__()
        self.base = drn_d_body(layers, channels)
        self.seg = nn.Conv2d(channels[-1], classes, kernel_size=1, bias=True)
        self.up = nn.ConvTranspose2d(classes, classes, 16, stride=8, padding=4, groups=classes, bias=False)
        self.up.weight.data.copy_(bilinear_up_weight(classes, 16))
        self.up.weight.requires_grad_(False)

    def forward(self, x):
        return F.log_softmax(self.up(self.seg(self.base(x))), dim=1)


def load_drn(path, device, explicit=True):
    """DRN-D-105 Cityscapes segmenter (eval mode, frozen) with weights from ``path``.

    A missing file is a :class:`UserError` when the path was given by the user (``explicit``); for the
    default path it gives ``None`` so that the caller can skip the metric. A file whose keys do not
    fit is always a UserError.
    """
    path = os.path.expanduser(path)
    if not os.path.isfile(path):
        if not explicit:
            return None
        raise UserError(f"DRN weights not found at {path}: download drn-d-105_ms_cityscapes.pth (see README) "
                        "and pass --drn_path")
    state = read_weights(path, "DRN", "download drn-d-105_ms_cityscapes.pth again (see README)")
    if isinstance(state, dict) and all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}  # saved from DataParallel
    net = DRNSeg()
    load_state_strict(net, state, path, "drn-d-105_ms_cityscapes.pth (see README)")
    net = net.to(device).eval()
    net.requires_grad_(False)
    return net
