"""Mask sparsity losses (method.md §3) and the coefficients the search recomputes at each bound update.

For a mask with weights ``w`` (shape ``[C]``) at bound ``b`` the in-bound set is
``I = {c : -b < w_c < b}`` (strict), the channels whose scale is still soft. Every loss sums over ``I``
only, so it is 0 at ``b = 0`` and for weights that have left the soft region. Loss types:

* ``relu``:   ``sum_I (w_c + b)``, a constant push of every in-bound weight towards -b (switch off);
* ``bound``:  ``|| b - |w_c| ||_2`` over I, the *unsquared* L2 norm, pushing weights away from 0
  towards +-b (polarise);
* ``uprelu``: ``sum_I (b - w_c)``, a constant push towards +b (keep);
* ``exp``:    ``sum_I (exp((w_c + b) / b) - 1)``, an exponential push of every in-bound weight towards
  -b: 0 at -b, e^2 - 1 at +b, so the more "on" a channel is, the harder it is pushed off (the
  original listed ``exp`` but gave it no loss).

The functions take the bound as a Python float (all masks of a generator share it) and compute on
whole weight vectors; their gradients are finite everywhere, including at ``b = 0``.
"""
import torch

LOSS_TYPES = ("relu", "bound", "uprelu", "exp")


def in_bound(w, b):
    """BoolTensor like ``w``: the channels whose scale is soft at bound ``b``."""
    return (w > -b) & (w < b)


def _masked_sum(values, inside):
    # where(), not indexing: the sum keeps a (zero) gradient path when I is empty
    return torch.where(inside, values, torch.zeros_like(values)).sum()


def safe_norm(x, dim=None):
    """Euclidean norm of ``x`` (over ``dim``, all elements when None) whose gradient is 0, not NaN,
    where the norm is 0."""
    sq = (x * x).sum() if dim is None else (x * x).sum(dim)
    positive = sq > 0
    return torch.where(positive, torch.sqrt(torch.where(positive, sq, torch.ones_like(sq))), torch.zeros_like(sq))


def relu_loss(w, b):
    """``sum_{c in I} (w_c + b)``; scalar."""
    return _masked_sum(w + b, in_bound(w, b))


def bound_loss(w, b):
    """``|| b - |w_c| ||_2`` over ``c in I`` (unsquared; 0 when I is empty); scalar."""
    inside = in_bound(w, b)
    return safe_norm(torch.where(inside, b - w.abs(), torch.zeros_like(w)))


def uprelu_loss(w, b):
    """``sum_{c in I} (b - w_c)``; scalar."""
    return _masked_sum(b - w, in_bound(w, b))


def exp_loss(w, b):
    """``sum_{c in I} (exp((w_c + b) / b) - 1)``; scalar. 0 at ``w = -b``, ``e^2 - 1`` at ``w = +b``."""
    # the clamp keeps the exponent in [0, 2] outside I too, so where() never meets an inf gradient
    z = (w.clamp(-b, b) + b) / max(b, 1e-12)
    return _masked_sum(torch.expm1(z), in_bound(w, b))


LAYER_LOSSES = {"relu": relu_loss, "bound": bound_loss, "uprelu": uprelu_loss, "exp": exp_loss}


def block_loss(weights, b, coeff):
    """Residual-group loss (§3.2): ``sum_{k, c in I_k} (W[k, c] + b) * coeff[c]``.

    weights: ``[G, C]`` stacked group mask weights; coeff: ``[C]`` per stream channel. Scalar.
    """
    return _masked_sum((weights + b) * coeff, in_bound(weights, b))


def group_coefficients(weights, b, scale):
    """Adaptive per-channel coefficients of the block loss (§3.3), from the bound before the update.

    weights: ``[G, C]`` group mask weights. Channel c gets 0 when some mask keeps it fully (w > b) or
    every mask has switched it off (w < -b); otherwise ``(G / in_c) * scale`` with ``in_c`` = number
    of masks for which c is in bound, so the fewer masks are undecided, the harder each is pushed.
    Returns ``[C]``.
    """
    n = weights.shape[0]
    off = (weights < -b).sum(0)
    on = (weights > b).sum(0)
    undecided = n - off - on
    coeff = (n / undecided.clamp(min=1).to(weights.dtype)) * scale
    return torch.where((on > 0) | (off == n), torch.zeros_like(coeff), coeff)


def layer_coefficients(off_fraction, frozen, scale, floor=0.01):
    """U-Net per-layer loss multipliers (§3.5): ``scale * max(max_s, floor) / max(s, floor)``, 0 for
    frozen layers.

    off_fraction: ``[L]`` fraction of channels with w < -b per layer (all layers, frozen ones included,
    enter ``max_s``); frozen: BoolTensor ``[L]``. Layers that lag behind the sparsest one get a larger
    multiplier; the floor makes every layer get ``scale`` while nothing is off yet. Returns ``[L]``.
    """
    top = off_fraction.max().clamp(min=floor)
    coeff = scale * top / off_fraction.clamp(min=floor)
    return torch.where(frozen, torch.zeros_like(coeff), coeff)


def group_lasso(rows):
    """``sum_i || W_group[:, i] ||_2`` for the convs writing a shared channel set.

    rows: weights of those convs, each with the written channels on dim 0 (``[C, ...]``); channel i's
    group is row i of every one of them, flattened and concatenated. Scalar; zero rows have gradient 0.
    """
    stacked = torch.cat([r.reshape(r.shape[0], -1) for r in rows], 1)
    return safe_norm(stacked, dim=1).sum()


def loss_types(structure, opt):
    """Per-mask loss rules of §3.4 and §3.5, read off the structure's channel groups and mask roles
    (``models.structure.MASK_ROLES``).

    Returns ``(layers, group)``: ``layers`` = [(mask path, loss type, multiplier)] in state-dict order
    for the masks with their own loss; ``group`` = mask paths under the block loss (the masks of every
    channel group when ``--lambda_update_coeff > 0``, else empty: they then follow their role).

    * "outer": ``bound`` with ``--upconv_bound``, ``uprelu`` with ``--upconv_relu``, else
      ``--mask_loss_type``; x ``--upconv_coeff`` with ``--upconv_bound`` unless ``--upconv_solo``;
    * "last_up": ``bound`` x ``--upconv_coeff`` with ``--upconv_bound``, else ``--mask_loss_type``
      (the original used ``bound`` always);
    * "bound": ``bound`` whatever the options, x ``--upconv_coeff`` as "outer";
    * "own" and "balanced": ``--mask_loss_type`` (the per-layer multiplier of "balanced" masks is
      applied by the search).
    """
    own = opt.mask_loss_type
    outer = "bound" if opt.upconv_bound else ("uprelu" if opt.upconv_relu else own)
    grouped = {m for masks in structure.groups().values() for m in masks} if opt.lambda_update_coeff > 0 else set()
    layers, group = [], []
    for spec in structure.masked_convs():
        if spec.mask in grouped:
            group.append(spec.mask)
        elif spec.role in ("outer", "bound"):
            scaled = opt.upconv_bound and not opt.upconv_solo
            layers.append((spec.mask, outer if spec.role == "outer" else "bound", opt.upconv_coeff if scaled else 1.0))
        elif spec.role == "last_up":
            layers.append((spec.mask, "bound" if opt.upconv_bound else own,
                           opt.upconv_coeff if opt.upconv_bound else 1.0))
        else:
            layers.append((spec.mask, own, 1.0))
    return layers, group
