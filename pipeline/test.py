"""The stage of test.py (docs/method.md §9.4): translate a split with a checkpoint's generators and
write the HTML page, the images and ``metrics.json`` into ``<results_dir>/<name>/<phase>_<label>/``.
``run(opt)`` is test.py after parsing.
"""
import os
import copy
import json
import logging
import math

import torch
from tqdm import tqdm

from data import create_dataloader, create_dataset
from metrics.evaluate import build_evaluator
from metrics.paired import PairedMetrics, by_metric
from models import MODELS, families
from models.layers import masks
from compress.pruning import prune_generator
from options import warn_ignored_options
from pipeline.checkpoint import read_checkpoint
from util.device import select_device
from util import distributed
from util.errors import UserError
from util.files import atomic_folder, check_writable_folder
from util.flops import count_macs_params, format_count
from report.html import HTML
from util.logger import release_console, setup_logging
from pipeline.run import Run
from report.visualizer import save_images

log = logging.getLogger("dmad")


def checkpoint_to_test(opt):
    """The checkpoint to test (a pipeline.checkpoint.Checkpoint, read once): --load_path, else
    model_best.pth, else the run's latest. ``--load_path`` may be a pytorch-CycleGAN-and-pix2pix run
    folder, one of its files or a model-zoo file: only its generators are read."""
    if opt.load_path:
        path = os.path.expanduser(opt.load_path)
        if not os.path.exists(path):
            hint = (": model_best.pth is written only when evaluation runs (FID needs the Inception weights); "
                    "use checkpoints/latest.pth" if os.path.basename(path) == "model_best.pth" else "")
            raise UserError(f"--load_path {path} does not exist{hint}")
    else:
        run = Run(opt)
        path = run.best_path if os.path.isfile(run.best_path) else run.find_latest()
        if path is None:
            raise UserError(f"no checkpoint in {run.dir}: train first or give --load_path")
        if path != run.best_path:
            log.info("no model_best.pth in %s (it is written when evaluation runs): testing %s", run.dir, path)
    record = read_checkpoint(path, "--load_path" if opt.load_path else None, generators_only=True)
    record.check_model(opt.model)
    return record


def fit_lone_generator(opt, record):
    """A file holding one generator alone (a pytorch-CycleGAN-and-pix2pix model-zoo file) runs as the
    generator of ``--direction``, as upstream's ``--model test``: through the one-generator table of
    the file's model (whatever ``--model`` says). A ``--model`` with two generators (CycleGAN's
    default, unaligned data) then reads ``--dataset_mode single`` data unless another mode is given
    (the ``<phase>A`` images, ``<phase>B`` with ``--direction BtoA``, or the images in ``--dataroot``
    itself); a one-generator ``--model`` (pix2pix) keeps its aligned pairs and their ground truth.
    Other files are left to :func:`fit_direction`."""
    if not record.lone_generator:
        return
    if "dataset_mode" not in opt.user_set and len(MODELS[opt.model].generator_names) > 1:
        opt.dataset_mode = "single"
    opt.model = record.model
    source, target = opt.direction[0], opt.direction[-1]
    log.info("%s holds one generator (a model-zoo file): it translates %s -> %s (--direction %s) on --dataset_mode "
             "%s data, as pytorch-CycleGAN-and-pix2pix's --model test", record.path, source, target, opt.direction,
             opt.dataset_mode)


def fit_direction(opt, record):
    """A model with one generator (pix2pix) maps the side it was trained on: the other ``--direction``
    is refused when given, and taken from the checkpoint when not."""
    opt.direction = record.fit_direction(opt.direction, "direction" in opt.user_set)


def fit_sizes(opt, record):
    """``--load_size`` / ``--crop_size`` that were not given are taken from the options the checkpoint
    was written with, so a model trained at 32 px is tested at 32 px; files without stored options
    (the original DMAD code's) keep the defaults. A given ``--crop_size`` is kept (and checked against
    the generator by :func:`fit_generators`); a load size taken from the file is raised to the crop
    size when a larger ``--crop_size`` is given."""
    record.log_taken(record.take_sizes(opt))


def fit_generators(opt, generators, path):
    """Take the image channels and the size multiple from the checkpoint's generators; data options
    given on the command line that contradict them are refused with one line."""
    table = MODELS[opt.model].directions(opt.direction)
    entry = next(d for d in table if d.name in generators)
    config = generators[entry.name].config()
    # the model's first generator maps input_nc -> output_nc channels; a second one (CycleGAN's G_B) maps back
    forward = entry.generator == table[0].generator
    channels = {"input_nc": config["input_nc"] if forward else config["output_nc"],
                "output_nc": config["output_nc"] if forward else config["input_nc"]}
    for name, value in channels.items():
        if getattr(opt, name) != value:
            if name in opt.user_set:
                raise UserError(f"--{name} {getattr(opt, name)} does not fit {path}, whose generator has "
                                f"{name.split('_')[0]} {value} channel(s): use --{name} {value} or omit it")
            setattr(opt, name, value)
    if "netG" in opt.user_set:
        given, stored = families.for_netG(opt.netG), families.of_config(config)
        depth = stored.depth_name
        if given is not stored or any(config.get(k) != v for k, v in given.netG_args(opt.netG).items()):
            log.warning("--netG %s has no effect in test.py: %s holds a %s generator with %s %s, which is tested "
                        "as it is (the architecture comes from the checkpoint)", opt.netG, path, config["family"],
                        depth, config.get(depth))
    configs = [net.config() for net in generators.values()]
    multiple = max(families.of_config(c).size_multiple(c) for c in configs)
    smallest = max(families.of_config(c).min_size(c) for c in configs)
    opt.size_multiple = multiple
    opt.min_size = opt.min_size_G = smallest
    if opt.crop_size % multiple or opt.crop_size < multiple:
        fitted = max(multiple, opt.crop_size // multiple * multiple)
        # with --preprocess none the crop size only sets the input of the MACs count
        if "crop_size" in opt.user_set and opt.preprocess != "none":
            raise UserError(f"--crop_size {opt.crop_size} does not fit {path}: its generator needs image sides that "
                            f"are multiples of {multiple}; use --crop_size {fitted}")
        opt.crop_size = fitted
        opt.load_size = max(opt.load_size, fitted)


def warn_unsettled(generators):
    """One warning when a generator carries masks whose bound is still > 0 (a checkpoint taken during
    the search): such a generator is tested as it is, soft masks included (method.md §2, §4), but it is
    not the slim one that pruning makes of a finished search."""
    bounds = [float(m.bound) for net in generators.values() for m in masks(net).values()]
    if bounds and max(bounds) > 0:
        log.warning("the masks have not settled (bound %g > 0): the outputs are those of the soft-masked generator "
                    "and the MACs those of the full architecture; prune a finished search (bound 0) with prune.py "
                    "for the slim generator", max(bounds))


def counted(net):
    """The generator whose MACs and params are reported for ``net``: the slim generator pruning makes
    of a settled mask generator (bound 0: the same function, method.md §6.5, and what export.py
    writes), else ``net`` itself. The outputs are always ``net``'s."""
    found = masks(net)
    if found and max(float(m.bound) for m in found.values()) == 0:
        return prune_generator(copy.deepcopy(net))[0]
    return net


def directions(opt):
    """Which generators to run, and on which side of the data: [(direction, source key, out label)],
    from the model's per-direction table."""
    if opt.dataset_mode == "single":
        return [(opt.direction, "A", "fake")]
    return [(d.name, d.data_side(opt.direction), d.fake) for d in MODELS[opt.model].directions(opt.direction)]


def finite_or_null(value):
    """``value`` with every NaN or infinite float (a score of degenerate statistics) as None, so that
    metrics.json is strict JSON (``null``) for every parser."""
    if isinstance(value, dict):
        return {k: finite_or_null(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_or_null(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_results(opt, folder, web_dir, record, dataset, generators, evaluator, device):
    """Translate the test images with ``generators`` (from the Checkpoint ``record``) and write the
    page, the images and metrics.json into ``folder`` (which becomes ``web_dir``, the name used in
    messages); returns the report."""
    try:
        webpage = HTML(folder, f"Experiment = {opt.name}, Phase = {opt.phase}, Checkpoint = {record.label}")
    except OSError as err:
        raise UserError(f"cannot write the results to {web_dir} ({err.strerror}): choose another --results_dir") \
            from None
    # the MACs are counted for one crop_size x crop_size image: its (height, width) in px goes with them
    report = {"checkpoint": os.path.abspath(record.path), "phase": opt.phase,
              "macs_image_size": [opt.crop_size, opt.crop_size], "macs": {}, "params": {}}
    for direction, net in generators.items():
        net = generators[direction] = net.to(device)
        macs, params = count_macs_params(counted(net), (1, net.config()["input_nc"], opt.crop_size, opt.crop_size))
        report["macs"][direction], report["params"][direction] = macs, params
        log.info("%s generator | Params: %s | MACs: %s at %dx%d", direction, format_count(params),
                 format_count(macs), opt.crop_size, opt.crop_size)
    # aligned data has the ground truth of every output: the other half of the pair
    paired = {d: PairedMetrics() for d, _, _ in directions(opt)} if opt.dataset_mode == "aligned" else {}
    # each direction translates every image of its own side once, named after that image
    with torch.no_grad():
        for direction, side, out_label in directions(opt):
            # a pair holds both sides (and the ground truth); unpaired data is walked side by side
            images = dataset if paired else dataset.domain(side)
            loader = create_dataloader(opt, images, shuffle=False, batch_size=1, num_workers=0)
            count = min(len(images), opt.ntest)
            for i, batch in enumerate(tqdm(loader, total=count, desc=f"test {direction}", leave=False,
                                           disable=None)):
                if i >= count:
                    break
                real = batch[side].to(device)
                source = batch[f"{side}_paths"][0]
                visuals = {f"real_{side}": real, out_label: generators[direction](real)}
                if direction in paired:
                    paired[direction].update(visuals[out_label], batch["B" if side == "A" else "A"].to(device))
                save_images(webpage, visuals, source, aspect_ratio=opt.aspect_ratio, width=opt.display_winsize,
                            name=dataset.result_name(source))
    webpage.save()
    if paired:
        report.update(by_metric(paired))
    report.update(score_generators(evaluator, generators))
    with open(os.path.join(folder, "metrics.json"), "w") as handle:
        json.dump(finite_or_null(report), handle, indent=2, allow_nan=False)
    return report


def score_generators(evaluator, generators):
    """FID / mIoU per direction on the evaluation split (empty when no metric weights are present)."""
    if evaluator is None or not evaluator.enabled:
        return {}
    scores = evaluator.evaluate(generators)
    for direction, score in scores.items():
        log.info("%s %s: %.2f", direction, evaluator.metric_name, score)
    return {evaluator.metric: scores}


def run(opt):
    """test.py after parsing: translate the split, write the page, the images and metrics.json."""
    if distributed.launched():
        raise UserError("test.py runs in one process (every process would write the same results): run it "
                        "with python, not torchrun")
    setup_logging(hold=True)  # held back until the input is known to be good
    if "phase" not in opt.user_set:
        opt.phase = "test"
    check_writable_folder(os.path.join(opt.results_dir, opt.name), f"--results_dir {opt.results_dir}")
    record = checkpoint_to_test(opt)
    path, label = record.path, record.label
    # the architecture comes from the checkpoint; data options are fitted to it before any data is read
    fit_lone_generator(opt, record)
    fit_direction(opt, record)
    fit_sizes(opt, record)
    generators = {direction: record.generator(direction) for direction, _, _ in directions(opt)}
    fit_generators(opt, generators, path)
    if opt.phase == "test" and opt.dataset_mode == "aligned" and not os.path.isdir(os.path.join(opt.dataroot, "test")) \
            and os.path.isdir(os.path.join(opt.dataroot, "val")):
        opt.phase = "val"
    dataset = create_dataset(opt, train=False)
    device = select_device(opt.gpu_ids)
    evaluator = build_evaluator(opt, device)  # a missing explicit weights file fails before any output
    if evaluator is not None:
        evaluator.check_statistics([d for d, _, _ in directions(opt)])  # so do missing or damaged statistics
    warn_ignored_options(opt)
    release_console()
    warn_unsettled(generators)
    # named after the split as well (as the original's <phase>_<epoch>): another --phase keeps its own results
    web_dir = os.path.join(opt.results_dir, opt.name, f"{opt.phase}_{label}")
    earlier = os.path.lexists(web_dir)
    # written into a fresh folder that replaces web_dir only once complete: a rerun leaves no file of the
    # earlier run behind, and one that fails or is interrupted leaves the earlier results as they were
    with atomic_folder(web_dir, "choose another --results_dir") as staging:
        report = write_results(opt, staging, web_dir, record, dataset, generators, evaluator, device)
    if earlier:
        log.info("the earlier results in %s were replaced", web_dir)
    log.info("results: %s", os.path.join(web_dir, "index.html"))
    log.info("metrics: %s", json.dumps({k: v for k, v in report.items() if k != "checkpoint"}))


