"""The stage of prune.py (docs/method.md §6, §7): prune a mask-search checkpoint into slim generators,
write them as the pruned model (``checkpoints/model_0.pth``) and, with ``--finetune``, fine-tune them
with distillation (pipeline/finetune.py). ``run(opt)`` is prune.py after parsing.
"""
import os
import logging

from models import MODELS, families, generator_from_state
from models.layers import masks
from metrics.evaluate import build_evaluator, score_and_log
from models.upstream import is_run_folder
from compress.pruning import format_prune_summary, format_prune_table, prune_generator
from options.validate import architecture
from util.frozen import replace
from util import distributed
from pipeline.checkpoint import (check_checkpoint_file, checkpoint_from_state, missing_nets, pruned_model,
                                 read_checkpoint, save_checkpoint, take_fixed)
from util.device import select_device
from util.errors import UserError
from pipeline.finetune import check_teacher, finetune, prepare_finetune
from util.logger import detail_logger, setup_logging
from pipeline.run import Run

log = logging.getLogger("dmad")


def read_search_checkpoint(opt, path):
    """The search checkpoint (a :class:`pipeline.checkpoint.Checkpoint`); UserError when it is not a mask
    search of ``--model``."""
    source = read_checkpoint(path, "--load_path", generators_only=True)  # a native file is read whole
    if source.kind == "upstream":
        raise UserError(f"--load_path {path} is a plain pytorch-CycleGAN-and-pix2pix model, not a mask search: "
                        f"search it first with train.py --model {opt.model} --mask --init_path {path} (docs/usage.md, "
                        "Compress the model you already have), then prune that search's checkpoint")
    if source.model != opt.model:
        raise UserError(f"{path} holds a {source.model} model but --model {opt.model} was given: "
                        f"use --model {source.model}")
    model = MODELS[opt.model]
    gens = model.generator_names
    missing = missing_nets(source.nets, source.configs, gens + model.discriminator_names)
    if missing:
        raise UserError(f"{path} has no {missing[0]}: it is not a {opt.model} checkpoint")
    family = families.for_netG(opt.netG).family
    for name in gens:
        config = source.configs[name]
        if config.get("family") != family:
            raise UserError(f"{path}: {name} is a {config.get('family')} generator but --model {opt.model} "
                            f"--netG {opt.netG} prunes a {family} one: check --model and --netG")
        if not config.get("mask"):
            raise UserError(f"{path} holds a plain (non-mask) {name}: prune.py prunes the checkpoint of a mask "
                            "search (train.py --mask)")
    return source


def take_training_options(opt, source):
    """The options of this prune resolved against the search checkpoint ``source``: a copy of ``opt``
    (left as it is; :func:`util.frozen.replace`) with the options not given on the command line that
    must match the search taken from it, logged once: ``--load_size`` / ``--crop_size`` (the MACs are
    counted, and the fine-tune trains, at the size the search trained at), ``--direction`` (the side
    each generator maps), ``--ndf`` (the fine-tune loads the search's discriminators) and the
    generator's ``--netG``, ``--ngf`` and channels (the image sides and channels the data is read with,
    and what opt.txt and the pruned model record). A given ``--direction``, ``--netG``, ``--ngf`` or
    channel count, or with ``--finetune`` a given ``--ndf``, that does not fit is a UserError before
    anything is written."""
    taken, values = source.take_sizes(opt)
    trained = source.options.get("direction")
    if trained in ("AtoB", "BtoA") and opt.direction != trained:
        # the generators map the sides they were searched on: the other direction would run them backwards
        if "direction" in opt.user_set:
            raise UserError(f"--direction {opt.direction} does not fit {source.path}: the search was trained with "
                            f"--direction {trained}; drop --direction or give --direction {trained}")
        taken["direction"] = values["direction"] = trained
    model = MODELS[opt.model]
    stored = {source.configs[name].get("ndf") for name in model.discriminator_names}
    if len(stored) == 1 and None not in stored:
        ndf = stored.pop()
        if "ndf" not in opt.user_set and opt.ndf != ndf:
            taken["ndf"] = values["ndf"] = ndf
        elif opt.finetune and opt.ndf != ndf:
            raise UserError(f"--ndf {opt.ndf} does not fit {source.path}: its discriminators have ndf {ndf}; drop "
                            f"--ndf or give --ndf {ndf}")
    fixed, first = {}, MODELS[opt.model].generator_names[0]
    for option, value in generator_architecture(opt, source).items():
        take_fixed(opt, fixed, option, value, source.path, first)
    taken.update(fixed)
    values.update(fixed)
    source.log_taken(taken)
    return architecture(replace(opt, **values))


def generator_architecture(opt, source):
    """``{option: value}`` of ``--netG``, ``--ngf``, ``--input_nc`` and ``--output_nc`` as the search's
    first generator has them (the model's first generator maps input_nc -> output_nc channels);
    ``--netG`` only when one of the family's names builds that depth."""
    config = source.configs[MODELS[opt.model].generator_names[0]]
    family = families.of_config(config)
    fixed = {option: config[option] for option in ("ngf", "input_nc", "output_nc") if type(config.get(option)) is int}
    netG = family.netG_of(config)
    if netG is not None:
        fixed["netG"] = netG
    return fixed


def check_size(opt, config):
    """The MACs are counted at crop_size: it must fit the generator's downsampling."""
    factor = families.of_config(config).size_multiple(config)
    if opt.crop_size % factor:
        raise UserError(f"--crop_size {opt.crop_size} does not fit the checkpoint's {config['family']} generator: "
                        f"use a multiple of {factor}")


def prune_nets(opt, source, path, device):
    """The pruned generators and their reports: ({name: slim net}, {name: report})."""
    gens = MODELS[opt.model].generator_names
    nets, reports = {}, {}
    if opt.threshold > 0:
        log.warning("--threshold %d also removes residual-stream channels that up to %d of their masks keep: the "
                    "pruned generators do not give the masked ones' output", opt.threshold, opt.threshold)
    for name in gens:
        config = source.configs[name]
        check_size(opt, config)
        net = generator_from_state(config, source.nets[name], path).to(device).eval()
        bounds = sorted({float(m.bound) for m in masks(net).values()})
        if bounds and bounds[-1] > 0:
            log.warning("%s: mask bound %.4g > 0 (the search had not finished): pruning keeps the channels with "
                        "w > 0, so the pruned generator is not equal to the masked one", name, bounds[-1])
        nets[name], reports[name] = prune_generator(net, vote=opt.threshold, image_size=opt.crop_size)
    return nets, reports


def pruned_from(run, resume):
    """The search checkpoint the fine-tune run ``run`` was pruned from, as its fine-tune checkpoint
    ``resume`` (a :class:`pipeline.checkpoint.Resume`), its ``model_0.pth`` or the ``--load_path`` it was
    trained with records it; None when none does."""
    if resume.source:
        return resume.source
    if os.path.isfile(run.pruned_path):
        try:
            recorded = read_checkpoint(run.pruned_path).source
        except UserError:  # a damaged model_0.pth records nothing
            recorded = None
        if recorded:
            return recorded
    return resume.options.get("load_path") or None


def check_resumed_structure(opt, run, path, nets, resume):
    """Before anything is written: UserError unless the generators ``nets`` pruned from ``--load_path``
    ``path`` have the widths of the fine-tune checkpoint ``resume`` (a :class:`pipeline.checkpoint.Resume`)
    that ``--continue_train`` resumes. Returns the run's ``model_0.pth`` (a
    :class:`pipeline.checkpoint.Checkpoint`) when it holds these widths, so that the resume leaves it
    untouched; None when it is missing or differs (it is written)."""
    for name in MODELS[opt.model].generator_names:
        if resume.configs.get(name) != nets[name].config():
            recorded = pruned_from(run, resume)
            fix = (f"give --load_path {recorded}" if recorded else
                   "give the --load_path of the search checkpoint the run was pruned from")
            raise UserError(f"--load_path {path} prunes {name} to other widths than {resume.path} was fine-tuned "
                            f"with" + (f" (the run was pruned from {recorded})" if recorded else "") + f": {fix}, "
                            "or fine-tune this search under another --name")
    if not os.path.isfile(run.pruned_path):
        return None
    try:
        existing = read_checkpoint(run.pruned_path)
    except UserError:  # damaged: written anew
        return None
    if all(existing.configs.get(name) == nets[name].config() for name in MODELS[opt.model].generator_names):
        return existing
    return None


def evaluate(opt, evaluator, nets):
    """``{"metric", "scores": {direction: score}}`` of the pruned generators; empty without an
    enabled evaluator."""
    generators = {d.name: nets[d.generator] for d in MODELS[opt.model].directions(opt.direction)}
    scores = score_and_log(evaluator, generators)
    if not scores:
        return {}
    return {"metric": evaluator.metric_name, "scores": {d: float(s) for d, s in scores.items()}}


def prune(opt, device):
    """Prune (every rank computes the same slim nets; rank 0 writes them) and, with --finetune,
    fine-tune. ``device``: torchrun's device for this process, or None (``--gpu_ids``)."""
    main_rank = distributed.is_main()
    if opt.continue_train and not opt.finetune:
        # pruning alone starts nothing that could be resumed; it would only replace model_0.pth
        raise UserError("--continue_train resumes a fine-tune: add --finetune (prune.py --finetune --continue_train), "
                        "or drop --continue_train to prune into another --name")
    if not opt.mask:
        raise UserError("prune.py prunes a mask-search checkpoint: add --mask")
    if not opt.load_path:
        raise UserError("prune.py needs --load_path: give the mask-search checkpoint (e.g. <run>/model_best.pth)")
    path = os.path.expanduser(opt.load_path)
    if os.path.isdir(path) and not is_run_folder(path):
        check_checkpoint_file(path, "--load_path")  # a folder is named as such, not as missing
    if not os.path.exists(path):
        raise UserError(f"--load_path {path} does not exist: give the mask-search checkpoint "
                        "(model_best.pth, latest.pth or checkpoints/model_<epoch>.pth)")
    run = Run(opt)
    run.check()
    # only a fine-tune checkpoint can be resumed: a folder that holds just the pruned model_0.pth cannot
    run.refuse_overwrite(resumable=opt.finetune and run.has_training_checkpoints(),
                         reads=[("--load_path", path), ("--pretrain_path", opt.pretrain_path)])
    source = read_search_checkpoint(opt, path)
    opt = take_training_options(opt, source)
    # everything that can fail on bad input is checked before the run folder is written
    device = device or select_device(opt.gpu_ids, announce=False)
    # only rank 0 evaluates; pruning alone scores the pruned generators only when the weights are there
    optional = not opt.finetune and "metric" not in getattr(opt, "user_set", ())
    evaluator = build_evaluator(opt, device, optional=optional) if main_rank else None
    prepared = prepare_finetune(opt, device) if opt.finetune else None
    nets, reports = prune_nets(opt, source, path, device)
    if prepared is not None:
        check_teacher(opt, nets, prepared["teacher"])  # before model_0.pth is written or --overwrite removes a run
    kept = None  # the run's model_0.pth, when a resume keeps it
    if prepared is not None and prepared["resume"] is not None:
        kept = check_resumed_structure(opt, run, path, nets, prepared["resume"])
    run.open(device, opt)  # rank 0 locks the folder and logs to it
    scores = source.scores(opt.direction)
    if scores:
        metric = {"fid": "FID", "miou": "mIoU"}.get(source.metric or opt.metric, "score")
        log.info("After Training. %s", "\t".join(f"{d} {metric}: {s:.2f}" for d, s in sorted(scores.items())))

    log.info("Prune done!!!")
    detail_logger().info("\n%s", format_prune_table(reports))  # per layer: logger.log only
    for line in format_prune_summary(reports).splitlines():
        log.info(line)
    log.info("the per-layer table is in %s", os.path.join(run.dir, "logger.log"))
    discs = {name: (source.nets[name], source.configs[name]) for name in MODELS[opt.model].discriminator_names}
    evaluation = evaluate(opt, evaluator, nets) if kept is None else None  # "metric" and the pruned model's "scores"
    origin = path
    if kept is not None:  # the search the kept model_0.pth was pruned from
        origin = kept.source or pruned_from(run, prepared["resume"]) or path
    state = pruned_model(opt, nets, reports, origin, discriminators=discs, evaluation=evaluation)
    out = run.pruned_path
    pruned = checkpoint_from_state(state, out)
    if kept is not None:
        # the resume trains on from the fine-tune checkpoint: the pruned model of the run stays as it was
        log.info("resuming: %s is kept as it is (pruned from %s)", out, pruned.source)
    elif main_rank:
        save_checkpoint(state, out)
        log.info("pruned model saved to %s", out)
        # with --finetune, an earlier run is cleared once the fine-tune saves its own first checkpoint
        run.saved(out, clear=not opt.finetune)
    distributed.barrier()

    if opt.finetune:
        finetune(opt, pruned, device, prepared, evaluator=evaluator, run=run)


def run(opt):
    """prune.py after parsing: prune and, with --finetune, fine-tune, in this process (one of torchrun's, or
    alone)."""
    setup_logging(hold=True)  # console only, held back until the input is known to be good
    if distributed.launched() and not opt.finetune:
        raise UserError("pruning alone takes a fraction of a second and runs in one process: drop torchrun, or add "
                        "--finetune to fine-tune with several processes")
    with distributed.session(opt) as device:
        prune(opt, device)


