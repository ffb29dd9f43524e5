"""Physical pruning of a masked generator into a slim plain one (method.md §6).

Everything is driven by the generator's :class:`models.structure.ChannelStructure`: which channels
each set keeps, which tensors each conv reads and writes, which units vanish. No family-specific
index lists live here, so any family that describes itself can be pruned.

Pruning reads the masks as hard steps: a mask keeps channel c iff ``w_c > 0``, whatever bound is
stored. That is the masked generator's behaviour at bound 0 (the end of the search), where the slim
generator computes exactly what the masked one does (§6.5); at a bound > 0 the two differ.
"""
import torch

from util.errors import UserError
from util.flops import count_macs_params, format_count


def original_cfg(structure, widths):
    """The original code's ``cfg`` for a generator with ``widths`` (for logs and legacy checkpoints).

    ResNet types: one int per mask position in state-dict order, i.e. the output width of every conv
    that writes a channel set: ``[stem, down1, R, (k_i, R) x n_blocks, up1, up2]`` with ``k_i = 0`` for
    a removed block. Generators with skip concatenations (U-Net): ``(filter_cfgs, channel_cfgs)``
    where ``channel_cfgs[k]`` is the input width of the first conv that reads set k (§5.4).
    """
    writers = [c for c in structure.convs if c.out is not None and not c.depthwise]
    filters = [int(widths[c.out]) for c in writers]
    if not any(len(c.ins) > 1 for c in structure.convs):
        return filters
    channels = []
    for conv in writers:
        reader = next(c for c in structure.convs if conv.out in c.ins)
        channels.append(int(sum(structure.input_nc if s is None else widths[s] for s in reader.ins)))
    return filters, channels


def _kept_indices(structure, kept, widths, weights):
    """{set: LongTensor of the channel indices the slim net keeps}. A set that must keep one channel
    although none is on keeps the one with the largest mask weight (its rows are zeroed later)."""
    index = {}
    for name, keep in kept.items():
        idx = keep.nonzero().flatten()
        if idx.numel() == 0 and widths[name] > 0:
            stacked = torch.stack([weights[m].detach().cpu() for m in structure.masks_of(name)])
            idx = stacked.max(0).values.argmax().view(1)
        index[name] = idx
    return index


def _input_index(structure, conv, index):
    """Kept input channels of ``conv``: the kept indices of each input set, offset by the full widths
    of the sets concatenated before it."""
    return torch.cat([torch.arange(structure.width(s)) + offset if s is None else index[s] + offset
                      for s, offset in structure.input_offsets(conv)])


@torch.no_grad()
def slim_state_dict(net, structure, index, removed):
    """The slim generator's state dict: every tensor of every surviving conv (and its norm) sliced by
    the kept indices; output rows whose own mask is off are zeroed (weights, bias, norm affine and
    running mean), which makes the channel exactly 0 as in the masked net (§6.3). A depthwise conv
    keeps the filters (and bias entries) of its set's kept channels (§6.3, mobile variants)."""
    state = {}
    for conv in structure.convs:
        if conv.unit in removed:
            continue
        module = net.get_submodule(conv.name)
        device = module.weight.device
        out_idx = (torch.arange(structure.output_nc) if conv.out is None else index[conv.out]).to(device)
        out_dim = 1 if conv.transposed else 0  # ConvTranspose2d weights are (in, out, k, k)
        if conv.depthwise:  # weight [C, 1, k, k]: output c reads input c only
            weight = module.weight.detach().index_select(0, out_idx)
        else:
            in_idx = _input_index(structure, conv, index).to(device)
            weight = _gather(module.weight.detach(), *((in_idx, out_idx) if conv.transposed else (out_idx, in_idx)))
        off = None
        if conv.mask is not None:
            off = net.get_submodule(conv.mask).mask_weight.detach().index_select(0, out_idx) <= 0
            if bool(off.any()):
                weight.index_fill_(out_dim, off.nonzero().flatten(), 0.0)
            else:
                off = None
        state[f"{conv.name}.weight"] = weight
        if module.bias is not None:
            state[f"{conv.name}.bias"] = _rows(module.bias, out_idx, off)
        if conv.norm is not None:
            for key, tensor in net.get_submodule(conv.norm).state_dict().items():
                if key == "num_batches_tracked":
                    state[f"{conv.norm}.{key}"] = tensor.clone()
                elif key == "running_var":
                    state[f"{conv.norm}.{key}"] = tensor.index_select(0, out_idx)
                else:  # weight, bias, running_mean
                    state[f"{conv.norm}.{key}"] = _rows(tensor, out_idx, off)
    return state


def _gather(weight, first, second):
    """``weight[first][:, second]`` as one gather of whole kernels (rows of k*k values)."""
    n2 = weight.shape[1]
    flat = (first[:, None] * n2 + second[None, :]).flatten()
    return weight.reshape(weight.shape[0] * n2, -1).index_select(0, flat).view(len(first), len(second),
                                                                              *weight.shape[2:])


def _rows(tensor, idx, off):
    rows = tensor.detach().index_select(0, idx)
    if off is not None:
        rows[off] = 0.0
    return rows


def _shape(image_size, channels):
    if image_size is None:
        return None
    h, w = (image_size, image_size) if isinstance(image_size, int) else image_size
    return (1, channels, int(h), int(w))


@torch.no_grad()
def prune_generator(net, vote=0, image_size=None):
    """Prune a masked generator (any family with ``structure()``/``config()``) into a slim plain one.

    vote:       ``--threshold``: a channel of a channel group (residual stream) is kept when more than
                ``vote`` of the group's masks keep it (0: when any does).
    image_size: int or (H, W); when given, the report holds MACs/params of both nets at
                ``(1, input_nc, H, W)`` by ``util.flops.count_macs_params``.
    Returns ``(slim, report)``: ``slim`` is ``type(net)(**config, widths=..., mask=False)`` on the same
    device and in the same train/eval mode, holding no masks; ``report`` is plain data (see
    :func:`format_prune_table`). Empty removable sets drop their unit (a residual block); other empty
    sets keep one zeroed channel, exactly equivalent to the masked net's zeros.
    """
    structure = net.structure()
    masked = structure.masked_convs()
    if not masked:
        raise UserError(f"the {type(net).__name__} has no masks: pruning needs the generator of a mask search")
    weights = {c.mask: net.get_submodule(c.mask).mask_weight for c in masked}
    kept = structure.keep(weights, threshold=0.0, vote=vote)
    widths = structure.widths_from_keep(kept)
    removed = structure.removed_units(widths)
    index = _kept_indices(structure, kept, widths, weights)
    state = slim_state_dict(net, structure, index, removed)

    args = net.config()
    args.pop("family")
    args.update(widths=widths, mask=False)
    # built without allocating or initialising weights: every tensor comes from ``state``
    with torch.device("meta"):
        slim = type(net)(**args)
    slim.load_state_dict(state, strict=True, assign=True)
    leftover = [n for n, t in list(slim.named_parameters()) + list(slim.named_buffers()) if t.is_meta]
    if leftover:
        raise RuntimeError(f"the channel structure does not describe {leftover[:3]}: cannot prune them")
    slim.train(net.training)

    groups = structure.groups()
    report = {
        "family": net.family,
        "vote": int(vote),
        "widths": {k: int(v) for k, v in widths.items()},
        "removed": sorted(removed),
        "cfg": original_cfg(structure, widths),
        "layers": [{"set": name, "masks": structure.masks_of(name), "group": name in groups,
                    "kept": int(kept[name].sum()), "full": int(cset.width), "width": int(widths[name])}
                   for name, cset in structure.sets.items()],
    }
    shape = _shape(image_size, structure.input_nc)
    if shape is not None:
        macs0, params0 = count_macs_params(net, shape)
        macs1, params1 = count_macs_params(slim, shape)
        report.update(input_shape=list(shape), macs_before=int(macs0), macs_after=int(macs1),
                      params_before=int(params0), params_after=int(params1),
                      macs_ratio=macs0 / max(macs1, 1), params_ratio=params0 / max(params1, 1))
    return slim, report


def format_prune_table(reports):
    """Text of the pruning summary of ``{net name: report}`` (e.g. ``{"G_A": ..., "G_B": ...}``): per
    generator a table of MACs/params before and after with the compression ratio, the kept channels
    per layer, the original's cfg, and the original's log lines (``netG_A | Params: ...``)."""
    lines = []
    for name, rep in reports.items():
        label = f"net{name}"
        grouped = any(layer.get("group", len(layer["masks"]) > 1) for layer in rep["layers"])
        vote = f", a group channel is kept when more than {rep['vote']} of its masks keep it" if grouped else ""
        lines.append(f"{label} ({rep['family']}{vote})")
        if "macs_before" in rep:
            size = "x".join(str(s) for s in rep["input_shape"][2:])
            lines.append(f"  {'at ' + size:<10}{'before':>14}{'after':>14}{'ratio':>10}")
            lines.append(f"  {'MACs':<10}{format_count(rep['macs_before'], 3):>14}"
                         f"{format_count(rep['macs_after'], 3):>14}{rep['macs_ratio']:>9.2f}×")
            lines.append(f"  {'Params':<10}{format_count(rep['params_before'], 3):>14}"
                         f"{format_count(rep['params_after'], 3):>14}{rep['params_ratio']:>9.2f}×")
        width = max(len(layer["set"]) for layer in rep["layers"])
        lines.append(f"  {'layer':<{width}}  {'kept/full':>11}  masks")
        for layer in rep["layers"]:
            masks = layer["masks"]
            in_group = layer.get("group", len(masks) > 1)  # reports written before "group" existed
            where = (f"group of {len(masks)} masks" if in_group else masks[0]) if masks else "no mask"
            note = ""
            if layer["width"] == 0:
                note = "  (removed)"
            elif layer["width"] > layer["kept"]:
                note = f"  ({layer['width'] - layer['kept']} zeroed channel kept)"
            lines.append(f"  {layer['set']:<{width}}  {layer['kept']:>5}/{layer['full']:<5}  {where}{note}")
        lines.append(f"  cfg: {rep['cfg']}")
        if "macs_before" in rep:
            m0, m1, p0, p1 = rep["macs_before"], rep["macs_after"], rep["params_before"], rep["params_after"]
            lines.append(f"{label} | Params: {format_count(p1)} | MACs: {format_count(m1)}")
            lines.append(f"--------------{label} Prune Ratio--------------")
            lines.append(f"MACs Prune Ratio: {m0 - m1}/{m0} ({100.0 * (m0 - m1) / max(m0, 1):.2f}%)")
            lines.append(f"Params Prune Ratio: {p0 - p1}/{p0} ({100.0 * (p0 - p1) / max(p0, 1):.2f}%)")
    return "\n".join(lines)


def format_prune_summary(reports):
    """One line per generator of ``{net name: report}`` for the console (the full table of
    :func:`format_prune_table` goes to the run's log file): MACs and params before -> after with
    the ratios (when counted), the kept channels over all layers, and the removed blocks."""
    lines = []
    for name, rep in reports.items():
        kept = sum(layer["width"] for layer in rep["layers"])
        full = sum(layer["full"] for layer in rep["layers"])
        parts = [f"net{name}: {kept}/{full} channels kept"]
        if "macs_before" in rep:
            size = "x".join(str(s) for s in rep["input_shape"][2:])
            parts.append(f"MACs {format_count(rep['macs_before'])} -> {format_count(rep['macs_after'])} "
                         f"({rep['macs_ratio']:.2f}x at {size})")
            parts.append(f"params {format_count(rep['params_before'])} -> {format_count(rep['params_after'])} "
                         f"({rep['params_ratio']:.2f}x)")
        parts.append(f"removed: {', '.join(rep['removed'])}" if rep["removed"] else "no block removed")
        lines.append(", ".join(parts))
    return "\n".join(lines)
