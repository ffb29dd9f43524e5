"""Export a checkpoint's generator for deployment, as ONNX or TorchScript.

    python export.py --load_path CKPT --direction AtoB --format onnx|torchscript [--output PATH] [--size 256]

Any checkpoint ``test.py --load_path`` reads works (search, pruned, fine-tuned, plain, the original
code's): the generator of ``--direction`` is loaded with ``models.load_generator``; a settled mask
generator (bound 0) is pruned first. The file has a dynamic batch axis; inputs are
``[N, input_nc, H, W]`` in [-1, 1] with H, W multiples of the generator's size multiple (4 for a
ResNet, 2^levels for a U-Net): exactly ``--size`` px in ONNX unless ``--dynamic_size``, any such size
in TorchScript; ``--size`` defaults to the crop size the checkpoint was trained with (256 for the
original code's files). An ``--output`` that is the checkpoint, or any other checkpoint, is refused. After writing, the file is run once against PyTorch and the largest difference logged.
"""
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
from util.errors import quiet_start  # noqa: E402

quiet_start()  # before torch loads: a Ctrl-C meanwhile ends without a traceback

import logging

from models import DIRECTIONS
from util.checkpoint import is_checkpoint_file, read_checkpoint
from util.errors import ArgumentParser, UserError, cli_entry
from util.export import (FORMATS, OPSET, OPSETS, check_size, deployable, export_onnx, export_torchscript,
                         max_difference, min_size)
from util.files import check_writable_file
from util.logger import setup_logging

log = logging.getLogger("dmad")

# exported and PyTorch outputs agree to float rounding; more means a broken export
TOLERANCE = 1e-4
# --size of a file that does not record its crop size (the original code's)
DEFAULT_SIZE = 256


def build_parser():
    parser = ArgumentParser(prog="export.py", description=__doc__.splitlines()[0])
    parser.add_argument("--load_path", required=True, help="checkpoint holding the generator")
    parser.add_argument("--direction", default=None, choices=DIRECTIONS,
                        help="which generator of a CycleGAN checkpoint; pix2pix has one, which maps the "
                             "direction it was trained with. default: AtoB, or pix2pix's trained one")
    parser.add_argument("--format", default="onnx", choices=tuple(FORMATS), help="default: onnx")
    parser.add_argument("--output", default=None,
                        help="file to write. default: next to the checkpoint, <name>_<direction>.onnx / .torchscript.pt")
    parser.add_argument("--size", type=int, default=None,
                        help="image side the graph is traced at (ONNX input size unless --dynamic_size). default: "
                             f"the crop size the checkpoint was trained with, else {DEFAULT_SIZE}")
    parser.add_argument("--dynamic_size", action="store_true",
                        help="ONNX: H and W dynamic too (multiples of the size multiple); slower in onnxruntime")
    parser.add_argument("--opset", type=int, default=OPSET,
                        help=f"ONNX opset, {OPSETS.start} to {OPSETS.stop - 1}. default: {OPSET}")
    parser.add_argument("--no_check", action="store_true", help="skip running the exported file against PyTorch")
    return parser


def default_output(load_path, direction, fmt):
    stem = os.path.splitext(os.path.abspath(os.path.expanduser(load_path)))[0]
    return f"{stem}_{direction}{FORMATS[fmt]}"


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


@cli_entry
def main(argv=None):
    opt = build_parser().parse_args(argv)
    setup_logging()
    if opt.format == "onnx" and opt.opset not in OPSETS:
        raise UserError(f"--opset {opt.opset} is not supported: give {OPSETS.start} to {OPSETS.stop - 1} "
                        f"(default {OPSET})")
    record = read_checkpoint(opt.load_path)
    opt.direction = record.fit_direction(opt.direction or "AtoB", opt.direction is not None)
    output = opt.output or default_output(opt.load_path, opt.direction, opt.format)
    check_output(output, opt.format, opt.load_path)
    if opt.size is None:
        opt.size = default_size(record)
    generator = record.generator(opt.direction).cpu()
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


if __name__ == "__main__":
    main()
