"""Builders for generators and discriminators, and the weight initialisation (method.md §5.7)."""
import torch
from torch import nn

from models import families
from models.discriminator import NLayerDiscriminator
from util.errors import UserError, first_line


def init_weights(net, gain=0.02):
    """Conv/convT/linear weights N(0, gain^2), biases 0; norm scales N(1, gain^2), norm biases 0.

    Mask weights are left alone (they have their own N(0, 0.2^2) initialisation)."""
    for module in net.modules():
        if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(module.weight, 0.0, gain)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, (nn.BatchNorm2d, nn.InstanceNorm2d)) and module.weight is not None:
            nn.init.normal_(module.weight, 1.0, gain)
            nn.init.zeros_(module.bias)
    return net


def generator_config(opt, mask=None):
    """Constructor arguments of the generator the options describe (full width), by its family."""
    return families.for_netG(opt.netG).options_config(opt, opt.mask if mask is None else mask)


def build_generator(config):
    """A generator from its ``config()`` dict (family + constructor arguments), initialised."""
    return init_weights(families.build(config))


def build_discriminator(config):
    return init_weights(NLayerDiscriminator(**config))


def check_fits(net, stored, what, fits="its recorded architecture"):
    """UserError unless the state dict ``stored`` has exactly the keys and tensor shapes of
    ``net.state_dict()`` (a 0-d tensor fits a one-element one: the original code's mask bounds):
    "``what`` does not fit ``fits`` (the first difference)". Loads nothing."""
    own = net.state_dict()
    missing, unexpected = sorted(set(own) - set(stored)), sorted(set(stored) - set(own))
    if missing or unexpected:
        raise UserError(f"{what} does not fit {fits} (missing {missing[:3]}, unexpected {unexpected[:3]})")
    for key, value in own.items():
        have = tuple(stored[key].shape) if torch.is_tensor(stored[key]) else None
        if torch.is_tensor(value) and have != tuple(value.shape) and not (have == () and value.numel() == 1):
            raise UserError(f"{what} does not fit {fits} ({key} has shape {have}, expected {tuple(value.shape)})")


def load_strict(net, state_dict, what, fits="its recorded architecture"):
    """``net.load_state_dict(state_dict)`` with every key and shape checked first (:func:`check_fits`);
    returns ``net``. A mismatch is a UserError: "``what`` does not fit ``fits`` (...)"."""
    check_fits(net, state_dict, what, fits)
    try:
        net.load_state_dict(state_dict)
    except RuntimeError as err:
        raise UserError(f"{what} does not fit {fits} ({first_line(err)})") from None
    return net
