"""The mask-search controller (method.md §4): bound schedule, coefficient updates, folding, early stop
and the sparsity report; its ``loss_term`` gives the sparsity losses (§3, compress/mask_losses.py), which
the training stage attaches to the model (``model.add_loss_term(search.loss_term)``).

Schedule. ``total = N_batches * batch_size * (n_epochs + n_epochs_decay)`` images, ``T = 0.75 total``.
An *update point* runs after every ``freq = max(1, floor(floor(0.75 total / 150) / batch_size))``
batches (about 150 updates while the bound shrinks), at ``t = batches * batch_size`` (the original's
image counter, consistent with ``total``) with ``b(t) = 1 - (t/T)^(1/3)`` (cube), ``1 - (t/T)^(1/2)``
(double) or ``1 - t/T`` (linear), and 0 from ``t > T`` on.

Update of one generator (§4.3), in this order:

1. coefficients, from the bound before the update ``b_old``: the block-loss coefficients of every
   channel group (a ResNet's residual stream), and the freeze + per-layer multipliers of the
   "balanced" masks (the U-Net's); both are search state (``GeneratorSearch``), not network state;
2. ``b_new`` from the schedule;
3. early stop: the candidate architecture keeps every channel with ``w > -b_old``; its MACs come from
   the channel counts (``ChannelStructure.macs_params``, never a rebuilt model); at or under the
   direction's ``--*_macs_threshold`` (G = 1e9 MACs) the current scales of the channels that stay are
   folded into the weights, the masks are binarised (+1 / -1) and the generator's bound is 0 from then on;
4. otherwise the channels that leave the soft region on the "on" side (``b_new < w <= b_old``) have
   their current scale folded into the weights;
5. every mask of the generator gets ``b_new`` (0 once stopped).

Folding (exact wherever the structure says how, ``ConvSpec.fold``): into an affine norm (U-Net), into
the conv's own output rows (U-Net convs without norm), or into the input channels of every consumer
conv (ResNet; a positive scale commutes with the ReLU after the mask; a depthwise consumer scales its
filter of that channel). The masks of a channel group (the residual stream) have no
exact fold (several masks write the same stream channels, and the stream feeds later blocks and the
up-path), so their channels simply jump to scale 1, as in the original, where every ResNet fold was
normalised away by the affine-free InstanceNorm anyway. Channels that stay soft, or leave the soft
region on the "off" side, change scale by design (§4.4). A U-Net layer frozen at step 1 is folded the
same way as at an early stop before it is binarised, so freezing does not change the function either.
"""
import logging

import torch

from compress import mask_losses
from util.option_types import flag
from models.mask import soft_step
from util import distributed
from util.errors import UserError
from util.flops import format_count
from util.logger import detail_logger

log = logging.getLogger("dmad")
# the per-layer report of every update point: the run's logger.log only (the console gets summary())
detail = detail_logger()

SEARCH_FRACTION = 0.75  # the bound reaches 0 after this share of the training images
N_UPDATES = 150  # update points while the bound shrinks
GIGA = 1e9
BOUND_RULES = ("cube", "double", "linear")  # --update_bound_rule


# --------------------------------------------------------------------------------------------------
# schedule

def total_images(n_batches, batch_size, epochs):
    """Images of the whole run as the schedule counts them (a short last batch counts as full)."""
    return n_batches * batch_size * epochs


def update_frequency(total, batch_size):
    """Batches between update points: ``floor(floor(0.75 total / 150) / batch_size)``, at least 1."""
    return max(1, (3 * total // (4 * N_UPDATES)) // batch_size)


def bound_at(t, total, rule="cube"):
    """The bound after ``t`` of ``total`` images: 1 at t = 0, 0 from ``t >= 0.75 total`` on."""
    horizon = SEARCH_FRACTION * total
    if t >= horizon:
        return 0.0
    r = t / horizon
    if rule == "cube":
        b = 1.0 - r ** (1.0 / 3.0)
    elif rule == "double":
        b = 1.0 - r ** 0.5
    elif rule == "linear":
        b = 1.0 - r
    else:
        raise ValueError(f"unknown bound rule {rule!r}; expected one of {BOUND_RULES}")
    return max(b, 0.0)


# --------------------------------------------------------------------------------------------------
# folding

def _scale_slice(param, dim, index, scale):
    """``param[..., index, ...] *= scale`` along ``dim`` (index: LongTensor [k], scale: [k])."""
    shape = [1] * param.dim()
    shape[dim] = -1
    picked = param.index_select(dim, index)
    param.index_copy_(dim, index, picked * scale.to(param.dtype).view(shape))


@torch.no_grad()
def fold_scales(net, structure, scales):
    """Multiply the parameters that produce each given masked channel by a per-channel scale.

    scales: {mask path: (index LongTensor [k], scale Tensor [k])}, channels of that mask's conv.
    ``fold == "norm"``: the affine norm's weight and bias; ``"conv"``: the conv's output rows (dim 0 of
    a Conv2d weight, dim 1 of a ConvTranspose2d weight) and bias; ``"consumer"``: the input channels
    of every conv reading the masked output (``ChannelStructure.readers_of``: dim 1 of a Conv2d weight,
    dim 0 of a ConvTranspose2d or depthwise weight), at the set's offset in that conv's input. Masks with ``fold is None`` (a channel group's)
    are skipped.
    """
    for spec in structure.masked_convs():
        if spec.mask not in scales or spec.fold is None:
            continue
        index, scale = scales[spec.mask]
        if spec.fold == "norm":
            norm = net.get_submodule(spec.norm)
            _scale_slice(norm.weight, 0, index, scale)
            _scale_slice(norm.bias, 0, index, scale)
        elif spec.fold == "conv":
            conv = net.get_submodule(spec.name)
            _scale_slice(conv.weight, 1 if spec.transposed else 0, index, scale)
            if conv.bias is not None:
                _scale_slice(conv.bias, 0, index, scale)
        elif spec.fold == "consumer":
            for consumer, offset in structure.readers_of(spec):
                conv = net.get_submodule(consumer.name)
                # the input channels: dim 0 of a ConvTranspose2d weight (in, out, k, k) and of a
                # depthwise weight (C, 1, k, k; its bias is not scaled: dw(s x) = (s W) x + b), else dim 1
                dim = 0 if consumer.transposed or consumer.depthwise else 1
                _scale_slice(conv.weight, dim, index + offset, scale)
        else:
            raise ValueError(f"unknown fold {spec.fold!r} of {spec.name}")


@torch.no_grad()
def fold_raised(net, structure, select, only=None):
    """Fold the *current* scale ``f_b(w)`` of the channels ``select(w)`` picks, which the caller is
    about to raise to scale 1, into the weights (``fold_scales``). Call it before the masks change.

    select: elementwise ``BoolTensor <- weights``; only: mask paths to visit (all when None). Channels
    already at scale 1 are left alone. Returns {mask path: number of channels folded}.
    """
    specs = [s for s in structure.masked_convs() if s.fold is not None and (only is None or s.mask in only)]
    if not specs:
        return {}
    masks = [net.get_submodule(s.mask) for s in specs]
    # all masks at once: one flat weight vector, each weight with its mask's bound
    widths = torch.tensor([m.num_channels for m in masks])
    w = torch.cat([m.mask_weight for m in masks]).detach()
    bounds = torch.cat([m.bound.expand(m.num_channels) for m in masks])  # repeat_interleave is slow on CPU
    scale = soft_step(w, bounds)
    picked = (select(w) & (scale != 1)).nonzero().squeeze(1)
    if not picked.numel():
        return {}
    starts = torch.cumsum(widths, 0) - widths
    owner = torch.bucketize(picked.cpu(), starts, right=True) - 1
    counts = torch.bincount(owner, minlength=len(masks)).tolist()
    scales, folded = {}, {}
    for spec, start, index, count in zip(specs, starts.tolist(), picked.split(counts), counts):
        if count:
            scales[spec.mask] = (index - start, scale.index_select(0, index))
            folded[spec.mask] = count
    fold_scales(net, structure, scales)
    return folded


def candidate_macs(structure, weights, bound, vote, image_size):
    """MACs and widths of the architecture the search would settle on now: a channel stays when its
    weight is above ``-bound`` (not fully off); a group channel when more than ``vote`` masks keep it.

    weights: {mask path: tensor [C]}; image_size: (H, W). Returns (MACs, {set: width}).
    """
    kept = structure.keep(weights, threshold=-bound, vote=vote)
    widths = structure.widths_from_keep(kept)
    macs, _ = structure.macs_params(widths, image_size)
    return macs, widths


# --------------------------------------------------------------------------------------------------
# one searched generator

class GeneratorSearch:
    """The masks, loss plan and search state of one masked generator.

    The search state is read off the channel structure, the same way for every family: per-channel
    coefficients of the block loss for each channel group (``group_coeff``, method.md §3.3) and
    per-layer multipliers for the masks of role "balanced" (``layer_coeff``, one per mask, §3.5);
    both start at 1 and are recomputed at every update point."""

    def __init__(self, entry, net, opt):
        """``entry``: the generator's row of the model's per-direction table
        (:class:`models.base_model.Direction`); ``net``: the masked generator."""
        name, direction = entry.generator, entry.name
        structure = net.structure()
        specs = structure.masked_convs()
        if not specs:
            raise ValueError(f"{name} has no masks: build the model with --mask")
        self.name, self.net, self.direction, self.structure = name, net, direction, structure
        self.paths = [s.mask for s in specs]
        self.masks = [net.get_submodule(p) for p in self.paths]
        device = self.masks[0].mask_weight.device
        widths = [m.num_channels for m in self.masks]
        self.widths = torch.tensor(widths, device=device)
        self.segment = torch.repeat_interleave(torch.arange(len(widths), device=device), self.widths)
        index = {p: i for i, p in enumerate(self.paths)}
        layers, block = mask_losses.loss_types(structure, opt)
        self.layer_index = [index[p] for p, _, _ in layers]
        self.layer_types = [t for _, t, _ in layers]
        self.layer_mult = torch.tensor([m for _, _, m in layers], device=device)
        # channel groups: {set: mask indices}, their writers (group lasso) and block-loss coefficients
        self.groups = {name: [index[p] for p in masks] for name, masks in structure.groups().items() if masks}
        self.block_groups = {name: idx for name, idx in self.groups.items() if self.paths[idx[0]] in block}
        self.group_convs = {name: [(net.get_submodule(c.name), c.transposed) for c in structure.writers(name)]
                            for name in self.groups}
        self.group_coeff = {name: torch.ones(self.masks[idx[0]].num_channels, device=device)
                            for name, idx in self.groups.items()}
        self.balanced = [index[s.mask] for s in specs if s.role == "balanced"]
        self.layer_coeff = torch.ones(len(self.paths), device=device)
        self.macs_threshold = float(getattr(opt, entry.macs_option))
        self.stop_message = entry.stop_message
        self.stopped = False
        self.bound = self.read_bound()

    def read_bound(self):
        """The bound the masks hold (all masks of a generator share it)."""
        return float(self.masks[0].bound)

    def set_bound(self, b):
        for mask in self.masks:
            mask.update(b)
        self.bound = self.read_bound()  # float32-rounded, as the masks compare with it

    def weights(self):
        return [m.mask_weight for m in self.masks]

    def flat_weights(self):
        return torch.cat(self.weights()).detach()

    def per_mask(self, flags):
        """Per-mask counts of a flat BoolTensor over all channels; LongTensor [M]."""
        counts = torch.zeros(len(self.masks), dtype=torch.long, device=flags.device)
        return counts.index_add_(0, self.segment, flags.long())

    def group_weights(self, name):
        """``[G, C]``: the mask weights of channel group ``name``, one row per mask."""
        return torch.stack([self.masks[i].mask_weight for i in self.groups[name]])

    # ---------------------------------------------------------------- losses
    def mask_loss(self, opt):
        """Sparsity loss of this generator's masks (before ``--mask_weight_decay``); scalar."""
        b = self.bound
        ws = self.weights()
        terms = torch.stack([mask_losses.LAYER_LOSSES[t](ws[i], b)
                             for i, t in zip(self.layer_index, self.layer_types)])
        mult = self.layer_mult
        if self.balanced and opt.lambda_update_coeff > 0:
            mult = mult * self.layer_coeff[self.layer_index]
        total = (terms * mult).sum()
        for name, idx in self.block_groups.items():
            group = torch.stack([ws[i] for i in idx])
            total = total + opt.block_coeff * mask_losses.block_loss(group, b, self.group_coeff[name])
        return total

    def group_lasso(self):
        """``sum_i ||W_group[:, i]||_2`` over every channel group, rows of all the group's writers."""
        return sum(mask_losses.group_lasso([conv.weight.transpose(0, 1) if transposed else conv.weight
                                            for conv, transposed in convs])
                   for convs in self.group_convs.values())

    # ---------------------------------------------------------------- update steps
    @torch.no_grad()
    def update_coefficients(self, opt):
        """Step 1 of an update, at the current (old) bound: freeze the "balanced" layers past
        ``--frozen_threshold`` and recompute their multipliers, and (``--lambda_update_coeff > 0``)
        the block-loss coefficients of every channel group. Returns the names of frozen layers."""
        b = self.bound
        frozen = self._freeze(opt, b) if self.balanced else []
        if opt.lambda_update_coeff > 0:
            for name in self.groups:
                self.group_coeff[name] = mask_losses.group_coefficients(self.group_weights(name), b,
                                                                        opt.lambda_update_coeff)
        return frozen

    def _freeze(self, opt, b):
        """§3.5: binarise the "balanced" layers whose off-fraction exceeds ``--frozen_threshold`` (the
        scales of their surviving channels folded first) and recompute the per-layer multipliers."""
        w = self.flat_weights()
        balanced = torch.tensor(self.balanced, device=w.device)
        off = (self.per_mask(w < -b).to(w.dtype) / self.widths.to(w.dtype)).index_select(0, balanced)
        frozen = off > opt.frozen_threshold
        names = [self.paths[i] for i, f in zip(self.balanced, frozen.tolist()) if f]
        if names:
            chosen = set(names)
            fold_raised(self.net, self.structure, lambda v: v >= -b, only=chosen)
            for path, mask in zip(self.paths, self.masks):
                if path in chosen:
                    _binarise(mask, mask.mask_weight >= -b)
        if opt.lambda_update_coeff > 0:
            coeff = mask_losses.layer_coefficients(off, frozen, opt.lambda_update_coeff)
            self.layer_coeff = self.layer_coeff.index_copy(0, balanced, coeff)
        return names

    @torch.no_grad()
    def early_stop(self, image_size, vote):
        """Step 3: stop the search when the candidate's MACs are at or under the threshold.
        Returns the candidate MACs when it stopped, else None."""
        if self.macs_threshold <= 0:
            return None
        b = self.bound
        macs, _ = candidate_macs(self.structure, dict(zip(self.paths, self.weights())), b, vote, image_size)
        if macs / GIGA > self.macs_threshold:
            return None
        fold_raised(self.net, self.structure, lambda v: v > -b)
        for mask in self.masks:
            _binarise(mask, mask.mask_weight > -b)
        self.stopped = True
        return macs

    @torch.no_grad()
    def fold_crossing(self, b_new):
        """Step 4: fold the scales of the channels that go from soft to fully on (``b_new < w <= b_old``)."""
        b_old = self.bound
        return fold_raised(self.net, self.structure, lambda v: (v > b_new) & (v <= b_old))

    # ---------------------------------------------------------------- report
    @torch.no_grad()
    def report_lines(self):
        """The sparsity log of §8.9 at the current bound."""
        w = self.flat_weights()
        scale = soft_step(w, self.masks[0].bound)
        stats = torch.stack([self.per_mask(scale == 0), self.per_mask(scale == 1)]).to(w.dtype)
        ratios = (stats / self.widths.to(w.dtype)).tolist()
        lines = [f"{p} sparsity ratio: {a:.3f}\tone ratio: {o:.3f}\ttotal ratio: {a + o:.3f}"
                 for p, a, o in zip(self.paths, *ratios)]
        for name in self.groups:  # the original's name for the residual group
            off = (self.group_weights(name) < -self.bound).all(0).float().mean()
            lines.append(f"ResBlock sparsity ratio: {float(off):.3f}")
        return lines

    @torch.no_grad()
    def kept(self):
        """{mask path: channels not fully off (w > -b)} at the current bound."""
        counts = self.per_mask(self.flat_weights() > -self.bound).tolist()
        return dict(zip(self.paths, counts))


def _binarise(mask, on):
    mask.mask_weight.copy_(torch.where(on, torch.ones_like(mask.mask_weight), -torch.ones_like(mask.mask_weight)))


# --------------------------------------------------------------------------------------------------
# the controller

class MaskSearch:
    """Drives the mask search of a model's generators (CycleGAN: G_A, G_B; pix2pix: G).

    :meth:`loss_term`, which the stage attaches with ``model.add_loss_term``, gives ``mask_weight`` =
    ``--mask_weight_decay`` x the sum of the generators' sparsity losses (while their bound is > 0), and,
    with ``--lambda_group_lasso``, ``group_lasso`` = that weight x ``sum_i ||W_group[:, i]||_2`` over the
    channel groups (for the residual stream: rows i of down2.conv and of every block's conv2, flattened
    together), which pulls whole stream channels of the convs towards 0 while the search runs. The
    Trainer calls :meth:`after_iteration` after every batch and consults :meth:`best_eligible`;
    ``visualizer`` (optional) receives the plot records.
    """

    def __init__(self, opt, model, n_batches, visualizer=None):
        if opt.update_bound_rule not in BOUND_RULES:
            raise UserError(f"unknown --update_bound_rule {opt.update_bound_rule!r}: "
                            f"use one of {', '.join(BOUND_RULES)}")
        self.opt, self.model, self.visualizer = opt, model, visualizer
        self.n_batches = max(1, int(n_batches))
        # images per iteration over all processes: the schedule is the one a single process with the
        # global batch follows
        self.batch_size = opt.batch_size * distributed.world_size()
        self.total = total_images(self.n_batches, self.batch_size, opt.n_epochs + opt.n_epochs_decay)
        self.freq = update_frequency(self.total, self.batch_size)
        self.gens = [GeneratorSearch(d, model.nets[d.generator], opt) for d in model.directions(opt.direction)]
        self.by_direction = {g.direction: g for g in self.gens}
        if opt.lambda_group_lasso > 0 and not any(g.groups for g in self.gens):
            raise UserError("--lambda_group_lasso acts on a channel group (a residual stream) and these "
                            "generators have none: drop it")
        roles = {s.role for g in self.gens for s in g.structure.masked_convs()}
        if not roles & {"outer", "last_up"} and (opt.upconv_bound or opt.upconv_relu or opt.upconv_solo):
            log.warning("--upconv_bound/--upconv_relu/--upconv_solo have no effect: these generators have no "
                        "outer up-conv masks")
        self.bound = 1.0  # the schedule's bound at the last update
        self.records = []
        self.device = self.gens[0].masks[0].mask_weight.device

    # ---------------------------------------------------------------- loss
    def loss_term(self):
        """{'mask_weight': scalar[, 'group_lasso': scalar]} for the generator loss."""
        with torch.autocast(self.device.type, enabled=False):  # mask losses stay fp32 under --amp
            return self._loss_terms()

    def _loss_terms(self):
        opt = self.opt
        zero = torch.zeros((), device=self.device)
        active = [g for g in self.gens if g.bound > 0]
        mask = zero
        if opt.mask_weight_decay > 0 and active:
            mask = opt.mask_weight_decay * sum(g.mask_loss(opt) for g in active)
        terms = {"mask_weight": mask}
        if opt.lambda_group_lasso > 0:
            lasso = [g.group_lasso() for g in active if g.groups]
            terms["group_lasso"] = opt.lambda_group_lasso * sum(lasso) if lasso else zero
        return terms

    # ---------------------------------------------------------------- schedule
    def after_iteration(self, iteration, epoch, images_seen):
        """Run the update point when ``iteration`` (batches since the start, from 1) is a multiple of
        ``freq`` (>= 1). The plot is redrawn at the last update point of each epoch."""
        if iteration % self.freq == 0:
            last_of_epoch = (iteration + self.freq - 1) // self.n_batches != (iteration - 1) // self.n_batches
            self.update(iteration * self.batch_size, step=iteration / self.n_batches, plot=last_of_epoch)

    @torch.no_grad()
    def update(self, t, step=None, plot=True):
        """The update point at ``t`` images (§4.1 steps 2-3): sparsity report at the old bound, then the
        update of every generator that still searches, a plot record and (``plot``) the plot."""
        opt = self.opt
        if detail.isEnabledFor(logging.INFO):
            for g in self.gens:
                detail.info("net%s\n%s", g.name, "\n".join(g.report_lines()))
        b_new = bound_at(t, self.total, opt.update_bound_rule)
        detail.info("Bound: %.3f", b_new)
        size = (opt.crop_size, opt.crop_size)
        for g in self.gens:
            if g.stopped:
                detail.info(g.stop_message)  # the console had it when the generator stopped
                continue
            if g.bound > 0:
                frozen = g.update_coefficients(opt)
                if frozen:
                    detail.info("net%s frozen layers: %s", g.name, ", ".join(frozen))
                macs = g.early_stop(size, opt.threshold)
                if macs is not None:
                    log.info("%s (candidate %s MACs <= %s)", g.stop_message, format_count(macs, 3),
                             format_count(g.macs_threshold * GIGA, 3))
                else:
                    g.fold_crossing(b_new)
            g.set_bound(0.0 if g.stopped else b_new)
        self.bound = b_new
        self._record(t if step is None else step, b_new, plot)

    def _record(self, step, bound, plot):
        multi = len(self.gens) > 1
        layers, widths = {}, {}
        for g in self.gens:
            prefix = f"{g.name}." if multi else ""
            for path, count in g.kept().items():
                layers[prefix + path] = count
            for path, mask in zip(g.paths, g.masks):
                widths[prefix + path] = mask.num_channels
        self.records.append({"step": float(step), "bound": float(bound), "layers": layers, "widths": widths})
        if plot and self.visualizer is not None:
            self.visualizer.plot_mask_search(self.records)

    @torch.no_grad()
    def summary(self):
        """One line on where the search stands (the console's line at the end of an epoch; the per-layer
        report of each update point goes to logger.log): the bound and, per generator, the channels and
        MACs at ``--crop_size`` of the architecture it would settle on now (a channel stays while its
        weight is above ``-bound``), and whether it stopped early."""
        size = (self.opt.crop_size, self.opt.crop_size)
        parts = [f"search: bound {self.bound:.3f}"]
        for g in self.gens:
            weights = dict(zip(g.paths, g.weights()))
            macs, widths = candidate_macs(g.structure, weights, g.bound, self.opt.threshold, size)
            full = {name: int(cset.width) for name, cset in g.structure.sets.items()}
            full_macs, _ = g.structure.macs_params(full, size)
            kept = sum(int(widths.get(name, 0)) for name in full)
            parts.append(f"net{g.name} {kept}/{sum(full.values())} channels kept, {format_count(macs)} of "
                         f"{format_count(full_macs)} MACs" + (" (stopped early)" if g.stopped else ""))
        return " | ".join(parts)

    # ---------------------------------------------------------------- queries
    def best_eligible(self, direction):
        """A score may become "best" once the architecture is settled: the schedule's bound is 0, or the
        generator of ``direction`` (its own flag) has stopped early."""
        g = self.by_direction.get(direction)
        return self.bound == 0 or (g is not None and g.stopped)

    def reopening(self, iteration, start_epoch):
        """Where a settled search (bound 0) resumed after ``iteration`` batches, at ``start_epoch``, is
        re-opened by a longer schedule than it settled under (the bound follows the schedule of the
        options): ``(bound, epoch)`` of its first update point, or None when the bound stays 0 there
        (or every generator stopped early, which keeps it at 0)."""
        if self.bound != 0 or all(g.stopped for g in self.gens):
            return None
        first = (int(iteration) // self.freq + 1) * self.freq  # the next update point
        bound = bound_at(first * self.batch_size, self.total, self.opt.update_bound_rule)
        if bound <= 0:
            return None
        return bound, start_epoch + (first - int(iteration) - 1) // self.n_batches

    # ---------------------------------------------------------------- state
    def state_dict(self):
        """Plain data; the masks' bounds and weights live in the generators."""
        return {"bound": float(self.bound),
                "stopped": {g.name: bool(g.stopped) for g in self.gens},
                "layer_coeff": {g.name: g.layer_coeff.detach().cpu().clone() for g in self.gens},
                "group_coeff": {g.name: {k: v.detach().cpu().clone() for k, v in g.group_coeff.items()}
                                for g in self.gens},
                "records": [dict(r, layers=dict(r["layers"]), widths=dict(r["widths"])) for r in self.records]}

    def load_state_dict(self, state):
        """Restore after the generators were loaded (their masks hold the bounds)."""
        self.bound = float(state["bound"])
        for g in self.gens:
            g.stopped = bool(state["stopped"].get(g.name, False))
            coeff = state.get("layer_coeff", {}).get(g.name)
            if coeff is not None:
                g.layer_coeff = coeff.to(g.layer_coeff.device, g.layer_coeff.dtype).clone()
            for name, coeff in state.get("group_coeff", {}).get(g.name, {}).items():
                g.group_coeff[name] = coeff.to(g.group_coeff[name].device, g.group_coeff[name].dtype).clone()
            g.bound = g.read_bound()
        self.records = [dict(r, layers=dict(r["layers"]), widths=dict(r["widths"])) for r in state["records"]]


def add_options(group):
    """The options of the mask search (train.py --mask; docs/method.md §3, §4, §11), declared into the
    argparse ``group`` options/ gives this owner."""
    group.add_argument("--mask_weight_decay", type=float, default=0.0, help="weight decay for mask_weight. default: 0.0")
    group.add_argument("--mask_loss_type", type=str, default="relu", choices=mask_losses.LOSS_TYPES,
                       help="The type of mask loss decay [relu | bound | uprelu | exp]. default: relu")
    flag(group, "--unmask_last_upconv", "Unmask last upconv or not")
    group.add_argument("--update_bound_rule", type=str, default="cube", choices=BOUND_RULES,
                       help="The rule of update bound in mask layer [cube | double | linear]. default: cube")
    group.add_argument("--block_coeff", type=float, default=1.0,
                       help="multiplier of the residual-group block loss. default: 1.0")
    group.add_argument("--upconv_coeff", type=float, default=1.0,
                       help="multiplier of the outer (up-conv) mask losses. default: 1.0")
    flag(group, "--upconv_solo", "Only last upconv using update bound")
    flag(group, "--upconv_bound", "bound loss for upconv's mask weight")
    flag(group, "--upconv_relu", "contrary relu loss (uprelu) for upconv's mask weight")
    group.add_argument("--lambda_update_coeff", type=float, default=0.0,
                       help="weight for update block's sparsity coeff after every epoch training; >0 enables "
                            "the block loss. default: 0.0")
    group.add_argument("--lambda_group_lasso", type=float, default=0.0,
                       help="weight for group lasso to sparsity resblock. default: 0.00")
    group.add_argument("--threshold", type=int, default=0,
                       help="a residual channel is kept when more than this many residual-group masks keep it "
                            "(the group vote). default: 0")
    group.add_argument("--frozen_threshold", type=float, default=0.85,
                       help="U-Net: freeze a mask layer when its off-fraction exceeds this. default: 0.85")
    group.add_argument("--AtoB_macs_threshold", type=float, default=0.0,
                       help="early stop the A->B (or only) generator's search when its MACs (in G = 1e9) fall "
                            "under this; 0 = off. default: 0")
    group.add_argument("--BtoA_macs_threshold", type=float, default=0.0,
                       help="same for the B->A generator (cyclegan). default: 0")
