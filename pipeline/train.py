"""The stage of train.py: a plain (teacher) run or, with ``--mask``, the mask search (docs/method.md §8).

``run(opt)`` sets up the console and the process group and calls :func:`train`, which checks every
input before the run folder is written, builds the model and runs :class:`pipeline.trainer.Trainer`.
With ``--init_path`` the run starts from the weights of a checkpoint (:func:`read_init`,
:func:`load_init`) instead of random ones.
"""
import logging
from dataclasses import dataclass

from compress.mask_search import MaskSearch
from data import EpochSampler, create_dataset
from metrics.evaluate import build_evaluator
from models import MODELS, create_model
from models.mask import Mask
from models.networks import generator_config, load_strict
from options.validate import architecture
from pipeline.checkpoint import Checkpoint, read_checkpoint, resume_state, take_fixed
from pipeline.run import Run
from pipeline.trainer import Trainer
from report.visualizer import Visualizer
from util import distributed
from util.device import select_device
from util.errors import UserError
from util.frozen import replace
from util.logger import setup_logging
from util.seed import seed_everything

log = logging.getLogger("dmad")


# the generator and discriminator widths and the image channels: a resume takes them (and --netG) from its
# checkpoint unless given, so that a run whose architecture --init_path fixed resumes with the same command
ARCHITECTURE_OPTIONS = ("ngf", "ndf", "input_nc", "output_nc")


# ------------------------------------------------------------------------------------------ --init_path

@dataclass
class Init:
    """The weights ``--init_path`` starts a run from (:func:`read_init`): ``record``, the file read;
    ``sources``: ``{this model's net name: the file's net name}`` of the networks taken from it;
    ``gen_configs``: ``{generator name: config}`` the model's generators are built with."""

    path: str
    record: Checkpoint
    sources: dict
    gen_configs: dict


def with_variants(want, stored):
    """``want`` (a generator config the options describe) with the entries of ``stored`` (a config
    read from a checkpoint) that the options do not describe: the variants its weights were trained
    with (a ResNet's ``norm`` and ``use_dropout``, a U-Net's ``norm``). What the options describe
    (sizes, ``mask``, a U-Net's dropout through ``--no_dropout``) stays as they give it."""
    return dict(want, **{key: value for key, value in stored.items() if key not in want})


def read_init(opt):
    """The weights of ``--init_path``, read and checked against the options before anything is written,
    and the options they fix: ``(options, Init)``; ``(opt, None)`` without it, or with
    ``--continue_train`` (a resume reads its own weights; one info line). ``opt`` is left as it is:
    the returned options are a copy (:func:`util.frozen.replace`).

    The file is any checkpoint :func:`pipeline.checkpoint.read_checkpoint` reads (this project's, the
    original code's, pytorch-CycleGAN-and-pix2pix's run folder, one of its files or a model-zoo file)
    holding a plain (no masks), full-width (not pruned) model of ``--model``'s generator family. Its
    generators start the run's, masked ones with ``--mask`` (masks initialised as usual), and its
    discriminators the run's where they have this model's architecture (others, with one warning,
    start from random weights). A model-zoo file's one generator starts the generator of
    ``--direction`` (CycleGAN's G_A; G_B and the discriminators start from random weights, one info
    line). ``--netG``, ``--ngf``, ``--input_nc``, ``--output_nc``, ``--ndf`` and ``--direction`` not given
    are taken from the file (one info line); what the options do not describe (a ResNet's BatchNorm or
    dropout) too.

    UserError (one line) for a file that does not fit: another model or
    family, a mask search, pruned generators, a depth no ``--netG`` builds, channels that are not 1 or
    3, a given option it contradicts, or a ``--crop_size`` its generator does not take."""
    if not opt.init_path:
        return opt, None
    path, named = opt.init_path, f"--init_path {opt.init_path}"
    if opt.continue_train:
        log.info("%s is not read: --continue_train resumes the run's own weights", named)
        return opt, None
    record = read_checkpoint(path, "--init_path")
    model = MODELS[opt.model]
    gens, discs = model.generator_names, model.discriminator_names
    if record.lone_generator:
        sources = {gens[0]: next(iter(record.nets))}
    else:
        if record.model is not None and record.model != opt.model:
            raise UserError(f"{named} holds a {record.model} model but --model is {opt.model}: give a {opt.model} "
                            f"checkpoint, or --model {record.model}")
        missing = [name for name in gens if name not in record.nets]
        if missing:
            raise UserError(f"{named} has no {', '.join(missing)} (it holds {', '.join(sorted(record.nets))}): give "
                            f"a {opt.model} checkpoint with {' and '.join(gens)}")
        sources = {name: name for name in gens + discs if name in record.nets}
    if record.kind == "pruned" or record.stage in ("pruned", "finetune"):
        raise UserError(f"{named} holds pruned generators: --init_path starts from a full-width plain model (a "
                        "teacher: train.py without --mask); prune.py --finetune is how a pruned model trains on")
    for name in gens:
        if name in sources and record.configs[sources[name]].get("mask"):
            raise UserError(f"{named} is a mask-search checkpoint: --init_path starts from a plain model (a teacher: "
                            "train.py without --mask); a search goes on with --continue_train, and prunes with "
                            "prune.py")
    family, first_name = model.generator_family, sources[gens[0]]
    first = record.configs[first_name]
    if first.get("family") != family.family:
        others = [m for m, cls in MODELS.items() if cls.generator_family.family == first.get("family")]
        raise UserError(f"{named}: its {first_name} is a {first.get('family')} generator, but --model {opt.model} "
                        f"trains {family.family} ones ({' / '.join(family.netG_choices)})"
                        + (f": use --model {others[0]}" if others else ""))
    netG = family.netG_of(first)
    if netG is None:
        depth = family.depth_name
        raise UserError(f"{named}: its {first_name} has {depth} {first.get(depth)}, which no --netG of this project "
                        f"builds ({' / '.join(family.netG_choices)})")
    for option in ("input_nc", "output_nc"):
        if first.get(option) not in (1, 3):
            raise UserError(f"{named}: its {first_name} has {option} {first.get(option)}; training reads images of 1 "
                            "(grayscale) or 3 (RGB) channels")
    taken = {}
    for option, value in (("netG", netG), ("ngf", first["ngf"]), ("input_nc", first["input_nc"]),
                          ("output_nc", first["output_nc"]), ("norm", family.norm_of(first))):
        take_fixed(opt, taken, option, value, named, first_name)
    trained = record.trained_direction  # the side each generator maps; a model-zoo file does not say
    if trained is not None and opt.direction != trained:
        if "direction" in opt.user_set:
            raise UserError(f"--direction {opt.direction} does not fit {named}: it was trained with --direction "
                            f"{trained} (its generators map those sides); drop --direction or give --direction "
                            f"{trained}")
        taken["direction"] = trained
        opt = replace(opt, direction=trained)
    judge = model.directions(opt.direction)[0].discriminator  # the discriminator of the first generator
    if judge in sources:
        take_fixed(opt, taken, "ndf", record.configs[judge]["ndf"], named, judge)
    try:
        opt = architecture(replace(opt, **taken))  # the crop size the taken --netG accepts
    except UserError as err:
        raise UserError(f"{named} holds a {netG} generator: {err}") from None
    model.check_options(opt)
    gen_configs = {}
    for name, want in default_generator_configs(opt).items():
        stored = record.configs[sources[name]] if name in sources else first
        if name in sources:
            for key in ("family", "input_nc", "output_nc", "ngf", family.depth_name):
                if stored.get(key) != want.get(key):
                    raise UserError(f"{named}: its {sources[name]} has {key} {stored.get(key)} where this run's {name} "
                                    f"has {want.get(key)} (from its {first_name}): its generators do not form one "
                                    f"{opt.model} model")
        gen_configs[name] = with_variants(want, stored)
    wanted_d = model.discriminator_configs(opt)
    for name in discs:
        if name not in sources:
            continue
        stored = record.configs[sources[name]]
        if stored.get("input_nc") != wanted_d[name]["input_nc"]:
            raise UserError(f"{named}: its {name} judges {stored.get('input_nc')}-channel images where this run's "
                            f"judges {wanted_d[name]['input_nc']}: its networks do not form one {opt.model} model")
        if stored != wanted_d[name]:
            log.warning("%s: its %s (%s) is not this model's discriminator (%s): it starts from random weights",
                        named, name, _describe_d(stored), _describe_d(wanted_d[name]))
            del sources[name]
    if taken:
        log.info("%s taken from the networks of %s", " and ".join(f"--{k} {v}" for k, v in taken.items()), named)
    if record.lone_generator:
        rest = [n for n in gens + discs if n not in sources]
        log.info("%s holds one generator (a model-zoo file): it starts %s, the generator of --direction %s (%s -> %s); "
                 "%s start%s from random weights", named, gens[0], opt.direction, opt.direction[0],
                 opt.direction[-1], ", ".join(rest), "s" if len(rest) == 1 else "")
    return opt, Init(path, record, sources, gen_configs)


def _describe_d(config):
    return ", ".join(f"{k} {config.get(k)}" for k in ("n_layers", "norm", "ndf"))


def load_init(model, init):
    """Load the networks of ``init`` (an :class:`Init`) into ``model``: each generator's plain weights
    into the run's generator (a mask generator's masks keep their initial values), the discriminators
    strictly. UserError (one line) for weights that do not fit."""
    named = f"--init_path {init.path}"
    for name, source in init.sources.items():
        net, state = model.nets[name], init.record.nets[source]
        if name not in model.generator_names:
            load_strict(net, state, f"{named}: its {source}", f"this run's {name}")
            continue
        masks = {f"{prefix}.{key}" for prefix, module in net.named_modules() if isinstance(module, Mask)
                 for key in module.state_dict()}
        own = net.state_dict()
        missing, unexpected = sorted(set(own) - masks - set(state)), sorted(set(state) - set(own))
        if missing or unexpected:
            raise UserError(f"{named}: its {source} does not fit this run's {name} (missing {missing[:3]}, unexpected "
                            f"{unexpected[:3]})")
        for key, value in state.items():
            if tuple(value.shape) != tuple(own[key].shape):
                raise UserError(f"{named}: its {source} does not fit this run's {name} ({key} has shape "
                                f"{tuple(value.shape)}, expected {tuple(own[key].shape)}): it is not a full-width "
                                "generator")
        net.load_state_dict(state, strict=False)
    log.info("%s: %s start%s from its weights%s", named, ", ".join(init.sources), "s" if len(init.sources) == 1 else "",
             " (the masks initialised as usual)" if any(isinstance(m, Mask) for m in model.nets.modules()) else "")


# ------------------------------------------------------------------------------------------ the stage

def take_resumed_architecture(opt, record):
    """The options of a resume of the checkpoint ``record``: a copy of ``opt`` (left as it is) with the
    architecture options the command line did not give taken from the file (``--ngf``, ``--ndf``, the
    image channels, ``--netG``, ``--norm`` and ``--direction``), so that a resume need not repeat them,
    logged once (the channels only when they change). A given ``--direction`` other than the trained one is warned
    about with the other changed options (:meth:`pipeline.trainer.Trainer.warn_changed_options`)."""
    stored = record.take_options(opt, ARCHITECTURE_OPTIONS)
    named = {k: v for k, v in stored.items() if k not in ("input_nc", "output_nc") or getattr(opt, k) != v}
    netG = record.options.get("netG")
    if "netG" not in opt.user_set and netG != opt.netG and netG in MODELS[opt.model].generator_family.netG_choices:
        stored["netG"] = named["netG"] = netG
    first = record.configs.get(MODELS[opt.model].generator_names[0])
    norm = MODELS[opt.model].generator_family.norm_of(first) if first else opt.norm
    if "norm" not in opt.user_set and norm != opt.norm:
        stored["norm"] = named["norm"] = norm
    trained = record.trained_direction  # the side each generator maps: a resume goes on in it
    if trained is not None and "direction" not in opt.user_set and opt.direction != trained:
        stored["direction"] = named["direction"] = trained
    resolved = replace(opt, **stored)
    if "netG" in stored:
        resolved = architecture(resolved)
    record.log_taken(named)
    return resolved


def check_first_batch(opt, dataset, epoch):
    """Decode the images of the first batch of ``epoch`` (in this process), so that a broken file there
    is a UserError before the run folder is written. Later files are checked as they are read."""
    sampler = EpochSampler(len(dataset), opt.seed, not opt.serial_batches, epoch)
    dataset.set_epoch(epoch)
    for _, index in zip(range(opt.batch_size), iter(sampler)):
        dataset[index]


def default_generator_configs(opt):
    """``{generator name: config}`` the options describe (what the model builds without
    ``gen_configs``): the model's own ``generator_configs`` where it has one, else its first generator
    maps input_nc -> output_nc channels and a second one (CycleGAN's G_B) maps back."""
    cls = MODELS[opt.model]
    if hasattr(cls, "generator_configs"):
        return cls.generator_configs(opt)
    names = cls.generator_names
    forward = generator_config(opt)
    return {name: dict(forward) if i == 0 else dict(forward, input_nc=forward["output_nc"],
                                                     output_nc=forward["input_nc"])
            for i, name in enumerate(names)}


def train(opt, device):
    """The run of ``opt``; ``device`` is torchrun's device for this process, or None (``--gpu_ids``)."""
    main_rank = distributed.is_main()
    run = Run(opt)
    # everything that can fail on bad input is checked before anything is written
    run.check()
    if opt.load_path and not opt.continue_train:
        raise UserError(f"--load_path {opt.load_path} is read by train.py only to resume a run: add --continue_train "
                        "to resume the run saved in it, or give it as --init_path to start a new run from its "
                        "weights (or drop it to train from scratch)")
    run.refuse_overwrite(reads=[("--init_path", opt.init_path)])
    opt, init = read_init(opt)  # before the dataset: it may fix the image channels
    resume = None
    if opt.continue_train:  # --load_path, else this run's newest checkpoint
        candidates = [opt.load_path] if opt.load_path else run.resume_candidates()
        resume = resume_state(opt, run, candidates, stages=None, kind="checkpoint",
                              fix="give --load_path or start without --continue_train", search=opt.mask)
        opt = take_resumed_architecture(opt, resume.record)
    dataset = create_dataset(opt)
    device = device or select_device(opt.gpu_ids, announce=False)
    seed_everything(opt.seed)
    gen_configs = init.gen_configs if init is not None else None
    if resume is not None:
        # what the options do not describe (a generator's BatchNorm, say) is the checkpoint's
        stored = resume.configs
        defaults = default_generator_configs(opt)
        if any(set(stored.get(name) or {}) - set(config) for name, config in defaults.items()):
            gen_configs = {name: with_variants(config, stored.get(name) or {}) for name, config in defaults.items()}
    model = create_model(opt, device, gen_configs=gen_configs)
    if init is not None:
        load_init(model, init)  # weights that do not fit fail here, before anything is written
    if resume is not None:
        # a checkpoint that does not fit fails here; a snapshot holds no optimiser state
        model.load_state_dict(resume.model_state, resume.path, optimizers=resume.full)
    # a missing explicit --inception_path fails here; only rank 0 evaluates
    evaluator = build_evaluator(opt, device) if main_rank else None
    first_epoch = opt.epoch_count if resume is None or opt.epoch_count_given else resume.epoch + 1
    dataset.verify()  # every image decoded: a truncated file fails here, before --overwrite clears anything
    check_first_batch(opt, dataset, first_epoch)  # its preprocessing too
    run.open(device, opt)  # rank 0 locks the folder and logs to it
    search = None
    if opt.mask:
        search = MaskSearch(opt, model, n_batches=distributed.batches_per_epoch(len(dataset), opt.batch_size))
        model.add_loss_term(search.loss_term)  # the sparsity losses join the generator loss
    trainer = Trainer(opt, model, run, "search" if opt.mask else "train",
                      visualizer=Visualizer(opt) if main_rank else None,
                      evaluator=evaluator, search=search, dataset=dataset)
    if resume is not None:
        trainer.restore(resume, model_loaded=True)
    distributed.prepare_model(model, split_random=not trainer.process_state_restored)
    log.info("The number of training images = %d", len(dataset))
    trainer.train()


def run(opt):
    """train.py after parsing: the run of ``opt`` in this process (one of torchrun's, or alone)."""
    setup_logging(hold=True)  # console only, held back until the input is known to be good
    with distributed.session(opt) as device:
        train(opt, device)
