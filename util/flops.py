"""MAC and parameter counts by the conventions of the original's counter (method.md §12.2).

Counted with forward hooks on torch's own modules: a Conv2d or ConvTranspose2d costs
``output elements x (C_in / groups) x k_h x k_w`` (bias ignored; for a transposed conv this counts from
the output size, which is what makes the full ResNet-9 total 56.864e9); a norm costs 2 x its elements
(4 x with affine parameters); a Linear ``in x out`` per sample; activations, padding, dropout and
masks cost nothing. Parameters are those of convs, linears and norms (mask weights are not counted).
:func:`format_count` writes such a count for people, in the unit that keeps it readable.
"""
import torch
from torch import nn

_CONV = (nn.Conv2d, nn.ConvTranspose2d)
_NORM = (nn.BatchNorm2d, nn.InstanceNorm2d, nn.GroupNorm, nn.LayerNorm)


def _macs(module, output):
    if isinstance(module, _CONV):
        c_in = module.in_channels // module.groups
        return output.numel() * c_in * module.kernel_size[0] * module.kernel_size[1]
    if isinstance(module, _NORM):
        affine = getattr(module, "affine", False) or getattr(module, "elementwise_affine", False)
        return output.numel() * (4 if affine else 2)
    if isinstance(module, nn.Linear):
        return output.numel() * module.in_features
    return 0


@torch.no_grad()
def count_macs_params(net, input_shape):
    """Raw (MACs, params) of ``net`` for one forward pass of a zero tensor of ``input_shape``
    (e.g. ``(1, 3, 256, 256)``). The network is run in eval mode and restored to its previous mode."""
    total = [0]
    counted = [m for m in net.modules() if isinstance(m, _CONV + _NORM + (nn.Linear,))]
    hooks = [m.register_forward_hook(lambda mod, inp, out: total.__setitem__(0, total[0] + _macs(mod, out)))
             for m in counted]
    was_training = net.training
    param = next(net.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    try:
        net.eval()
        net(torch.zeros(*input_shape, device=device))
    finally:
        for h in hooks:
            h.remove()
        net.train(was_training)
    params = sum(p.numel() for m in counted for p in m.parameters(recurse=False))
    return total[0], params


# the units of a MAC or parameter count, largest first
UNITS = ((1e9, "G"), (1e6, "M"), (1e3, "K"))


def format_count(value, digits=2):
    """A MAC or parameter count as text, in the largest unit it reaches: G (1e9), M (1e6) or K (1e3),
    with ``digits`` decimals; under 1000 the number itself. ``56_864_276_480 -> '56.86G'``,
    ``5_630_000 -> '5.63M'``, ``28_310 -> '28.31K'``, ``512 -> '512'``. At the sizes of the paper
    this is the original's ``%.2fG`` / ``%.2fM``; at small sizes it is not ``0.00G``. A value that
    rounds to 1 of the next unit is written in it (``999_999 -> '1.00M'``)."""
    value = float(value)
    for scale, unit in UNITS:
        # the largest unit in which the written number is at least 1 (so 999_999 is '1.00M')
        if round(abs(value) / scale, digits) >= 1:
            return f"{value / scale:.{digits}f}{unit}"
    return f"{value:.0f}" if value.is_integer() else f"{value:.{digits}f}"
