"""Validation of parsed options: model-dependent defaults filled in, invalid or contradictory values
refused with one :class:`util.errors.UserError` line each, before anything is read or written.
:func:`validate` is the only function that writes to the options; :func:`options.parse` then freezes
them (options/frozen.py), and a value a checkpoint fixes is resolved once, into a copy, by the stage
that reads the checkpoint."""
import argparse
import math
import os

from data.transforms import check_crop
from metrics.evaluate import resolve_metric
from models import MODELS, families
from models.discriminator import min_input_size
from util.frozen import replace
from util.errors import UserError

# Float options that may be infinite (integers or ``inf``: no cap).
INFINITE_ALLOWED = ("max_dataset_size", "ntest")
# Saved result images are stretched to this width / height at most (either way): a larger factor
# only makes huge images (1e6 would take hours and gigabytes per image).
ASPECT_RATIO_RANGE = (1 / 16, 16)
POSITIVE = ("batch_size", "load_size", "crop_size", "ngf", "ndf", "input_nc", "output_nc", "print_freq",
            "display_freq", "update_html_freq", "save_epoch_freq", "lr_decay_iters", "eval_batch_size",
            "display_winsize")
NON_NEGATIVE = ("keep_checkpoints", "num_threads", "n_epochs", "n_epochs_decay", "pool_size", "threshold", "mask_weight_decay",
                "lambda_A", "lambda_B", "lambda_identity", "lambda_L1", "lambda_update_coeff",
                "lambda_group_lasso", "lambda_attention_distill", "lambda_discriminator_distill",
                "AtoB_macs_threshold", "BtoA_macs_threshold", "upconv_coeff", "block_coeff")


def validate(opt, defaults):
    """Fill model-dependent defaults and reject invalid or contradictory values (UserError).
    ``defaults``: {option dest: parser default}, for the examples in the messages. Returns ``opt``."""
    if opt.dataroot is None:
        raise UserError("--dataroot is required: give the folder of the dataset (e.g. --dataroot datasets/toy/unaligned)")
    opt.dataroot = os.path.expanduser(opt.dataroot)
    check_name(opt.name)
    _architecture(opt)
    _check_floats(opt, defaults)
    _ranges(opt)
    MODELS[opt.model].check_options(opt)
    _combinations(opt)
    _fill_in(opt)
    return opt


def _architecture(opt):
    """The generator --netG and --crop_size describe: the default --netG and --dataset_mode of the
    model, the image sides the networks accept (``size_multiple``, ``min_size_G``, ``min_size``)."""
    if opt.dataset_mode is None:
        opt.dataset_mode = MODELS[opt.model].dataset_mode
    family = MODELS[opt.model].generator_family
    if opt.netG is None:
        opt.netG = family.default_netG(opt.crop_size)
    if families.for_netG(opt.netG) is not family:
        raise UserError(f"--netG {opt.netG} is not a generator of --model {opt.model}, which uses "
                        f"{' or '.join(family.netG_choices)}")
    if opt.norm is None:
        opt.norm = family.norms[0]
    elif opt.norm not in family.norms:
        raise UserError(f"--norm {opt.norm}: the {opt.netG} generator has {' or '.join(family.norms)} norm layers "
                        f"only; drop --norm")
    # image sides the generator accepts (a ResNet halves twice, a U-Net once per level)
    opt.size_multiple = family.size_multiple(family.netG_args(opt.netG))
    if opt.crop_size % opt.size_multiple:
        raise UserError(f"--crop_size {opt.crop_size} must be a multiple of {opt.size_multiple} for {opt.netG} "
                        f"(e.g. {max(opt.size_multiple, opt.crop_size // opt.size_multiple * opt.size_multiple)})")
    # the smallest image side (px) the networks accept (the family says it for the generator); training
    # also runs the PatchGAN discriminator, which needs 24 px with its 3 layers
    opt.min_size_G = family.min_size(family.netG_args(opt.netG))
    opt.min_size = max(opt.min_size_G, min_input_size(3)) if opt.isTrain else opt.min_size_G
    if opt.preprocess != "none" and opt.crop_size < opt.min_size:
        part = "the 3-layer PatchGAN discriminator" if opt.min_size > opt.min_size_G else f"the {opt.netG} generator"
        raise UserError(f"--crop_size {opt.crop_size} is too small: {part} needs images of at least {opt.min_size} "
                        f"px a side; use --crop_size {-(-opt.min_size // opt.size_multiple) * opt.size_multiple} "
                        "or more")
    if opt.dataset_mode == "single" and opt.script != "test":
        raise UserError("--dataset_mode single has no targets to train on; use it with test.py")


def architecture(opt):
    """A copy of ``opt`` (left as it is) with the derived sizes of :func:`validate` for ``--netG`` and
    ``--crop_size`` computed again, after a checkpoint fixed ``--netG`` (train.py ``--init_path`` or a
    resume); UserError as there."""
    draft = argparse.Namespace(**vars(opt))
    _architecture(draft)
    return replace(opt, **vars(draft))


def _ranges(opt):
    """Each number within its range."""
    for name in POSITIVE:
        if getattr(opt, name) <= 0:
            raise UserError(f"--{name} must be positive, got {getattr(opt, name)}")
    for name in NON_NEGATIVE:
        if getattr(opt, name) < 0:
            raise UserError(f"--{name} must not be negative, got {getattr(opt, name)}")
    if opt.input_nc not in (1, 3) or opt.output_nc not in (1, 3):
        raise UserError("--input_nc and --output_nc must be 1 (grayscale) or 3 (RGB)")
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
    if opt.pretrain_ngf is not None and opt.pretrain_ngf <= 0:
        raise UserError("--pretrain_ngf must be positive")


def _combinations(opt):
    """Options that contradict each other."""
    if opt.script != "test":  # test.py resizes to --crop_size (the evaluation transform): no crop from load_size
        check_crop(opt.preprocess, opt.load_size, opt.crop_size)
    if opt.upconv_bound and opt.upconv_relu:
        raise UserError("--upconv_bound and --upconv_relu choose different losses for the same masks: give one")
    if opt.scratch and not opt.finetune:
        raise UserError("--scratch re-initialises the pruned model before fine-tuning: add --finetune")


def _fill_in(opt):
    """The defaults that depend on other options: GPUs, the first epoch, the evaluation period, the metric."""
    opt.gpu_ids = parse_gpu_ids(opt.gpu_ids)
    opt.epoch_count_given = opt.epoch_count is not None
    if opt.epoch_count is None:
        opt.epoch_count = 1
    if opt.eval_freq is None:
        opt.eval_freq = opt.save_epoch_freq
    opt.metric = resolve_metric(opt.metric, opt.dataroot)


def _check_floats(opt, defaults):
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
        default = defaults.get(name)
        example = f": e.g. --{name} {default} (the default)" if isinstance(default, float) else ""
        raise UserError(f"--{name} must be a finite number, got {value}{example}")


def check_name(name):
    """``--name`` names one folder under --checkpoints_dir / --results_dir: a single path component."""
    seps = {"/", os.sep} | ({os.altsep} if os.altsep else set())
    if name in ("", ".", "..") or any(sep in name for sep in seps) or os.path.isabs(name) or "\0" in name:
        raise UserError(f"--name {name!r} must be one folder name (no path separators, not empty, '.' or '..'): "
                        "it names the run's folder inside --checkpoints_dir, e.g. --name horse2zebra")


def parse_gpu_ids(text):
    """'-1' -> [] (CPU); '0,2' -> [0, 2]; None -> None (auto: GPU 0 if CUDA is available)."""
    if text is None:
        return None
    try:
        ids = [int(part) for part in str(text).split(",") if part.strip() != ""]
    except ValueError:
        raise UserError(f"--gpu_ids {text!r} is not a comma-separated list of integers (use -1 for CPU)") from None
    return [i for i in ids if i >= 0]
