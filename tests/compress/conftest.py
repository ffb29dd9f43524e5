"""Helpers of the compress/ tests: options of a tiny mask search and mask generators with
initialised weights."""
import torch
from torch import nn

import options
from models.families.resnet import ResnetGenerator
from models.families.unet import UnetGenerator
from models.networks import init_weights
from tests.conftest import ALIGNED, UNALIGNED


def num(t):
    return float(t.detach())


def make_opt(*flags, model="cyclegan"):
    return options.parse("train", ["--dataroot", UNALIGNED if model == "cyclegan" else ALIGNED, "--model", model,
                                   "--mask", "--gpu_ids", "-1", "--crop_size", "32", "--load_size", "32",
                                   "--n_epochs", "1", "--n_epochs_decay", "1", *flags])


def resnet(seed=0, n_blocks=2, ngf=8, dtype=torch.float32):
    torch.manual_seed(seed)
    return init_weights(ResnetGenerator(ngf=ngf, n_blocks=n_blocks, mask=True)).to(dtype)


def unet(seed=0, ngf=8, num_downs=5, dtype=torch.float32):
    torch.manual_seed(seed)
    net = init_weights(UnetGenerator(ngf=ngf, num_downs=num_downs, mask=True)).to(dtype)
    with torch.no_grad():  # non-trivial BatchNorm statistics and affine parameters
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.normal_(1, 0.3)
                m.bias.normal_(0, 0.3)
    return net
