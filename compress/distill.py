"""Co-attention and discriminator distillation losses for fine-tuning a pruned model (method.md §7).

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

The fine-tune stage that builds the student and trains it with these losses is pipeline/finetune.py.
"""
import logging

import torch
import torch.nn.functional as F
from torch import nn

from util.errors import UserError
from util.option_types import flag

log = logging.getLogger("dmad")

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


def check_generator_fits(name, student, teacher):
    """UserError when the teacher's generator ``name`` cannot be distilled into the student's
    (another family, depth or channel count): the student's features are matched to the teacher's
    layer by layer (method.md §7). ``student``, ``teacher``: generator modules."""
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


# ---------------------------------------------------------------------------------------- distiller

class Distiller:
    """Adds the distillation losses of a teacher to a (pruned) student model.

    ``Distiller(opt, model, teacher)`` takes the frozen :class:`Teacher` (pipeline.finetune.load_teacher
    reads it from ``--pretrain_path``) and asks the model to record its generators' features by role. Its loss term
    :meth:`loss`, which the fine-tune stage attaches with ``model.add_loss_term(distiller.loss)``,
    gives ``{"attention_distill": ..., "discriminator_distill": ...}`` (weighted by their options; a
    term with weight 0 is neither computed nor logged).
    """

    def __init__(self, opt, model, teacher):
        self.opt, self.model = opt, model
        self.lambda_att = opt.lambda_attention_distill
        self.lambda_dd = opt.lambda_discriminator_distill
        self.teacher = teacher
        # per direction: student generator, teacher discriminator, real input, student fake
        self.pairs = [(d.generator, d.discriminator, d.real, d.fake) for d in model.directions(opt.direction)]
        # target = alpha * teacher-G map + beta * teacher-D map (0.5 / 0.5; the mobile pix2pix 0.5 / 0.25)
        self.alpha, self.beta = model.attention_weights
        self.conditional = model.conditional_d  # a conditional D judges (input, output) pairs
        self.roles = {}
        for g, _, _, _ in self.pairs:
            student, teacher_g = model.nets[g], self.teacher.nets[g]
            check_generator_fits(g, student, teacher_g)
            self.roles[g] = teacher_g.distill_roles()
            if self.lambda_att > 0:
                model.feature_names[g] = list(self.roles[g])

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


def distills(opt):
    """Whether the fine-tune distils: a positive --lambda_attention_distill or --lambda_discriminator_distill."""
    return opt.lambda_attention_distill > 0 or opt.lambda_discriminator_distill > 0


def needs_teacher(opt):
    """Whether the fine-tune reads the teacher of --pretrain_path: to distil, or for --use_pretrain_d."""
    return distills(opt) or bool(opt.use_pretrain_d)


def add_options(group):
    """The options of the distillation and its teacher (prune.py --finetune; docs/method.md §7),
    declared into the argparse ``group`` options/ gives this owner."""
    group.add_argument("--pretrain_path", type=str, default=None,
                       help="The path of pretrain (teacher) model for distillation. default: None")
    group.add_argument("--pretrain_ngf", type=int, default=None,
                       help="teacher generator width; read from the teacher checkpoint, and must agree when given")
    flag(group, "--use_pretrain_d", "initialise the fine-tuned student discriminator(s) from the teacher's "
         "instead of the search checkpoint's")
    group.add_argument("--lambda_attention_distill", "--lambda_distill", dest="lambda_attention_distill",
                       type=float, default=0.0, help="weight for co-attention distillation. default: 0")
    group.add_argument("--lambda_discriminator_distill", "--lambda_d", dest="lambda_discriminator_distill",
                       type=float, default=0.0, help="weight for distill discriminator's feature map. default: 0.0")
    flag(group, "--attention_normal", "normalize the attention maps", default=True)
