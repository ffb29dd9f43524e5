"""Export a checkpoint's generator for deployment, as ONNX or TorchScript.

    python export.py --load_path CKPT --direction AtoB --format onnx|torchscript [--output PATH] [--size 256]

Any checkpoint ``test.py --load_path`` reads works (search, pruned, fine-tuned, plain, the original
code's, pytorch-CycleGAN-and-pix2pix's run folders and model-zoo files): the generator of ``--direction`` is loaded with ``models.load_generator``; a settled mask
generator (bound 0) is pruned first. The file has a dynamic batch axis; inputs are
``[N, input_nc, H, W]`` in [-1, 1] with H, W multiples of the generator's size multiple (4 for a
ResNet, 2^levels for a U-Net): exactly ``--size`` px in ONNX unless ``--dynamic_size``, any such size
in TorchScript; ``--size`` defaults to the crop size the checkpoint was trained with (256 for the
original code's files). An ``--output`` that is the checkpoint, or any other checkpoint, is refused. After writing, the file is run once against PyTorch and the largest difference logged.
"""
from util.cli import before_imports

before_imports()  # before torch loads: OpenMP's idle policy, a quiet Ctrl-C

from models import DIRECTIONS  # noqa: E402
from util.frozen import Options  # noqa: E402
from pipeline.export import DEFAULT_SIZE, FORMATS, OPSET, OPSETS, run  # noqa: E402
from util.cli import cli_entry  # noqa: E402
from util.errors import ArgumentParser  # noqa: E402


def build_parser():
    parser = ArgumentParser(prog="export.py", description=__doc__.splitlines()[0])
    parser.add_argument("--load_path", required=True, help="checkpoint holding the generator")
    parser.add_argument("--direction", default=None, choices=DIRECTIONS,
                        help="the translation to export (AtoB: A images to B): a CycleGAN has a generator for "
                             "each; pix2pix has one, which maps the direction it was trained with. default: the "
                             "direction the checkpoint was trained with (AtoB when it does not say)")
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


@cli_entry
def main(argv=None):
    return run(build_parser().parse_args(argv, namespace=Options()).freeze())


if __name__ == "__main__":
    main()
