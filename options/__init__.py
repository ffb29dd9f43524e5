"""Command-line options shared by train.py, test.py and prune.py.

Each script builds its parser from the same shared groups (as the original's single parser did) plus
its own group, and :func:`parse` validates the result up front. Every problem is a
:class:`util.errors.UserError` with a one-line message; the entry points turn it into exit status 2.

Boolean options are real flags: ``--mask`` alone means true, and ``--continue_train True`` /
``--continue_train false`` work as written in the seed README (the original's ``type=bool`` parsed
``False`` as true).
"""
import argparse
import logging
import math
import os
import sys

from data import DATASETS
from data.transforms import MODES as PREPROCESS, check_crop
from metrics.evaluate import METRICS
from models import DIRECTIONS, MODELS as _MODEL_CLASSES
from models import families
from models.base_model import LR_POLICIES
from models.losses import GAN_MODES
from models.mask_losses import LOSS_TYPES as MASK_LOSS_TYPES
from models.mask_search import BOUND_RULES
from util.errors import ArgumentParser, UserError

log = logging.getLogger("dmad")

# the enumerations of the options come from the modules that own them
MODELS = tuple(_MODEL_CLASSES)
DATASET_MODES = tuple(DATASETS)
NETG = families.NETG_CHOICES

_TRUE = {"1", "true", "t", "yes", "y", "on"}
_FALSE = {"0", "false", "f", "no", "n", "off"}


def str2bool(value):
    """Parse a boolean option value: true/false, 1/0, yes/no, on/off (any case)."""
    if isinstance(value, bool):
        return value
    low = str(value).strip().lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise argparse.ArgumentTypeError(f"expected a boolean (true/false), got {value!r}")


def _flag(group, name, help_text, default=False, aliases=()):
    group.add_argument(name, *aliases, type=str2bool, nargs="?", const=True, default=default,
                       metavar="BOOL", help=f"{help_text} (bare flag = true). default: {default}")


def _infinity(value):
    low = str(value).strip().lower()
    if low in ("inf", "infinity"):
        return math.inf
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer or 'inf', got {value!r}") from None
    return number


def _base_group(parser):
    g = parser.add_argument_group("experiment")
    g.add_argument("--dataroot", type=str, default=None,
                   help="path to images (should have subfolders trainA, trainB, testA, testB, or train, val)")
    g.add_argument("--name", type=str, default="default",
                   help="name of the experiment. It decides where to store samples and models. default: default")
    g.add_argument("--gpu_ids", type=str, default=None,
                   help="gpu ids: e.g. 0  0,1,2  0,2; use -1 for CPU. default: GPU 0 when CUDA is available, else CPU")
    g.add_argument("--checkpoints_dir", type=str, default="./experiments", help="models are saved here. default: ./experiments")
    g.add_argument("--phase", type=str, default="train", help="train, val, test, etc. default: train")
    g.add_argument("--load_path", type=str, default=None, help="The path of load model. default: None")
    _flag(g, "--use_pretrain_d", "initialise the fine-tuned student discriminator(s) from the teacher's "
          "instead of the search checkpoint's")
    g.add_argument("--pretrain_path", type=str, default=None,
                   help="The path of pretrain (teacher) model for distillation. default: None")
    g.add_argument("--pretrain_ngf", type=int, default=None,
                   help="teacher generator width; read from the teacher checkpoint, and must agree when given")
    g.add_argument("--seed", type=int, default=0, help="random seed for weights, data order and augmentation. default: 0")

    g = parser.add_argument_group("model")
    g.add_argument("--model", type=str, default="cyclegan", choices=MODELS,
                   help=f"chooses which model to use. [{' | '.join(MODELS)}]. default: cyclegan")
    g.add_argument("--input_nc", type=int, default=3,
                   help="# of input image channels: 3 for RGB and 1 for grayscale. default: 3")
    g.add_argument("--output_nc", type=int, default=3,
                   help="# of output image channels: 3 for RGB and 1 for grayscale. default: 3")
    g.add_argument("--ngf", type=int, default=64, help="# of gen filters in the last conv layer. default: 64")
    g.add_argument("--ndf", type=int, default=64, help="# of discrim filters in the first conv layer. default: 64")
    g.add_argument("--netG", type=str, default=None, choices=NETG,
                   help="generator architecture. default: resnet_9blocks for cyclegan; for pix2pix a U-Net "
                        "whose depth follows --crop_size (unet_256 at 256 px)")
    _flag(g, "--no_dropout", "no dropout for the generator")
    _flag(g, "--mask", "use the mask (search) generator")

    g = parser.add_argument_group("mask search")
    g.add_argument("--mask_weight_decay", type=float, default=0.0, help="weight decay for mask_weight. default: 0.0")
    g.add_argument("--mask_loss_type", type=str, default="relu", choices=MASK_LOSS_TYPES,
                   help="The type of mask loss decay [relu | bound | uprelu | exp]. default: relu")
    _flag(g, "--unmask_last_upconv", "Unmask last upconv or not")
    g.add_argument("--update_bound_rule", type=str, default="cube", choices=BOUND_RULES,
                   help="The rule of update bound in mask layer [cube | double | linear]. default: cube")
    g.add_argument("--block_coeff", type=float, default=1.0,
                   help="multiplier of the residual-group block loss. default: 1.0")
    g.add_argument("--upconv_coeff", type=float, default=1.0,
                   help="multiplier of the outer (up-conv) mask losses. default: 1.0")
    _flag(g, "--upconv_solo", "Only last upconv using update bound")
    _flag(g, "--upconv_bound", "bound loss for upconv's mask weight")
    _flag(g, "--upconv_relu", "contrary relu loss (uprelu) for upconv's mask weight")
    g.add_argument("--lambda_update_coeff", type=float, default=0.0,
                   help="weight for update block's sparsity coeff after every epoch training; >0 enables "
                        "the block loss. default: 0.0")
    g.add_argument("--lambda_group_lasso", type=float, default=0.0,
                   help="weight for group lasso to sparsity resblock. default: 0.00")
    g.add_argument("--threshold", type=int, default=0,
                   help="a residual channel is kept when more than this many residual-group masks keep it "
                        "(the group vote). default: 0")
    g.add_argument("--frozen_threshold", type=float, default=0.85,
                   help="U-Net: freeze a mask layer when its off-fraction exceeds this. default: 0.85")
    g.add_argument("--AtoB_macs_threshold", type=float, default=0.0,
                   help="early stop the A->B (or only) generator's search when its MACs (in G = 1e9) fall "
                        "under this; 0 = off. default: 0")
    g.add_argument("--BtoA_macs_threshold", type=float, default=0.0,
                   help="same for the B->A generator (cyclegan). default: 0")

    g = parser.add_argument_group("data")
    g.add_argument("--dataset_mode", type=str, default=None, choices=DATASET_MODES,
                   help="chooses how datasets are loaded. [unaligned | aligned | single]. "
                        "default: unaligned for cyclegan, aligned for pix2pix")
    g.add_argument("--direction", type=str, default="AtoB", choices=DIRECTIONS, help="AtoB or BtoA. default: AtoB")
    _flag(g, "--serial_batches", "if true, takes images in order to make batches, otherwise takes them randomly")
    g.add_argument("--num_threads", type=int, default=8, help="# threads for loading data. default: 8")
    g.add_argument("--batch_size", type=int, default=1, help="input batch size. default: 1")
    g.add_argument("--load_size", type=int, default=286, help="scale images to this size. default: 286")
    g.add_argument("--crop_size", type=int, default=256, help="then crop to this size. default: 256")
    g.add_argument("--max_dataset_size", type=_infinity, default=math.inf,
                   help="Maximum number of samples allowed per dataset. default: inf")
    g.add_argument("--preprocess", type=str, default="resize_and_crop", choices=PREPROCESS,
                   help="scaling and cropping of images at load time. default: resize_and_crop")
    _flag(g, "--no_flip", "if specified, do not flip the images for data augmentation")

    g = parser.add_argument_group("display")
    g.add_argument("--display_winsize", type=int, default=256, help="display window size for both visdom and HTML")
    g.add_argument("--display_freq", type=int, default=400, help="frequency (images) of showing training results on screen")
    g.add_argument("--display_ncols", type=int, default=4,
                   help="if positive, display all images in a single visdom web panel with certain number of images per row")
    g.add_argument("--display_id", type=int, default=1, help="window id of the web display; <= 0 disables visdom. default: 1")
    g.add_argument("--display_server", type=str, default="http://localhost", help="visdom server of the web display")
    g.add_argument("--display_env", type=str, default="main", help='visdom display environment name (default is "main")')
    g.add_argument("--display_port", type=int, default=8097, help="visdom port of the web display")
    g.add_argument("--update_html_freq", type=int, default=1000, help="frequency (images) of saving training results to html")
    g.add_argument("--print_freq", type=int, default=100, help="frequency (images) of showing training results on console")
    _flag(g, "--no_html", "do not save intermediate training results to [checkpoints_dir]/[name]/web/")

    g = parser.add_argument_group("training")
    g.add_argument("--save_epoch_freq", type=int, default=1,
                   help="frequency of saving checkpoints at the end of epochs. default: 1")
    _flag(g, "--continue_train", "continue training: load --load_path, or the latest checkpoint of the run")
    _flag(g, "--overwrite", "start afresh on a run folder that holds checkpoints of an earlier run, deleting them "
          "(without it such a start is refused)")
    g.add_argument("--epoch_count", type=int, default=None,
                   help="the starting epoch count; on resume it overrides the stored epoch. default: 1")
    g.add_argument("--n_epochs", type=int, default=100, help="number of epochs with the initial learning rate. default: 100")
    g.add_argument("--n_epochs_decay", type=int, default=100,
                   help="number of epochs to linearly decay learning rate to zero. default: 100")
    g.add_argument("--lr", type=float, default=0.0002, help="initial learning rate for adam. default: 0.0002")
    g.add_argument("--beta1", type=float, default=0.5, help="momentum term of adam. default: 0.5")
    g.add_argument("--gan_mode", type=str, default="lsgan", choices=GAN_MODES,
                   help="the type of GAN objective. [vanilla | lsgan | hinge | wgangp]. default: lsgan")
    g.add_argument("--pool_size", type=int, default=100,
                   help="the size of image buffer that stores previously generated images. default: 100")
    g.add_argument("--lr_policy", type=str, default="linear", choices=LR_POLICIES,
                   help="learning rate policy. [linear | step | plateau | cosine]. default: linear")
    g.add_argument("--lr_decay_iters", type=int, default=50, help="multiply by a gamma every lr_decay_iters epochs")
    g.add_argument("--lambda_A", type=float, default=10.0, help="weight for cycle loss (A -> B -> A). default: 10.0")
    g.add_argument("--lambda_B", type=float, default=10.0, help="weight for cycle loss (B -> A -> B). default: 10.0")
    g.add_argument("--lambda_identity", type=float, default=0.5,
                   help="use identity mapping, weight relative to the cycle loss. default: 0.5")
    g.add_argument("--lambda_L1", type=float, default=100.0, help="weight for L1 loss. default: 100.0")
    _flag(g, "--amp", "mixed precision: forward passes and losses under torch.autocast (masks, mask losses, "
          "bound updates and folding stay fp32)")
    g.add_argument("--amp_dtype", type=str, default="auto", choices=("auto", "bf16", "fp16"),
                   help="autocast dtype of --amp; fp16 adds a gradient scaler. auto: bf16 where supported "
                        "(CPUs, Ampere and later GPUs), else fp16. default: auto")
    _flag(g, "--channels_last", "store networks and images in the channels-last (NHWC) memory format")

    g = parser.add_argument_group("distillation")
    g.add_argument("--lambda_attention_distill", "--lambda_distill", dest="lambda_attention_distill",
                   type=float, default=0.0, help="weight for co-attention distillation. default: 0")
    g.add_argument("--lambda_discriminator_distill", "--lambda_d", dest="lambda_discriminator_distill",
                   type=float, default=0.0, help="weight for distill discriminator's feature map. default: 0.0")
    _flag(g, "--attention_normal", "normalize the attention maps", default=True)

    g = parser.add_argument_group("evaluation")
    g.add_argument("--ntest", type=_infinity, default=math.inf, help="# of test examples. default: inf")
    g.add_argument("--aspect_ratio", type=float, default=1.0, help="aspect ratio of result images")
    g.add_argument("--results_dir", type=str, default="./results", help="test.py writes results here. default: ./results")
    g.add_argument("--metric", type=str, default="auto", choices=METRICS,
                   help="evaluation metric: fid, miou (Cityscapes), none, or auto (miou when the dataroot "
                        "contains 'cityscapes', else fid). default: auto")
    g.add_argument("--inception_path", type=str, default=None,
                   help="FID Inception weights (pt_inception-2015-12-05-6726825d.pth). default: the torch hub "
                        "checkpoint folder pytorch-fid uses")
    g.add_argument("--drn_path", type=str, default="~/pretrain/drn-d-105_ms_cityscapes.pth",
                   help="the path of drn model for mIoU computation. default: ~/pretrain/drn-d-105_ms_cityscapes.pth")
    g.add_argument("--eval_freq", type=int, default=None,
                   help="evaluate every this many epochs during training. default: --save_epoch_freq")
    _flag(g, "--no_eval", "switch evaluation during training off")
    g.add_argument("--eval_batch_size", type=int, default=16, help="batch size of evaluation. default: 16")
    _flag(g, "--clean_checkpoints", "delete the per-epoch checkpoints at the end of a run (the original always did); a "
          "fine-tune keeps checkpoints/model_0.pth, the pruned model")

    g = parser.add_argument_group("pruning and fine-tuning")
    _flag(g, "--finetune", "Finetune after prune")
    _flag(g, "--scratch", "Finetune from scratch")


def build_parser(script):
    """The parser for ``script`` in {'train', 'test', 'prune'}: the shared set, as the original had."""
    prog = {"train": "train.py", "test": "test.py", "prune": "prune.py"}[script]
    parser = ArgumentParser(prog=prog, allow_abbrev=False,
                     description=f"{prog}: DMAD (differentiable masks and co-attention distillation) for "
                                 "CycleGAN and pix2pix")
    _base_group(parser)
    return parser


def parse(script, argv=None):
    """Parse and validate the options of ``script``; raises UserError on any problem."""
    parser = build_parser(script)
    opt = parser.parse_args(sys.argv[1:] if argv is None else argv)
    opt.script = script
    opt.isTrain = script in ("train", "prune")
    opt.user_set = _explicit_options(parser, sys.argv[1:] if argv is None else argv)
    opt.argv = list(sys.argv[1:] if argv is None else argv)  # for the resume command after an interruption
    validate(opt)
    return opt


def _explicit_options(parser, argv):
    """Names (dest) of the options the user gave on the command line."""
    by_string = {}
    for action in parser._actions:
        for s in action.option_strings:
            by_string[s] = action.dest
    given = set()
    for token in argv:
        if token.startswith("--"):
            key = token.split("=", 1)[0]
            if key in by_string:
                given.add(by_string[key])
    return sorted(given)


def validate(opt):
    """Fill model-dependent defaults and reject invalid or contradictory values (UserError)."""
    if opt.dataroot is None:
        raise UserError("--dataroot is required: give the folder of the dataset (e.g. --dataroot datasets/toy/unaligned)")
    opt.dataroot = os.path.expanduser(opt.dataroot)
    _check_name(opt.name)
    if opt.dataset_mode is None:
        opt.dataset_mode = _MODEL_CLASSES[opt.model].dataset_mode
    family = _MODEL_CLASSES[opt.model].generator_family
    if opt.netG is None:
        opt.netG = family.default_netG(opt.crop_size)
    if families.for_netG(opt.netG) is not family:
        raise UserError(f"--netG {opt.netG} is not a generator of --model {opt.model}, which uses "
                        f"{' or '.join(family.netG_choices)}")
    # image sides the generator accepts (a ResNet halves twice, a U-Net once per level)
    opt.size_multiple = family.size_multiple(family.netG_args(opt.netG))
    if opt.crop_size % opt.size_multiple:
        raise UserError(f"--crop_size {opt.crop_size} must be a multiple of {opt.size_multiple} for {opt.netG} "
                        f"(e.g. {max(opt.size_multiple, opt.crop_size // opt.size_multiple * opt.size_multiple)})")
    # the smallest image side (px) the networks accept (the family says it for the generator); training
    # also runs the PatchGAN discriminator, which needs 24 px with its 3 layers
    from models.discriminator import min_input_size

    opt.min_size_G = family.min_size(family.netG_args(opt.netG))
    opt.min_size = max(opt.min_size_G, min_input_size(3)) if opt.isTrain else opt.min_size_G
    if opt.preprocess != "none" and opt.crop_size < opt.min_size:
        part = "the 3-layer PatchGAN discriminator" if opt.min_size > opt.min_size_G else f"the {opt.netG} generator"
        raise UserError(f"--crop_size {opt.crop_size} is too small: {part} needs images of at least {opt.min_size} "
                        f"px a side; use --crop_size {-(-opt.min_size // opt.size_multiple) * opt.size_multiple} "
                        "or more")
    if opt.dataset_mode == "single" and opt.script != "test":
        raise UserError("--dataset_mode single has no targets to train on; use it with test.py")

    _check_floats(opt)
    positive = ("batch_size", "load_size", "crop_size", "ngf", "ndf", "input_nc", "output_nc", "print_freq",
                "display_freq", "update_html_freq", "save_epoch_freq", "lr_decay_iters", "eval_batch_size",
                "display_winsize")
    for name in positive:
        if getattr(opt, name) <= 0:
            raise UserError(f"--{name} must be positive, got {getattr(opt, name)}")
    for name in ("num_threads", "n_epochs", "n_epochs_decay", "pool_size", "threshold", "mask_weight_decay",
                 "lambda_A", "lambda_B", "lambda_identity", "lambda_L1", "lambda_update_coeff",
                 "lambda_group_lasso", "lambda_attention_distill", "lambda_discriminator_distill",
                 "AtoB_macs_threshold", "BtoA_macs_threshold", "upconv_coeff", "block_coeff"):
        if getattr(opt, name) < 0:
            raise UserError(f"--{name} must not be negative, got {getattr(opt, name)}")
    if opt.input_nc not in (1, 3) or opt.output_nc not in (1, 3):
        raise UserError("--input_nc and --output_nc must be 1 (grayscale) or 3 (RGB)")
    _MODEL_CLASSES[opt.model].check_options(opt)
    if opt.n_epochs + opt.n_epochs_decay < 1:
        raise UserError("--n_epochs + --n_epochs_decay must be at least 1")
    if opt.epoch_count is not None and opt.epoch_count < 1:
        raise UserError(f"--epoch_count must be >= 1, got {opt.epoch_count}")
    if opt.lr <= 0:
        raise UserError(f"--lr must be positive, got {opt.lr}")
    if not 0 <= opt.beta1 < 1:  # Adam's first-moment decay
        raise UserError(f"--beta1 must lie in [0, 1), got {opt.beta1}: e.g. --beta1 0.5 (the default)")
    if not 0 <= opt.frozen_threshold <= 1:
        raise UserError(f"--frozen_threshold must lie in [0, 1], got {opt.frozen_threshold}")
    if opt.max_dataset_size < 1:
        raise UserError("--max_dataset_size must be at least 1")
    if opt.ntest < 1:
        raise UserError("--ntest must be at least 1")
    if not ASPECT_RATIO_RANGE[0] <= opt.aspect_ratio <= ASPECT_RATIO_RANGE[1]:
        raise UserError(f"--aspect_ratio must lie between {ASPECT_RATIO_RANGE[0]} and {ASPECT_RATIO_RANGE[1]} (the "
                        f"width / height the saved images are stretched to; 1 keeps them as they are), got "
                        f"{opt.aspect_ratio}")
    if opt.eval_freq is not None and opt.eval_freq <= 0:
        raise UserError("--eval_freq must be positive; use --no_eval to switch evaluation off")
    if opt.script != "test":  # test.py resizes to --crop_size (the evaluation transform): no crop from load_size
        check_crop(opt.preprocess, opt.load_size, opt.crop_size)
    if opt.upconv_bound and opt.upconv_relu:
        raise UserError("--upconv_bound and --upconv_relu choose different losses for the same masks: give one")
    if opt.scratch and not opt.finetune:
        raise UserError("--scratch re-initialises the pruned model before fine-tuning: add --finetune")
    if opt.pretrain_ngf is not None and opt.pretrain_ngf <= 0:
        raise UserError("--pretrain_ngf must be positive")
    opt.gpu_ids = _parse_gpu_ids(opt.gpu_ids)
    if opt.epoch_count is None:
        opt.epoch_count_given = False
        opt.epoch_count = 1
    else:
        opt.epoch_count_given = True
    if opt.eval_freq is None:
        opt.eval_freq = opt.save_epoch_freq
    if opt.metric == "auto":
        opt.metric = "miou" if "cityscapes" in opt.dataroot.lower() else "fid"
    return opt


# Float options that may be infinite (integers or ``inf``: no cap).
INFINITE_ALLOWED = ("max_dataset_size", "ntest")
# Saved result images are stretched to this width / height at most (either way): a larger factor
# only makes huge images (1e6 would take hours and gigabytes per image).
ASPECT_RATIO_RANGE = (1 / 16, 16)


def _check_floats(opt):
    """UserError when a float option is NaN, or infinite where infinity means nothing (every float
    option but those in ``INFINITE_ALLOWED``, which take ``inf`` but not NaN or ``-inf``)."""
    for name, value in sorted(vars(opt).items()):
        if not isinstance(value, float) or math.isfinite(value):
            continue
        if name in INFINITE_ALLOWED:
            if value == math.inf:
                continue
            raise UserError(f"--{name} must be an integer or inf, got {value}: e.g. --{name} 100, or --{name} inf "
                            "for no cap")
        default = build_parser(getattr(opt, "script", "train")).get_default(name)
        example = f": e.g. --{name} {default} (the default)" if isinstance(default, float) else ""
        raise UserError(f"--{name} must be a finite number, got {value}{example}")


def _check_name(name):
    """``--name`` names one folder under --checkpoints_dir / --results_dir: a single path component."""
    seps = {"/", os.sep} | ({os.altsep} if os.altsep else set())
    if name in ("", ".", "..") or any(sep in name for sep in seps) or os.path.isabs(name) or "\0" in name:
        raise UserError(f"--name {name!r} must be one folder name (no path separators, not empty, '.' or '..'): "
                        "it names the run's folder inside --checkpoints_dir, e.g. --name horse2zebra")


def _parse_gpu_ids(text):
    """'-1' -> [] (CPU); '0,2' -> [0, 2]; None -> None (auto: GPU 0 if CUDA is available)."""
    if text is None:
        return None
    try:
        ids = [int(part) for part in str(text).split(",") if part.strip() != ""]
    except ValueError:
        raise UserError(f"--gpu_ids {text!r} is not a comma-separated list of integers (use -1 for CPU)") from None
    return [i for i in ids if i >= 0]


def options_text(opt, parser=None):
    """The options as a table, one 'name: value' per line, marking values that differ from the default."""
    parser = parser or build_parser(getattr(opt, "script", "train"))
    defaults = {action.dest: action.default for action in parser._actions}
    lines = ["----------------- Options ---------------"]
    for key, value in sorted(vars(opt).items()):
        changed = key in defaults and defaults[key] is not None and value != defaults[key]
        mark = f"\t[default: {defaults[key]}]" if changed else ""
        lines.append(f"{key:>30}: {value!s:<30}{mark}")
    lines.append("----------------- End -------------------")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------ effect

def _trains(opt):
    """The script runs a training loop: train.py, and prune.py with --finetune."""
    return opt.script == "train" or (opt.script == "prune" and bool(opt.finetune))


def _searches(opt):
    return opt.script == "train" and bool(opt.mask)


def _finetunes(opt):
    return opt.script == "prune" and bool(opt.finetune)


TRAINING = "training runs (train.py, prune.py --finetune)"
SEARCH = "the mask search (train.py --mask)"
FINETUNE = "the fine-tuning (prune.py --finetune)"
# Where each option acts, for the options that do not act in every script: (predicate(opt), where).
# Every script accepts every option (one set of flags serves all three); one given where it has no
# effect gets one warning line.
EFFECT = {
    "load_path": (lambda o: o.script != "train" or bool(o.continue_train),
                  "test.py, prune.py and train.py --continue_train"),
    "use_pretrain_d": (_finetunes, FINETUNE),
    "pretrain_path": (_finetunes, FINETUNE),
    "pretrain_ngf": (_finetunes, FINETUNE),
    # the architecture of test.py and prune.py comes from the checkpoint
    "ngf": (lambda o: o.script == "train", "train.py (test.py and prune.py read it from the checkpoint)"),
    "no_dropout": (lambda o: o.script == "train", "train.py (test.py and prune.py read it from the checkpoint)"),
    "ndf": (_trains, TRAINING + " (test.py and pruning run generators only)"),
    "mask": (lambda o: o.script != "test", "train.py and prune.py (test.py reads the architecture from the "
                                           "checkpoint)"),
    "threshold": (lambda o: _searches(o) or o.script == "prune", "prune.py and " + SEARCH),
    "serial_batches": (_trains, TRAINING),
    "num_threads": (_trains, TRAINING),
    "batch_size": (_trains, TRAINING + "; evaluation uses --eval_batch_size"),
    "no_flip": (_trains, TRAINING),
    "results_dir": (lambda o: o.script == "test", "test.py"),
    "eval_freq": (_trains, TRAINING),
    "clean_checkpoints": (_trains, TRAINING),
    "overwrite": (lambda o: o.script != "test", "train.py and prune.py (their run folders)"),
    "finetune": (lambda o: o.script == "prune", "prune.py"),
    "scratch": (lambda o: o.script == "prune", "prune.py --finetune"),
    "amp_dtype": (lambda o: _trains(o) and bool(o.amp), TRAINING + " with --amp"),
}
# option groups (see _base_group) whose every option acts only where the group says
GROUP_EFFECT = {
    "mask search": (_searches, SEARCH),
    "training": (_trains, TRAINING),
    "distillation": (_finetunes, FINETUNE),
    "display": (_trains, TRAINING),
}
# options of those groups that also act elsewhere
_ALSO_ELSEWHERE = {"display_winsize"}  # the size of test.py's images
# values that switch an option's feature off: given where the feature does not act, they agree with
# the script and are not warned about (``--display_id 0`` turns visdom off anywhere)
_OFF_VALUES = {"display_id": lambda v: v <= 0}


def ignored_options(opt, parser=None):
    """[(option string, where it acts)] for the options given on the command line that have no
    effect in ``opt.script`` with the other options given."""
    parser = parser or build_parser(opt.script)
    effect = {}
    for group in parser._action_groups:
        rule = GROUP_EFFECT.get(group.title)
        if rule is not None:
            for action in group._group_actions:
                if action.dest not in _ALSO_ELSEWHERE:
                    effect[action.dest] = rule
    effect.update(EFFECT)
    flags = {a.dest: a.option_strings[0] for a in parser._actions if a.option_strings}
    ignored = []
    for dest in getattr(opt, "user_set", ()):
        if dest in _OFF_VALUES and _OFF_VALUES[dest](getattr(opt, dest)):
            continue
        if dest in effect and not effect[dest][0](opt):
            ignored.append((flags[dest], effect[dest][1]))
    return ignored


def warn_ignored_options(opt):
    """One warning line per option given on the command line that has no effect in this script."""
    prog = f"{opt.script}.py"
    for flag, where in ignored_options(opt):
        log.warning("%s has no effect in %s%s: it acts in %s", flag, prog, _mode(opt), where)


def _mode(opt):
    if opt.script == "prune":
        return " with --finetune" if opt.finetune else " without --finetune"
    return ""
