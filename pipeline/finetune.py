"""The fine-tune stage of prune.py --finetune: the pruned model trained with distillation (method.md §7).

``prepare_finetune(opt, device)`` checks the options and loads what they name before prune.py writes
anything; ``finetune(opt, pruned, device, prepared)`` then builds the student from the pruned
model, attaches the distillation losses (compress/distill.py) and runs the training loop of
pipeline/trainer.py with stage ``"finetune"`` in the run folder, as train.py does for training and the
mask search.
"""
import logging
import os

from data import create_dataset
from metrics.evaluate import build_evaluator
from models import MODELS, create_model, families
from compress.distill import (ATTENTION_D_LAYER, DISTILL_D_LAYER, Distiller, Teacher, check_generator_fits, distills,
                              needs_teacher)
from models.networks import build_discriminator, build_generator, init_weights, load_strict
from util import distributed
from util.errors import UserError
from util.seed import seed_everything
from pipeline.checkpoint import missing_nets, read_checkpoint, resume_state
from pipeline.run import Run
from pipeline.trainer import Trainer
from report.visualizer import Visualizer

log = logging.getLogger("dmad")


def prepare_finetune(opt, device):
    """Check the fine-tuning options and load what they name, before anything is written: the
    teacher (when distillation or ``--use_pretrain_d`` needs it), with ``--continue_train`` the
    fine-tune checkpoint to resume, and the training set.

    Returns ``{"teacher": Teacher | None, "resume": pipeline.checkpoint.Resume | None, "dataset": Dataset}``;
    every problem is a UserError."""
    distill = distills(opt)
    if distill and not opt.pretrain_path:
        raise UserError("distillation (--lambda_attention_distill / --lambda_discriminator_distill > 0) needs a "
                        "teacher: give --pretrain_path <teacher model_best.pth> or set both weights to 0")
    if opt.use_pretrain_d and not opt.pretrain_path:
        raise UserError("--use_pretrain_d takes the discriminators of the teacher: give --pretrain_path")
    if opt.pretrain_path and not needs_teacher(opt):
        log.info("--pretrain_path is given but both distillation weights are 0: the teacher is not used")
    resume = None
    if opt.continue_train:
        # prune.py's --load_path names the search checkpoint: the run folder's newest fine-tune
        # checkpoint is resumed, passing over the pruned model_0.pth
        run = Run(opt)
        resume = resume_state(opt, run, run.resume_candidates(), stages=("finetune",), kind="fine-tune checkpoint",
                              fix="run prune.py --finetune without --continue_train first (with --overwrite when the "
                                  "folder holds only the pruned model_0.pth)")
    teacher = load_teacher(opt, device) if needs_teacher(opt) else None
    dataset = create_dataset(opt)  # a bad --dataroot fails before prune.py writes model_0.pth
    dataset.verify()  # so does a truncated image anywhere in the split
    return {"teacher": teacher, "resume": resume, "dataset": dataset}


def finetune(opt, pruned, device, prepared=None, evaluator=None, run=None):
    """Fine-tune the pruned model ``pruned`` (a :class:`pipeline.checkpoint.Checkpoint` of what prune.py
    saves as model_0.pth).

    The student is built with the pruned widths (``pruned.configs``), takes the pruned
    generators and the search discriminators (or the teacher's with ``--use_pretrain_d``), is
    re-initialised with ``--scratch``, and is trained by ``pipeline.trainer.Trainer`` with stage
    ``"finetune"`` in ``<checkpoints_dir>/<name>/``; the distillation losses are attached when a
    distillation weight is positive. ``--continue_train`` resumes this run's newest fine-tune
    checkpoint. ``prepared`` is the result of :func:`prepare_finetune` and ``evaluator`` the caller's
    metrics.Evaluator (both built here when not given); ``run`` the pipeline.run.Run prune.py opened
    (its --overwrite bookkeeping carries on into the fine-tune). Raises UserError when ``pruned`` lacks a
    network of ``--model`` or the options do not fit it."""
    model_cls = MODELS[opt.model]
    nets_needed = model_cls.generator_names + model_cls.discriminator_names
    nets, configs = pruned.nets, pruned.configs
    missing = missing_nets(nets, configs, nets_needed)
    if missing:
        raise UserError(f"the pruned model has no {', '.join(missing)}: it is not a {opt.model} model; "
                        "check --model")
    prepared = prepare_finetune(opt, device) if prepared is None else prepared
    teacher, resume = prepared["teacher"], prepared["resume"]
    run = Run(opt) if run is None else run
    seed_everything(opt.seed)

    gen_configs = {n: dict(configs[n]) for n in model_cls.generator_names}
    model = create_model(opt, device, gen_configs=gen_configs)
    nets, configs = dict(nets), dict(configs)
    if opt.use_pretrain_d and not opt.scratch:
        check_pretrain_d(teacher, {n: model.configs[n] for n in model_cls.discriminator_names})
        for name in model_cls.discriminator_names:
            nets[name] = teacher.nets[name].state_dict()
            configs[name] = teacher.configs[name]
        log.info("student discriminators initialised from the teacher %s", opt.pretrain_path)
    model.load_state_dict({"nets": nets, "configs": configs}, "the pruned model", optimizers=False)
    if opt.scratch:
        if opt.use_pretrain_d:
            log.warning("--scratch re-initialises the discriminators too: --use_pretrain_d has no effect")
        for net in model.nets.values():
            init_weights(net)
        log.info("From Scratch")
    if distills(opt):
        distiller = Distiller(opt, model, teacher)
        model.add_loss_term(distiller.loss)

    main_rank = distributed.is_main()
    if evaluator is None and main_rank:
        evaluator = build_evaluator(opt, device)
    trainer = Trainer(opt, model, run, "finetune", visualizer=Visualizer(opt) if main_rank else None,
                      evaluator=evaluator, dataset=prepared.get("dataset"))
    trainer.source = pruned.source  # a resume names the search the run was pruned from
    if resume is not None:
        trainer.restore(resume)
    distributed.prepare_model(model, split_random=not trainer.process_state_restored)
    log.info("Start Finetune....")
    log.info("The number of training images = %d", len(trainer.dataset))
    trainer.train()


def check_teacher(opt, generators, teacher):
    """UserError when ``teacher`` (a compress.distill.Teacher, or None) cannot serve the fine-tune of
    the pruned ``generators`` ({name: module}): the checks :func:`finetune` meets, made before prune.py
    writes its model_0.pth or lets --overwrite remove an earlier run."""
    if teacher is None:
        return
    if distills(opt):
        for name, net in generators.items():
            check_generator_fits(name, net, teacher.nets[name])
    if opt.use_pretrain_d and not opt.scratch:
        check_pretrain_d(teacher, MODELS[opt.model].discriminator_configs(opt))


def check_pretrain_d(teacher, configs):
    """--use_pretrain_d: UserError unless each teacher discriminator has the config the student's is
    built with (``configs``: {discriminator name: config})."""
    for name, config in configs.items():
        if teacher.configs[name] != config:
            # the student's discriminators are the mask search's (prune.py takes --ndf from it and
            # refuses another), so only another teacher, or none, can make them fit
            raise UserError(f"--use_pretrain_d: the teacher's {name} ({_describe(teacher.configs[name])}) does "
                            f"not fit the student's, which are the mask search's ({_describe(config)}): give a "
                            f"--pretrain_path teacher whose discriminators are the search's (trained with --ndf "
                            f"{config.get('ndf')}), or drop --use_pretrain_d")


def _describe(config):
    """A discriminator config in a few words, for errors."""
    return ", ".join(f"{k} {config.get(k)}" for k in ("input_nc", "ndf", "n_layers", "norm"))


def check_upstream_teacher(opt, record):
    """UserError when the pytorch-CycleGAN-and-pix2pix checkpoint ``record`` (kind "upstream") lacks a
    network the fine-tune needs: it is loaded only when a distillation or ``--use_pretrain_d`` is on,
    and each of them reads the teacher's discriminators (co-attention: the teacher D's attention map,
    method.md §7.3; discriminator distillation: its features, §7.4). The error names the file that
    is missing (``latest_net_D_A.pth`` beside ``latest_net_G_A.pth``) and how to proceed."""
    path, model = opt.pretrain_path, MODELS[opt.model]
    needs = "co-attention and discriminator distillation, and --use_pretrain_d, read the teacher's discriminators"
    without = ("or fine-tune without a teacher (--lambda_attention_distill 0 --lambda_discriminator_distill 0, "
               "no --use_pretrain_d)")
    if record.lone_generator:
        nets = " / ".join(f"latest_net_{n}.pth" for n in model.generator_names + model.discriminator_names)
        raise UserError(f"--pretrain_path {path} holds one generator (a model-zoo file) and no discriminator: {needs}; "
                        f"give the pytorch-CycleGAN-and-pix2pix run folder of the model, with its {nets}, {without}")
    folder = os.path.dirname(next(iter(record.files.values())))
    epoch = record.label
    for name in model.generator_names + model.discriminator_names:
        if name not in record.nets:
            missing = os.path.join(folder, f"{epoch}_net_{name}.pth")
            fix = needs if name in model.discriminator_names else f"a {opt.model} teacher has " + \
                " and ".join(model.generator_names)
            raise UserError(f"--pretrain_path {path}: {missing} is missing ({fix}); copy it from the "
                            f"pytorch-CycleGAN-and-pix2pix run into {folder}, {without}")


def load_teacher(opt, device):
    """The teacher of ``--pretrain_path`` for ``--model``, checked against the options and frozen: a
    plain model of this project or of the original code, or a pytorch-CycleGAN-and-pix2pix run folder
    (or one of its files) holding generators and discriminators (:func:`check_upstream_teacher`).
    UserError (one line) for a file that does not fit, before anything is written."""
    path = opt.pretrain_path
    record = read_checkpoint(path, "--pretrain_path")
    model = opt.model
    if record.model not in (None, model) and not record.lone_generator:
        raise UserError(f"--pretrain_path {path} is a {record.model} model but --model is {model}: "
                        f"give a {model} teacher")
    if record.kind == "upstream":
        check_upstream_teacher(opt, record)
    names = MODELS[model].generator_names + MODELS[model].discriminator_names
    missing = missing_nets(record.nets, record.configs, names)
    if missing:
        raise UserError(f"--pretrain_path {path} has no {', '.join(missing)}: it is not a {model} "
                        "teacher (give the model_best.pth of a train.py run)")
    configs = {n: dict(record.configs[n]) for n in names}
    want_family = families.for_netG(opt.netG).family
    for name in MODELS[model].generator_names:
        config = configs[name]
        if config.get("family") != want_family:
            raise UserError(f"--pretrain_path {path}: {name} is a {config.get('family')} generator but "
                            f"--netG {opt.netG} distils from a {want_family} teacher; give a {model} teacher of "
                            "the same --netG")
        if config.get("mask"):
            raise UserError(f"--pretrain_path {path} is a mask-search checkpoint; the teacher must be a plain "
                            "trained model (train.py without --mask)")
        if opt.pretrain_ngf is not None and config.get("ngf") != opt.pretrain_ngf:
            raise UserError(f"--pretrain_ngf {opt.pretrain_ngf} disagrees with the teacher {path}, whose {name} "
                            f"has ngf {config.get('ngf')}: drop --pretrain_ngf or give the matching teacher")
    teacher_direction = record.options.get("direction")
    if teacher_direction not in (None, opt.direction):
        raise UserError(f"--pretrain_path {path} was trained with --direction {teacher_direction} but "
                        f"--direction is {opt.direction}: use the teacher's direction")
    nets = {}
    for name in names:
        build = build_generator if name in MODELS[model].generator_names else build_discriminator
        nets[name] = load_strict(build(configs[name]), record.nets[name], f"--pretrain_path {path}: {name}")
    for name in MODELS[model].discriminator_names:
        missing = {ATTENTION_D_LAYER, DISTILL_D_LAYER} - set(nets[name].layers)
        if missing:
            raise UserError(f"--pretrain_path {path}: {name} has no {sorted(missing)} (it needs 3 layers)")
    log.info("teacher loaded from %s (ngf %s)", path,
             ", ".join(f"{n} {configs[n].get('ngf')}" for n in MODELS[model].generator_names))
    return Teacher(nets, configs, path).to(device)
