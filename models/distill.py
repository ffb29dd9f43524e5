"""Fine-tuning a pruned model with co-attention and discriminator distillation (method.md §7).

A frozen *teacher* (a plain model of the same family, loaded from ``--pretrain_path``) guides the
pruned *student*:

* co-attention: for each hooked generator layer i, the student's attention map
  ``A(F) = mean_c F^2`` is pulled towards ``0.5 A(teacher G layer i) + 0.5 A(teacher D act2 on the
  student image)``; CycleGAN pairs G_A's layers with D_A and G_B's with D_B (8 terms), pix2pix has 4;
* discriminator distillation: the Frobenius norm of ``teacher D act4(student image) - teacher D
  act4(teacher image)``.

Layers are chosen by role, not by position (each family names its roles: ``distill_roles``), so a
student whose pruning removed residual blocks is hooked at the same places as the teacher (method.md
§13.21). The student generator runs once per
step: its features are recorded by ``BaseModel.translate`` during the main translation pass.

Decisions: the teacher is in eval mode and never trained (method.md §13.23); the teacher-D part of
the target is *not* detached, so the attention loss also trains the student through the frozen D's
view of its image, as in the original; one frozen teacher D serves both sides of the discriminator
distillation (the original's second teacher copy had identical weights).
"""
import logging
import os

import torch
import torch.nn.functional as F
from torch import nn

from models import MODELS, create_model, families
from models.networks import build_discriminator, build_generator, init_weights
from util import distributed
from util.checkpoint import is_native, load_checkpoint
from util.errors import UserError
from util.seed import seed_everything

log = logging.getLogger("dmad")

# (student generator, teacher discriminator, real input, student fake) per direction
PAIRS = {"cyclegan": (("G_A", "D_A", "real_A", "fake_B"), ("G_B", "D_B", "real_B", "fake_A")),
         "pix2pix": (("G", "D", "real_A", "fake_B"),)}  # by objective
ATTENTION_D_LAYER = "act2"  # the original's D model.4
DISTILL_D_LAYER = "act4"  # the original's D model.10


# ---------------------------------------------------------------------------------------- losses

def attention_map(f):
    """Channel mean of the squared feature: [B, C, H, W] -> [B, 1, H, W]."""
    return f.pow(2).mean(1, keepdim=True)


def resize_map(m, size):
    """Area-resize a [B, 1, H, W] map to ``size`` per sample (differentiable; the original resized
    batch element 0 through uint8 with OpenCV, method.md §13.22)."""
    size = tuple(size)
    return m if tuple(m.shape[-2:]) == size else F.adaptive_avg_pool2d(m, size)


def attention_loss(target, student, normalize=True):
    """Distance of two [B, 1, H, W] maps: with ``normalize`` each sample's map is flattened and
    L2-normalised (eps 1e-12) and the squared difference is averaged over all B*H*W entries;
    otherwise plain MSE."""
    if target.shape != student.shape:
        raise ValueError(f"attention maps differ in shape: {tuple(target.shape)} vs {tuple(student.shape)}")
    if normalize:
        target = F.normalize(target.flatten(1), dim=1, eps=1e-12)
        student = F.normalize(student.flatten(1), dim=1, eps=1e-12)
    return F.mse_loss(student, target)


def discriminator_distill_loss(student, teacher):
    """Frobenius norm of the whole batch difference, unsquared and unaveraged as in the original
    (so it grows with batch size and resolution, method.md §13.33)."""
    return torch.linalg.vector_norm(student - teacher)


def discriminator_features(net, x, names):
    """Activations ``names`` of an NLayerDiscriminator, running only as far as the last one needed."""
    wanted, feats = set(names), {}
    for key, layer in net.layers.items():
        x = layer(x)
        if key in wanted:
            feats[key] = x
            if len(feats) == len(wanted):
                break
    return feats


# ---------------------------------------------------------------------------------------- teacher

class Teacher(nn.Module):
    """The frozen teacher networks (``nets``: G_A, G_B, D_A, D_B or G, D) and their configs.

    Always in eval mode (no dropout, BatchNorm running statistics untouched) and never trained: its
    parameters do not require gradients, yet gradients still flow *through* its discriminator to the
    student image."""

    def __init__(self, nets, configs, source):
        super().__init__()
        self.nets = nn.ModuleDict(nets)
        self.configs = configs
        self.source = source
        for p in self.parameters():
            p.requires_grad_(False)
        self.train(False)

    def train(self, mode=True):
        return super().train(False)


def _teacher_state(path):
    state = load_checkpoint(path)
    if not is_native(state):
        from models.legacy import load_model_state  # the original code's layouts

        state = load_model_state(state, path)
    if not isinstance(state, dict) or "nets" not in state or "configs" not in state:
        raise UserError(f"--pretrain_path {path} holds no networks: give a model_best.pth or "
                        "checkpoints/model_<epoch>.pth of a plain training run")
    return state


def load_teacher(opt, device):
    """The teacher of ``--pretrain_path`` for ``--model``, checked against the options and frozen."""
    path = opt.pretrain_path
    state = _teacher_state(path)
    model = opt.model
    if state.get("model") not in (None, model):
        raise UserError(f"--pretrain_path {path} is a {state['model']} model but --model is {model}: "
                        f"give a {model} teacher")
    names = MODELS[model].generator_names + MODELS[model].discriminator_names
    missing = [n for n in names if n not in state["nets"] or n not in state["configs"]]
    if missing:
        raise UserError(f"--pretrain_path {path} has no {', '.join(missing)}: it is not a {model} "
                        "teacher (give the model_best.pth of a train.py run)")
    configs = {n: dict(state["configs"][n]) for n in names}
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
    teacher_direction = (state.get("options") or {}).get("direction")
    if teacher_direction not in (None, opt.direction):
        raise UserError(f"--pretrain_path {path} was trained with --direction {teacher_direction} but "
                        f"--direction is {opt.direction}: use the teacher's direction")
    nets = {}
    for name in names:
        build = build_generator if name in MODELS[model].generator_names else build_discriminator
        net = build(configs[name])
        try:
            net.load_state_dict(state["nets"][name])
        except RuntimeError as err:
            first = " ".join(str(err).strip().splitlines()[:2])[:200]
            raise UserError(f"--pretrain_path {path}: {name} does not fit its recorded architecture ({first})") \
                from None
        nets[name] = net
    for name in MODELS[model].discriminator_names:
        missing = {ATTENTION_D_LAYER, DISTILL_D_LAYER} - set(nets[name].layers)
        if missing:
            raise UserError(f"--pretrain_path {path}: {name} has no {sorted(missing)} (it needs 3 layers)")
    log.info("teacher loaded from %s (ngf %s)", path,
             ", ".join(f"{n} {configs[n].get('ngf')}" for n in MODELS[model].generator_names))
    return Teacher(nets, configs, path).to(device)


# ---------------------------------------------------------------------------------------- distiller

class Distiller:
    """Adds the distillation losses of a teacher to a (pruned) student model.

    ``Distiller(opt, model, device)`` loads the teacher from ``--pretrain_path`` (or takes
    ``teacher``) and asks the model to record its generators' features by role. Its loss term
    :meth:`loss`, which the fine-tune stage attaches with ``model.add_loss_term(distiller.loss)``,
    gives ``{"attention_distill": ..., "discriminator_distill": ...}`` (weighted by their options; a
    term with weight 0 is neither computed nor logged).
    """

    def __init__(self, opt, model, device, teacher=None):
        self.opt, self.model = opt, model
        self.lambda_att = opt.lambda_attention_distill
        self.lambda_dd = opt.lambda_discriminator_distill
        if opt.pretrain_path is None and teacher is None:
            raise UserError("distillation needs a teacher: give --pretrain_path <teacher model_best.pth> or set "
                            "--lambda_attention_distill and --lambda_discriminator_distill to 0")
        self.teacher = teacher if teacher is not None else load_teacher(opt, device)
        self.pairs = PAIRS[MODELS[opt.model].objective]
        # target = alpha * teacher-G map + beta * teacher-D map (0.5 / 0.5; the mobile pix2pix 0.5 / 0.25)
        self.alpha, self.beta = MODELS[opt.model].attention_weights
        self.conditional = MODELS[opt.model].objective == "pix2pix"  # the pix2pix D judges (input, output) pairs
        self.roles = {}
        for g, _, _, _ in self.pairs:
            student, teacher_g = model.nets[g], self.teacher.nets[g]
            self._check_compatible(g, student, teacher_g)
            self.roles[g] = teacher_g.distill_roles()
            if self.lambda_att > 0:
                model.feature_names[g] = list(self.roles[g])

    def _check_compatible(self, name, student, teacher):
        if student.family != teacher.family:
            raise UserError(f"the teacher's {name} is a {teacher.family} generator but the student's is a "
                            f"{student.family} one: give a teacher trained with the same --netG")
        depth = student.depth_name
        if getattr(student, depth) != getattr(teacher, depth):
            raise UserError(f"the teacher's {name} has {depth}={getattr(teacher, depth)} but the student's has "
                            f"{getattr(student, depth)}: give a teacher trained with the same --netG")
        if (student.input_nc, student.output_nc) != (teacher.input_nc, teacher.output_nc):
            raise UserError(f"the teacher's {name} maps {teacher.input_nc}->{teacher.output_nc} channels, the "
                            f"student's {student.input_nc}->{student.output_nc}: use the same --input_nc/--output_nc")

    def _d_input(self, real, image):
        return torch.cat((real, image), 1) if self.conditional else image

    def loss(self):
        """The weighted distillation losses of the current step (model.forward() has run)."""
        m = self.model
        if self.lambda_att <= 0 and self.lambda_dd <= 0:
            return {}
        att = dd = 0.0
        d_names = ([ATTENTION_D_LAYER] if self.lambda_att > 0 else []) + \
                  ([DISTILL_D_LAYER] if self.lambda_dd > 0 else [])
        for g, d, real_name, fake_name in self.pairs:
            real, fake = getattr(m, real_name), getattr(m, fake_name)
            teacher_g, teacher_d = self.teacher.nets[g], self.teacher.nets[d]
            # the teacher's images and features are constants of the loss
            with torch.no_grad():
                teacher_image, teacher_feats = teacher_g.forward_features(
                    real, self.roles[g] if self.lambda_att > 0 else ())
            # not detached: the D map of the student image is part of the target and carries gradient
            # through the frozen teacher D back to the student (as in the original)
            d_feats = discriminator_features(teacher_d, self._d_input(real, fake), d_names)
            if self.lambda_att > 0:
                d_map = attention_map(d_feats[ATTENTION_D_LAYER])
                student_feats = m.features[g]
                for role in self.roles[g]:
                    t_map = attention_map(teacher_feats[role])
                    target = self.alpha * t_map + self.beta * resize_map(d_map, t_map.shape[-2:])
                    att = att + attention_loss(target, attention_map(student_feats[role]), self.opt.attention_normal)
            if self.lambda_dd > 0:
                # the same frozen D stands for the original's second teacher copy: identical weights
                with torch.no_grad():
                    reference = discriminator_features(teacher_d, self._d_input(real, teacher_image),
                                                       [DISTILL_D_LAYER])[DISTILL_D_LAYER]
                dd = dd + discriminator_distill_loss(d_feats[DISTILL_D_LAYER], reference)
        losses = {}
        if self.lambda_att > 0:
            losses["attention_distill"] = att * self.lambda_att
        if self.lambda_dd > 0:
            losses["discriminator_distill"] = dd * self.lambda_dd
        return losses


# ---------------------------------------------------------------------------------------- fine-tuning

def _finetune_resume(opt, run):
    """The checkpoint ``--continue_train`` resumes: this run's newest fine-tune checkpoint.

    prune.py's ``--load_path`` names the *search* checkpoint, so it is not used here; the run folder
    is searched instead (``latest.pth``, then ``model_<e>.pth`` newest first), skipping the pruned
    ``model_0.pth`` and anything else that is not a fine-tune checkpoint."""
    for path in [run.latest_path] + run.numbered_checkpoints():
        if not os.path.isfile(path):
            continue
        state = load_checkpoint(path)
        if is_native(state) and state.get("stage") == "finetune" and "epoch" in state:
            if state.get("model") != opt.model:
                raise UserError(f"{path} holds a {state.get('model')} model but --model {opt.model} was given")
            return path, state
    raise UserError(f"--continue_train found no fine-tune checkpoint in {run.ckpt_dir}: run prune.py --finetune "
                    "without --continue_train first")


def prepare_finetune(opt, device):
    """Check the fine-tuning options and load what they name, before anything is written: the
    teacher (when distillation or ``--use_pretrain_d`` needs it) and, with ``--continue_train``, the
    fine-tune checkpoint to resume. Returns ``{"teacher": Teacher | None, "resume": (path, state) | None}``;
    every problem is a UserError."""
    distill = opt.lambda_attention_distill > 0 or opt.lambda_discriminator_distill > 0
    if distill and not opt.pretrain_path:
        raise UserError("distillation (--lambda_attention_distill / --lambda_discriminator_distill > 0) needs a "
                        "teacher: give --pretrain_path <teacher model_best.pth> or set both weights to 0")
    if opt.use_pretrain_d and not opt.pretrain_path:
        raise UserError("--use_pretrain_d takes the discriminators of the teacher: give --pretrain_path")
    if opt.pretrain_path and not distill and not opt.use_pretrain_d:
        log.info("--pretrain_path is given but both distillation weights are 0: the teacher is not used")
    from util.training import Run

    resume = _finetune_resume(opt, Run(opt)) if opt.continue_train else None
    teacher = load_teacher(opt, device) if distill or opt.use_pretrain_d else None
    from data import create_dataset

    dataset = create_dataset(opt)  # a bad --dataroot fails before prune.py writes model_0.pth
    return {"teacher": teacher, "resume": resume, "dataset": dataset}


def finetune(opt, pruned_state, device, prepared=None, evaluator=None):
    """Fine-tune the pruned model ``pruned_state`` (the native dict prune.py saved as model_0.pth).

    The student is built with the pruned widths (``pruned_state["configs"]``), takes the pruned
    generators and the search discriminators (or the teacher's with ``--use_pretrain_d``), is
    re-initialised with ``--scratch``, and is trained by ``util.training.Trainer`` with stage
    ``"finetune"`` in ``<checkpoints_dir>/<name>/``; distillation runs when a distillation weight is
    positive (its losses attached to the model). ``--continue_train`` resumes this run's newest fine-tune checkpoint. ``prepared`` is
    the result of :func:`prepare_finetune` and ``evaluator`` the caller's metrics.Evaluator (both
    built here when not given)."""
    from metrics.evaluate import build_evaluator
    from util.training import Run, Trainer
    from util.visualizer import Visualizer

    model_cls = MODELS[opt.model]
    nets_needed = model_cls.generator_names + model_cls.discriminator_names
    nets, configs = pruned_state.get("nets", {}), pruned_state.get("configs", {})
    missing = [n for n in nets_needed if n not in nets or n not in configs]
    if missing:
        raise UserError(f"the pruned model has no {', '.join(missing)}: it is not a {opt.model} model; "
                        "check --model")
    prepared = prepare_finetune(opt, device) if prepared is None else prepared
    teacher, resume = prepared["teacher"], prepared["resume"]
    distill = opt.lambda_attention_distill > 0 or opt.lambda_discriminator_distill > 0
    run = Run(opt)
    seed_everything(opt.seed)

    gen_configs = {n: dict(pruned_state["configs"][n]) for n in model_cls.generator_names}
    model = create_model(opt, device, gen_configs=gen_configs)
    nets, configs = dict(nets), dict(configs)
    if opt.use_pretrain_d and not opt.scratch:
        for name in model_cls.discriminator_names:
            if teacher.configs[name] != model.configs[name]:
                raise UserError(f"--use_pretrain_d: the teacher's {name} ({_describe(teacher.configs[name])}) does "
                                f"not fit the student's ({_describe(model.configs[name])}): give --ndf "
                                f"{teacher.configs[name].get('ndf')} or drop --use_pretrain_d")
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
    if distill:
        distiller = Distiller(opt, model, device, teacher=teacher)
        model.add_loss_term(distiller.loss)

    if evaluator is None and distributed.is_main():
        evaluator = build_evaluator(opt, device)
    main_rank = distributed.is_main()
    trainer = Trainer(opt, model, run, "finetune", visualizer=Visualizer(opt) if main_rank else None,
                      evaluator=evaluator, dataset=prepared.get("dataset"))
    if resume is not None:
        trainer.restore(resume[1], resume[0])
    distributed.prepare_model(model)
    log.info("Start Finetune....")
    log.info("The number of training images = %d", len(trainer.dataset))
    trainer.train()
    return None


def _describe(config):
    return ", ".join(f"{k} {config.get(k)}" for k in ("input_nc", "ndf", "n_layers", "norm"))
