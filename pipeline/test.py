"""The stage of test.py (docs/method.md §9.4): translate a split with a checkpoint's generators and
write the HTML page, the images and ``metrics.json`` into ``<results_dir>/<name>/<phase>_<label>/``.
``run(opt)`` is test.py after parsing.
"""
import os
import copy
import json
import logging
from dataclasses import dataclass

import torch
from tqdm import tqdm

from data import create_dataloader, create_dataset
from data.image_folder import verify_images
from metrics.evaluate import build_evaluator, score_and_log
from metrics.paired import PairedMetrics, by_metric
from models import DIRECTIONS, MODELS, families, generator_name
from models.layers import masks
from compress.pruning import prune_generator
from options import warn_ignored_options
from util.frozen import replace
from pipeline.checkpoint import read_checkpoint
from util.device import select_device
from util import distributed
from util.errors import UserError
from util.files import atomic_folder, check_writable_folder, finite_or_null
from util.flops import count_macs_params, format_count
from report.html import HTML
from util.logger import release_console, setup_logging
from pipeline.run import Run
from report.visualizer import save_images

log = logging.getLogger("dmad")


def checkpoint_to_test(opt):
    """The checkpoint to test (a pipeline.checkpoint.Checkpoint, read once): --load_path, else
    model_best.pth, else the run's latest, else its pruned model (checkpoints/model_0.pth). ``--load_path`` may be a pytorch-CycleGAN-and-pix2pix run
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
        if path is None and os.path.isfile(run.pruned_path):  # a prune.py run without --finetune
            path = run.pruned_path
        if path is None:
            raise UserError(f"no checkpoint in {run.dir}: train first or give --load_path")
        if path != run.best_path:
            log.info("no model_best.pth in %s (it is written when evaluation runs): testing %s", run.dir, path)
    record = read_checkpoint(path, "--load_path" if opt.load_path else None, generators_only=True)
    record.check_model(opt.model)
    return record


def fit_lone_generator(opt, record):
    """``{option: value}`` that a lone generator fixes. A file holding one generator alone (a
    pytorch-CycleGAN-and-pix2pix model-zoo file) runs as the generator of ``--direction``, as upstream's
    ``--model test``: through the one-generator table of the file's model (whatever ``--model`` says). A
    ``--model`` with two generators (CycleGAN's default, unaligned data) then reads ``--dataset_mode single``
    data unless another mode is given (the ``<phase>A`` images, ``<phase>B`` with ``--direction BtoA``, or the
    images in ``--dataroot`` itself); a one-generator ``--model`` (pix2pix) keeps its aligned pairs and their
    ground truth. Other files are left to :func:`fit_direction` (no change)."""
    if not record.lone_generator:
        return {}
    fixed = {"model": record.model}
    if "dataset_mode" not in opt.user_set and len(MODELS[opt.model].generator_names) > 1:
        fixed["dataset_mode"] = "single"
    source, target = opt.direction[0], opt.direction[-1]
    log.info("%s holds one generator (a model-zoo file): it translates %s -> %s (--direction %s) on --dataset_mode "
             "%s data, as pytorch-CycleGAN-and-pix2pix's --model test", record.path, source, target, opt.direction,
             fixed.get("dataset_mode", opt.dataset_mode))
    return fixed


def fit_direction(opt, record):
    """``{"direction": the direction to test}``: ``--direction`` from the checkpoint (docs/usage.md, Test): a
    model remembers the direction it was trained with. One generator (pix2pix) maps only that side: the other
    ``--direction`` is refused. With two generators (CycleGAN) both run, each on the side it learned, so a
    given ``--direction`` other than the trained one has no meaning and is refused too, except with
    ``--dataset_mode single``, where it chooses which of them translates the folder (one line names it). Files
    that do not record a direction (the original code's) keep ``--direction`` as given."""
    given = "direction" in opt.user_set
    trained = record.trained_direction
    wanted = record.fit_direction(opt.direction, given)
    if trained is None or wanted == trained:
        if trained is not None and not given and opt.direction != trained:
            record.log_taken({"direction": trained})
        return {"direction": wanted}
    # two generators and a given direction other than the trained one
    nets = {d: generator_name(record.model, record.table_direction(d)) for d in DIRECTIONS}
    if opt.dataset_mode != "single":
        raise UserError(f"--direction {wanted} does not fit {record.path}: it was trained with --direction {trained} "
                        f"(its {nets['BtoA']} maps B to A, its {nets['AtoB']} A to B) and test.py runs both "
                        f"generators, each on the side it learned; drop --direction (or translate only "
                        f"{wanted[0]} images with --dataset_mode single --direction {wanted})")
    log.info("--direction %s: %s of %s maps %s to %s (it was trained with --direction %s)", wanted, nets[wanted],
             record.path, wanted[0], wanted[-1], trained)
    return {"direction": wanted}


def fit_sizes(opt, record):
    """``{option: value}`` of the sizes: ``--load_size`` / ``--crop_size`` that were not given are taken from
    the options the checkpoint was written with, so a model trained at 32 px is tested at 32 px; files without
    stored options (the original DMAD code's) keep the defaults. A given ``--crop_size`` is kept (and checked
    against the generator by :func:`fit_generators`); a load size taken from the file is raised to the crop
    size when a larger ``--crop_size`` is given."""
    taken, values = record.take_sizes(opt)
    record.log_taken(taken)
    return values


def fit_generators(opt, generators, path):
    """``{option: value}`` the checkpoint's generators fix: the image channels and the image sides
    they take (size multiple, smallest side, a crop size fitted to them); data options given on the
    command line that contradict them are refused with one line. Single-domain data
    feeds its images to the one generator that runs: its channels are that generator's."""
    table = MODELS[opt.model].directions(opt.direction)
    entry = next(d for d in table if d.name in generators)
    config = generators[entry.name].config()
    # the model's first generator maps input_nc -> output_nc channels; a second one (CycleGAN's G_B) maps back
    forward = entry.generator == table[0].generator or opt.dataset_mode == "single"
    channels = {"input_nc": config["input_nc"] if forward else config["output_nc"],
                "output_nc": config["output_nc"] if forward else config["input_nc"]}
    fixed = {}
    for name, value in channels.items():
        if getattr(opt, name) != value:
            if name in opt.user_set:
                raise UserError(f"--{name} {getattr(opt, name)} does not fit {path}, whose generator has "
                                f"{name.split('_')[0]} {value} channel(s): use --{name} {value} or omit it")
            fixed[name] = value
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
    fixed.update(size_multiple=multiple, min_size=smallest, min_size_G=smallest)
    if opt.crop_size % multiple or opt.crop_size < multiple:
        fitted = max(multiple, opt.crop_size // multiple * multiple)
        # with --preprocess none the crop size only sets the input of the MACs count
        if "crop_size" in opt.user_set and opt.preprocess != "none":
            raise UserError(f"--crop_size {opt.crop_size} does not fit {path}: its generator needs image sides that "
                            f"are multiples of {multiple}; use --crop_size {fitted}")
        fixed.update(crop_size=fitted, load_size=max(opt.load_size, fitted))
    return fixed


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


@dataclass(frozen=True)
class Route:
    """One generator test.py runs. ``key``: its key in the generators and the evaluator (the model's
    table name; single-domain data: ``--direction``); ``net``: its name in the model's per-direction
    table (:meth:`Checkpoint.generator`); ``batch``: the batch key of its input images; ``source`` /
    ``target``: the domains ("A"/"B") of its input and its output, which name the result folders
    (``real_<source>``, ``fake_<target>``) and, as ``<source>to<target>``, its entries in the report."""

    key: str
    net: str
    batch: str
    source: str
    target: str

    @property
    def name(self):
        return f"{self.source}to{self.target}"


def routes(opt, record):
    """The generators to run, as :class:`Route`, from the model's per-direction table under the
    trained ``--direction`` (:func:`fit_direction`); single-domain data runs the one generator that
    translates its folder the way ``--direction`` says."""
    if opt.dataset_mode == "single":
        return [Route(opt.direction, record.table_direction(opt.direction), "A", opt.direction[0],
                      opt.direction[-1])]
    return [Route(d.name, d.name, d.data_side(opt.direction), d.data_side(opt.direction),
                  d.target_side(opt.direction)) for d in MODELS[opt.model].directions(opt.direction)]


def images_to_translate(opt, dataset, table, evaluator=None):
    """The image files test.py reads with ``dataset`` for the :class:`Route` list ``table`` (at most
    ``--ntest`` per direction, as :func:`write_results` does), each once, less those ``evaluator``
    decoded already (:meth:`metrics.evaluate.Evaluator.verify`)."""
    paths = []
    for route in table:
        side = getattr(dataset, f"{route.batch}_paths", None)
        side = dataset.image_paths() if side is None else side  # A|B pairs: both sides in one file
        paths += side[:int(min(len(side), opt.ntest))]
    done = set(evaluator.verified) if evaluator is not None else set()
    return [p for p in dict.fromkeys(paths) if p not in done]


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
    table = {route.key: route for route in routes(opt, record)}
    for key, net in generators.items():
        net = generators[key] = net.to(device)
        macs, params = count_macs_params(counted(net), (1, net.config()["input_nc"], opt.crop_size, opt.crop_size))
        report["macs"][table[key].name], report["params"][table[key].name] = macs, params
        log.info("%s generator | Params: %s | MACs: %s at %dx%d", table[key].name, format_count(params),
                 format_count(macs), opt.crop_size, opt.crop_size)
    # aligned data has the ground truth of every output: the other half of the pair
    paired = {key: PairedMetrics() for key in table} if opt.dataset_mode == "aligned" else {}
    # each direction translates every image of its own side once, named after that image; the folders
    # name the domain of each image (real_<source>, fake_<target>)
    with torch.no_grad():
        for route in table.values():
            # a pair holds both sides (and the ground truth); unpaired data is walked side by side
            images = dataset if paired else dataset.domain(route.batch)
            loader = create_dataloader(opt, images, shuffle=False, batch_size=1, num_workers=0)
            count = min(len(images), opt.ntest)
            for i, batch in enumerate(tqdm(loader, total=count, desc=f"test {route.name}", leave=False,
                                           disable=None)):
                if i >= count:
                    break
                real = batch[route.batch].to(device)
                source = batch[f"{route.batch}_paths"][0]
                fake = generators[route.key](real)
                visuals = {f"real_{route.source}": real, f"fake_{route.target}": fake}
                if route.key in paired:
                    paired[route.key].update(fake, batch[route.target].to(device))
                save_images(webpage, visuals, source, aspect_ratio=opt.aspect_ratio, width=opt.display_winsize,
                            name=dataset.result_name(source))
    webpage.save()
    if paired:
        report.update(by_metric({table[key].name: metrics for key, metrics in paired.items()}))
    report.update(score_generators(evaluator, generators, {key: route.name for key, route in table.items()}))
    with open(os.path.join(folder, "metrics.json"), "w") as handle:
        json.dump(finite_or_null(report), handle, indent=2, allow_nan=False)
    return report


def score_generators(evaluator, generators, names):
    """FID / mIoU per direction on the evaluation split (empty when no metric weights are present),
    keyed by ``names`` ({generator key: "<source>to<target>"}). A direction the split is too small
    for is reported as not computed: its score None, and why under ``<metric>_not_computed``."""
    if evaluator is None or evaluator.net is None:
        return {}
    scores = score_and_log(evaluator, generators, names=names)
    skipped = {names[key]: reason for key, reason in evaluator.skipped.items() if key in generators}
    if not skipped:
        return {evaluator.metric: scores}
    for direction, reason in skipped.items():
        log.info("%s %s: not computed (the evaluation split has %s)", direction, evaluator.metric_name, reason)
    return {evaluator.metric: {**scores, **dict.fromkeys(skipped)}, f"{evaluator.metric}_not_computed": skipped}


def resolve(opt, record):
    """The options of this test, fitted to the checkpoint ``record`` before any data is read (the
    architecture comes from the checkpoint; the values it fixes are logged once), and its generators:
    ``(options, {route key: generator})``. ``opt`` is left as it is: the returned options are a copy
    (:func:`util.frozen.replace`). ``--phase`` defaults to "test" here, and "test" reads val/ for aligned
    data that has a val/ folder and no test/ folder."""
    opt = replace(opt, **fit_lone_generator(opt, record))
    opt = replace(opt, **fit_direction(opt, record))
    opt = replace(opt, **fit_sizes(opt, record))
    generators = {route.key: record.generator(route.net) for route in routes(opt, record)}
    opt = replace(opt, **fit_generators(opt, generators, record.path))
    phase = opt.phase if "phase" in opt.user_set else "test"
    if phase == "test" and opt.dataset_mode == "aligned" and not os.path.isdir(os.path.join(opt.dataroot, "test")) \
            and os.path.isdir(os.path.join(opt.dataroot, "val")):
        phase = "val"
    return replace(opt, phase=phase), generators


def run(opt):
    """test.py after parsing: translate the split, write the page, the images and metrics.json."""
    if distributed.launched():
        raise UserError("test.py runs in one process (every process would write the same results): run it "
                        "with python, not torchrun")
    setup_logging(hold=True)  # held back until the input is known to be good
    check_writable_folder(os.path.join(opt.results_dir, opt.name), f"--results_dir {opt.results_dir}")
    record = checkpoint_to_test(opt)
    label = record.label
    opt, generators = resolve(opt, record)
    dataset = create_dataset(opt, train=False)
    device = select_device(opt.gpu_ids)
    # a missing explicit weights file fails before any output; a split too small for FID is reported as such
    evaluator = build_evaluator(opt, device, partial=True)
    if evaluator is not None:
        evaluator.check_statistics(list(generators))  # so do missing or damaged statistics
    # a truncated or unreadable image is one line before any other is printed or anything translated
    verify_images(images_to_translate(opt, dataset, routes(opt, record), evaluator),
                  desc=f"checking {opt.phase} images")
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


