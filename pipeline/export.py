"""Deployment export of a generator: ONNX (for onnxruntime and other runtimes) or TorchScript.

The exported graph is the slim plain generator: a mask generator whose masks have settled (bound 0,
the end of a search) is pruned first (exact at bound 0, method.md §6.5); one whose bound is still
> 0 is refused, since its soft masks are part of its function and pruning would change it.

Input size rule: ``[N, input_nc, H, W]`` in [-1, 1] with H and W multiples of the generator's size
multiple and at least its smallest side (:func:`size_multiple`, :func:`min_size`: 4 and 8 for a
ResNet, 2^levels for a U-Net). The batch axis N is dynamic
in both formats; H and W are fixed to the traced ``size`` in ONNX unless ``dynamic_size`` (a fixed
size lets onnxruntime plan its memory and layouts once), and follow the input in TorchScript.
"""
import copy
import json
import logging
import os
import warnings

import torch
from torch import nn

from models import generator_name
from models.layers import masks
from compress.pruning import prune_generator
from util.frozen import replace
from pipeline.checkpoint import is_checkpoint_file, read_checkpoint
from util.errors import UserError
from util.files import atomic_path, check_writable_file
from util.logger import setup_logging

log = logging.getLogger("dmad")

# exported and PyTorch outputs agree to float rounding; more means a broken export
TOLERANCE = 1e-4
# --size of a file that does not record its crop size (the original code's)
DEFAULT_SIZE = 256



FORMATS = {"onnx": ".onnx", "torchscript": ".torchscript.pt"}
OPSET = 17
OPSETS = range(11, 21)  # the generators' reflection padding needs 11; torch's TorchScript-based exporter stops at 20


def size_multiple(net):
    """The multiple that H and W must be, as the generator's family states it (the family contract,
    models/families)."""
    return int(type(net).size_multiple(net.config()))


def min_size(net):
    """The smallest H and W the generator accepts, as its family states it."""
    return int(type(net).min_size(net.config()))


def deployable(net):
    """``net`` as a plain generator in eval mode: pruned when it carries settled masks (bound 0).

    Raises UserError for a mask generator whose bound is still > 0."""
    found = masks(net)
    if found:
        bounds = sorted({float(m.bound) for m in found.values()})
        if bounds[-1] > 0:
            raise UserError(f"the generator's masks have not settled (bound {bounds[-1]:g} > 0): export the "
                            "checkpoint of a finished search (bound 0), or a pruned / fine-tuned one")
        net, report = prune_generator(net)
        log.info("pruned the settled mask generator for export (removed units: %s)", report["removed"] or "none")
    return net.eval()


def _device(net):
    param = next(net.parameters(), None)
    return param.device if param is not None else torch.device("cpu")


def check_size(net, size):
    multiple, smallest = size_multiple(net), min_size(net)
    if size < smallest or size % multiple:
        fit = max(smallest, size // multiple * multiple)
        raise UserError(f"--size {size} does not fit this generator (a multiple of {multiple}, at least {smallest}): "
                        f"use e.g. {fit}")
    return multiple


def metadata(net, size, dynamic_size):
    """What a deployment needs to know besides the graph (stored in the exported file)."""
    multiple = size_multiple(net)
    return {"family": getattr(net, "family", type(net).__name__), "input_nc": net.structure().input_nc,
            "output_nc": net.structure().output_nc, "size_multiple": multiple, "min_size": min_size(net),
            "input_size": f"any multiple of {multiple} from {min_size(net)}" if dynamic_size else f"{size}x{size}",
            "input_range": "[-1, 1]", "output_range": "[-1, 1] (tanh)", "layout": "NCHW"}


NARROW_OUTPUT = 4  # convolutions with at most this many output channels are split for onnxruntime


class RowColumnConv2d(nn.Module):
    """A stride-1 ``k_h x k_w`` convolution with few output channels (the RGB output layer), computed as
    a ``1 x k_w`` convolution to ``out_channels * k_h`` channels followed by a ``k_h x 1`` grouped
    convolution whose fixed one-hot kernels add the ``k_h`` rows of each output channel.

    Same function (to float rounding, ~1e-6), ``(H + k_h - 1) / H`` times the multiply-adds (H the
    output height: 2% more at 256 px for the 7x7 head) plus ``out_channels * k_h`` per output pixel.
    onnxruntime runs a convolution with 3 output channels at a fraction of the rate of wider ones;
    split, the head runs about 2x faster there (``benchmarks/bench_narrow_conv.py``, README "Export
    for deployment"). Input and output as ``conv``'s."""

    def __init__(self, conv):
        super().__init__()
        out_channels, in_channels, kh, kw = conv.weight.shape
        self.row = nn.Conv2d(in_channels, out_channels * kh, (1, kw), padding=conv.padding, bias=False)
        self.column = nn.Conv2d(out_channels * kh, out_channels, (kh, 1), groups=out_channels,
                                bias=conv.bias is not None)
        with torch.no_grad():
            # row channel o * kh + r holds row r of output channel o's kernel
            self.row.weight.copy_(conv.weight.permute(0, 2, 1, 3).reshape(out_channels * kh, in_channels, 1, kw))
            self.column.weight.copy_(torch.eye(kh).reshape(1, kh, kh, 1).expand(out_channels, kh, kh, 1))
            if conv.bias is not None:
                self.column.bias.copy_(conv.bias)
        self.to(conv.weight.device)

    def forward(self, x):
        return self.column(self.row(x))


def _splittable(conv):
    return (type(conv) is nn.Conv2d and conv.out_channels <= NARROW_OUTPUT and conv.kernel_size[0] > 1
            and conv.stride == (1, 1) and conv.dilation == (1, 1) and conv.groups == 1
            and conv.padding_mode == "zeros" and not isinstance(conv.padding, str))


def split_narrow_convs(net):
    """A copy of ``net`` whose stride-1 convolutions with at most :data:`NARROW_OUTPUT` output channels
    are :class:`RowColumnConv2d` (the form the ONNX export writes). ``net`` is not changed."""
    net = copy.deepcopy(net)
    for parent in list(net.modules()):
        for name, child in list(parent.named_children()):
            if _splittable(child):
                setattr(parent, name, RowColumnConv2d(child))
    return net


class _SizeRule(nn.Module):
    """Passes ``x`` through a reshape to ``[N, C, H / m, m, W / m, m]`` and back, which onnxruntime
    refuses (naming this module, see :func:`_size_guarded`) when H or W is not a multiple of ``m``;
    a dynamic-size ONNX graph has no other way to refuse an input, and a ResNet given 30x30 returns
    32x32. Two reshapes, no arithmetic."""

    def __init__(self, multiple):
        super().__init__()
        self.multiple = multiple

    def forward(self, x):
        n, c, h, w = x.shape
        m = self.multiple
        return x.reshape(n, c, h // m, m, w // m, m).reshape(n, c, h, w)


def _size_guarded(net, multiple):
    """``net`` behind a :class:`_SizeRule` whose module name states the rule, so that onnxruntime's
    error (which names the failing node) says what is wrong with the input."""
    guarded = nn.Sequential()
    guarded.add_module(f"input_H_and_W_must_be_multiples_of_{multiple}", _SizeRule(multiple))
    guarded.add_module("generator", net)
    return guarded


def export_onnx(net, path, size=256, dynamic_size=False, opset=OPSET):
    """Write ``net`` (plain, eval mode, on the CPU) to ``path`` as ONNX with input ``input`` and
    output ``output``, batch axis dynamic. Uses torch's TorchScript-based exporter (the dynamo one
    needs onnxscript). Convolutions with few output channels are written split
    (:func:`split_narrow_convs`). With ``dynamic_size``, an input whose H or W is not a multiple of
    the size multiple makes onnxruntime fail at a node named ``input_H_and_W_must_be_multiples_of_<m>``
    (:func:`_size_guarded`) instead of returning an output of another size. Returns the metadata
    stored in the model's ``metadata_props``."""
    import onnx

    check_size(net, size)
    channels = net.structure().input_nc
    example = torch.zeros(1, channels, size, size, device=_device(net))
    axes = {0: "batch", 2: "height", 3: "width"} if dynamic_size else {0: "batch"}
    meta = metadata(net, size, dynamic_size)
    graph = split_narrow_convs(net)
    if dynamic_size:
        graph = _size_guarded(graph, size_multiple(net))
    with atomic_path(path) as tmp, warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the exporter's deprecation and constant-folding notes
        torch.onnx.export(graph, (example,), tmp, dynamo=False, opset_version=opset, input_names=["input"],
                          output_names=["output"], dynamic_axes={"input": axes, "output": axes},
                          do_constant_folding=True)
        model = onnx.load(tmp)
        for key, value in meta.items():
            model.metadata_props.add(key=key, value=str(value))
        onnx.checker.check_model(model)
        onnx.save(model, tmp)
    return meta


class SizeChecked(torch.nn.Module):
    """A generator that refuses inputs outside its size rule with a ValueError that states the rule
    (``torch.jit.Error`` once scripted),
    instead of returning an output of another size or failing inside a convolution (traced
    TorchScript keeps no such check of its own). Input ``[N, channels, H, W]``."""

    def __init__(self, net, channels: int, multiple: int, smallest: int):
        super().__init__()
        self.net = net
        self.channels = channels
        self.multiple = multiple
        self.smallest = smallest

    def forward(self, x):
        if x.dim() != 4 or x.size(1) != self.channels:
            raise ValueError("expected an input [N, " + str(self.channels) + ", H, W], got "
                             + str(list(x.shape)))
        h, w = x.size(2), x.size(3)
        if h % self.multiple != 0 or w % self.multiple != 0 or min(h, w) < self.smallest:
            raise ValueError("input " + str(h) + "x" + str(w) + " does not fit this generator: H and W must be "
                             "multiples of " + str(self.multiple) + ", at least " + str(self.smallest))
        return self.net(x)


def export_torchscript(net, path, size=256):
    """Write ``net`` to ``path`` as TorchScript (``torch.jit.load``): the traced generator inside a
    scripted :class:`SizeChecked`, so any batch size and any H, W that are multiples of
    :func:`size_multiple` (at least :func:`min_size`) run, and other sizes raise an error that states
    the rule (``torch.jit.Error``, whose message names the ValueError). The metadata is the extra file ``metadata.json``."""
    check_size(net, size)
    channels = net.structure().input_nc
    example = torch.zeros(1, channels, size, size, device=_device(net))
    meta = metadata(net, size, dynamic_size=True)
    with atomic_path(path) as tmp, warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        frozen = copy.deepcopy(net).requires_grad_(False)  # outputs that need no .detach() before .numpy()
        traced = torch.jit.trace(frozen, (example,), check_trace=False)
        module = torch.jit.script(SizeChecked(traced, channels, size_multiple(net), min_size(net)))
        torch.jit.save(module, tmp, _extra_files={"metadata.json": json.dumps(meta)})
    return meta


def onnx_session(path, threads=None, optimize=True):
    """An onnxruntime CPU session for an exported file; ``threads`` intra-op threads (None: its
    default), full graph optimisation unless ``optimize`` is False."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads is not None:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    options.graph_optimization_level = (ort.GraphOptimizationLevel.ORT_ENABLE_ALL if optimize
                                        else ort.GraphOptimizationLevel.ORT_DISABLE_ALL)
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


@torch.no_grad()
def max_difference(net, path, fmt, batch=2, size=256, seed=0):
    """Largest absolute difference between ``net`` and the exported file on a random batch of
    ``batch`` images at ``size`` px (onnxruntime for ONNX, ``torch.jit.load`` for TorchScript)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(batch, net.structure().input_nc, size, size, generator=g) * 2 - 1
    expected = net(x.to(_device(net))).cpu()
    if fmt == "onnx":
        got = torch.from_numpy(onnx_session(path).run(None, {"input": x.numpy()})[0])
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch.jit's deprecation note
            got = torch.jit.load(path, map_location="cpu")(x)
    return float((got - expected).abs().max())


def default_output(load_path, direction, fmt):
    """``<checkpoint without .pth>_<direction><ext>`` beside the checkpoint; for a folder (a
    pytorch-CycleGAN-and-pix2pix run folder) ``<folder>/<folder name>_<direction><ext>`` inside it."""
    path = os.path.abspath(os.path.expanduser(load_path))
    if os.path.isdir(path):
        return os.path.join(path, f"{os.path.basename(path)}_{direction}{FORMATS[fmt]}")
    return f"{os.path.splitext(path)[0]}_{direction}{FORMATS[fmt]}"


def check_output(output, fmt, load_path):
    """UserError for an output that is a folder, lies where nothing can be written, or is a checkpoint
    (``load_path`` or another: a file of an earlier export is overwritten, a checkpoint never); a
    warning for a name whose extension is another format's or a checkpoint's."""
    check_writable_file(output, "--output")
    if os.path.exists(output):
        if os.path.samefile(output, os.path.expanduser(load_path)):
            raise UserError(f"--output {output} is the checkpoint --load_path: give another --output")
        if is_checkpoint_file(output):
            raise UserError(f"--output {output} is a checkpoint, which export.py does not overwrite: give "
                            "another --output")
    others = [f for f, ext in FORMATS.items() if f != fmt and output.endswith(ext)]
    if others:
        log.warning("--output %s has the extension of the %s format, but --format is %s", output, others[0], fmt)
    elif output.endswith(".pth"):
        log.warning("--output %s has the extension of a checkpoint, but holds a %s file", output, fmt)


def default_size(record):
    """The crop size ``record`` (a Checkpoint) was trained with, else :data:`DEFAULT_SIZE`."""
    size = record.options.get("crop_size")
    if type(size) is int and size > 0:
        log.info("--size %d: the crop size %s was trained with", size, record.path)
        return size
    return DEFAULT_SIZE


def run(opt):
    """export.py after parsing (``opt``: its options): write the generator of ``--direction`` as
    ``--format`` and, unless ``--no_check``, log its largest difference to PyTorch. Returns the path
    written. UserError for a bad checkpoint, output, size or opset."""
    setup_logging()
    if opt.format == "onnx" and opt.opset not in OPSETS:
        raise UserError(f"--opset {opt.opset} is not supported: give {OPSETS.start} to {OPSETS.stop - 1} "
                        f"(default {OPSET})")
    # only the generators: a pytorch-CycleGAN-and-pix2pix run with discriminators this project cannot build exports
    record = read_checkpoint(opt.load_path, "--load_path", generators_only=True)
    # --direction names the translation in the data's terms; default: the one the checkpoint was trained with.
    # The values the checkpoint fixes go into a copy of the options (options/frozen.py), resolved once
    opt = replace(opt, direction=record.fit_direction(opt.direction or "AtoB", opt.direction is not None))
    net_direction = record.table_direction(opt.direction)
    if net_direction != opt.direction:  # a two-generator model trained --direction BtoA swapped its sides
        log.info("exporting %s of %s, which maps %s to %s (--direction %s): the checkpoint was trained with "
                 "--direction %s", generator_name(record.model, net_direction), record.path, opt.direction[0],
                 opt.direction[-1], opt.direction, record.trained_direction)
    output = opt.output or default_output(opt.load_path, opt.direction, opt.format)
    check_output(output, opt.format, opt.load_path)
    if opt.size is None:
        opt = replace(opt, size=default_size(record))
    generator = record.generator(net_direction).cpu()
    multiple = check_size(generator, opt.size)  # before pruning: a wrong size is the only line
    net = deployable(generator)
    if opt.format == "onnx":
        export_onnx(net, output, opt.size, opt.dynamic_size, opt.opset)
        rule = f"any multiple of {multiple} from {min_size(net)}" if opt.dynamic_size else f"{opt.size}x{opt.size}"
    else:
        export_torchscript(net, output, opt.size)
        rule = f"any multiple of {multiple} from {min_size(net)}"
    log.info("wrote %s (%s, batch dynamic, H and W %s, input in [-1, 1])", output, opt.format, rule)
    if not opt.no_check:
        diff = max_difference(net, output, opt.format, size=opt.size)
        level = logging.INFO if diff <= TOLERANCE else logging.WARNING
        log.log(level, "largest difference to PyTorch on a random batch of 2: %.2e%s", diff,
                "" if diff <= TOLERANCE else f" (more than {TOLERANCE:g}: a runtime that computes otherwise, or "
                "channels that are nearly constant, whose rounding instance normalisation magnifies; compare "
                "outputs on real images)")
    return output


