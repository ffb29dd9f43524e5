"""The differentiable channel mask (method.md §2).

``Mask(C)`` multiplies channel c of a 4-D input by ``f_b(w_c)``, a soft step of the learnable weight
``w_c`` whose width is the bound ``b``:

    f_b(w) = 0                        w < -b
           = 0.5 (1 + w/b')^2         -b <= w <= 0
           = 1 - 0.5 (1 - w/b')^2     0 < w <= b
           = 1                        w > b            with b' = max(b, 0.005)

and the hard step ``w > 0`` at ``b = 0``. The step is a pure function of the stored bound (nothing is
cached), so a loaded checkpoint behaves exactly as it did when it was saved.
"""
import torch
from torch import nn

# The polynomial pieces are fitted for at least this bound (the original's floor); the region tests
# use the true bound, which reproduces the original's values for 0 < b < 0.005.
BOUND_FLOOR = 0.005
INIT_STD = 0.2


def soft_step(weight, bound):
    """``f_b(w)`` for a weight tensor and a 1-element bound tensor; differentiable in ``weight``.

    At ``bound == 0`` the result is the hard step ``(w > 0)`` and its gradient a zero tensor.
    Computed without host synchronisation (no ``.item()``), so it is cheap on the GPU.
    """
    b = bound.to(weight.dtype)
    bp = torch.clamp(b, min=BOUND_FLOOR)
    left = 0.5 * (1 + weight / bp) ** 2
    right = 1 - 0.5 * (1 - weight / bp) ** 2
    zero = torch.zeros_like(weight)
    one = torch.ones_like(weight)
    soft = torch.where(weight < -b, zero, torch.where(weight <= 0, left, torch.where(weight <= b, right, one)))
    hard = (weight > 0).to(weight.dtype) + 0 * weight  # the `0 * w` keeps a (zero) gradient path
    return torch.where(b > 0, soft, hard)


def soft_step_slope(weight, bound):
    """``d f_b / d w``: the derivative of the active piece, 0 outside ``[-b, b]`` and everywhere at b = 0."""
    b = bound.to(weight.dtype)
    bp = torch.clamp(b, min=BOUND_FLOOR)
    left = weight / bp ** 2 + 1 / bp
    right = -weight / bp ** 2 + 1 / bp
    inside = (weight >= -b) & (weight <= b) & (b > 0)
    return torch.where(inside, torch.where(weight <= 0, left, right), torch.zeros_like(weight))


class Mask(nn.Module):
    """A per-channel learnable soft mask; sits after a norm and before the activation (§2.7).

    State: ``mask_weight`` (parameter, shape ``[C]``, N(0, 0.2^2) at construction) and ``bound``
    (buffer, shape ``[1]``, 1.0 at construction). Both are in the state dict under the original's names.
    """

    def __init__(self, num_channels):
        super().__init__()
        self.num_channels = num_channels
        self.mask_weight = nn.Parameter(torch.randn(num_channels) * INIT_STD)
        self.register_buffer("bound", torch.ones(1))

    def update(self, bound):
        """Set the bound (a float >= 0)."""
        self.bound.fill_(max(float(bound), 0.0))

    def scale(self):
        """The per-channel scale ``f_b(w)``, shape ``[C]``."""
        return soft_step(self.mask_weight, self.bound)

    def forward(self, x):
        # the scale is computed in fp32 from the fp32 weight; under autocast only the product is in x's dtype
        return x * self.scale().to(x.dtype).view(1, -1, 1, 1)

    def extra_repr(self):
        return f"{self.num_channels}"

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # The original saved the bound as a parameter of shape [1]; a 0-d value is accepted too.
        key = prefix + "bound"
        if key in state_dict and state_dict[key].dim() == 0:
            state_dict[key] = state_dict[key].reshape(1)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
