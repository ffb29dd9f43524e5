"""Helpers of the models/ tests: parsed training options and the model's first discriminator."""
import options
from models import MODELS


def opts(*argv):
    return options.parse("train", ["--dataroot", "x", "--gpu_ids", "-1", *argv])


def discriminator_config(opt):
    """The model's first discriminator (CycleGAN's D_A, pix2pix's D)."""
    return next(iter(MODELS[opt.model].discriminator_configs(opt).values()))
