"""The small life cycle every model follows; train.py, test.py and prune.py only use this interface.

``set_input(batch)`` -> ``optimize_parameters()`` (forward, G step, D step) -> ``get_current_losses()`` /
``get_current_visuals()``; ``state_dict()`` / ``load_state_dict()`` for checkpoints;
``generators()`` for evaluation. Extra generator objectives (mask sparsity, distillation) are attached by
the stage that uses them with ``add_loss_term(term)``: callables ``term() -> {name: scalar tensor}``
summed into the generator loss and logged.

Precision and parallelism live here too: with ``--amp`` the forward passes and losses run under
``torch.autocast`` (bf16, or fp16 with a gradient scaler) while the parameters, optimiser states,
mask weights and mask losses stay fp32; ``--channels_last`` stores the networks and inputs in NHWC.
Under torchrun every gradient is averaged over the processes before each optimiser step
(:func:`util.distributed.average_gradients`).

A model class also states its facts, which every other module reads instead of branching on the
model's name: its generator family, its data layout, whether its discriminator is conditional, its
discriminators, and its per-direction table (:class:`Direction`: which generator, which
discriminator, which input and output, which early-stop option).
"""
import logging
import math
from dataclasses import dataclass

import torch
from torch import nn

from models.networks import build_discriminator, build_generator, check_fits, load_strict
from util import distributed
from util.errors import UserError, first_line

log = logging.getLogger("dmad")


PRECISION = {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}  # the name of each amp_dtype()


def amp_dtype(opt, device):
    """The autocast dtype ``--amp`` asks for on ``device``, or None without ``--amp``: ``bf16`` /
    ``fp16`` as given; ``auto`` = bf16 where the device supports it (every CPU, Ampere and later
    GPUs), else fp16."""
    if not getattr(opt, "amp", False):
        return None
    choice = getattr(opt, "amp_dtype", "auto")
    if choice == "auto":
        bf16 = device.type != "cuda" or torch.cuda.is_bf16_supported()
        return torch.bfloat16 if bf16 else torch.float16
    return {"bf16": torch.bfloat16, "fp16": torch.float16}[choice]


LR_POLICIES = ("linear", "step", "plateau", "cosine")  # --lr_policy


class LRSchedule:
    """The learning rate of each epoch, recomputed from the options (never read back from an
    optimiser), so a run resumed with a longer schedule gets the right rate. ``plateau`` keeps its own
    small state (best value, bad epochs, factor), which is checkpointed."""

    def __init__(self, opt):
        self.opt = opt
        self.plateau = {"best": math.inf, "bad": 0, "factor": 1.0}

    def factor(self, epoch):
        """Multiplier of --lr during ``epoch`` (1-based)."""
        o = self.opt
        if o.lr_policy == "linear":
            return 1.0 - max(0, epoch - o.n_epochs) / float(o.n_epochs_decay + 1)
        if o.lr_policy == "step":
            return 0.1 ** ((epoch - 1) // o.lr_decay_iters)
        if o.lr_policy == "cosine":
            return 0.5 * (1 + math.cos(math.pi * (epoch - 1) / max(1, o.n_epochs)))
        return self.plateau["factor"]

    def observe(self, value):
        """Plateau policy: feed the epoch's monitored value (lower is better); x0.2 after 5 bad epochs."""
        p = self.plateau
        if value < p["best"] * (1 - 0.01):
            p["best"], p["bad"] = value, 0
        else:
            p["bad"] += 1
            if p["bad"] > 5:
                p["factor"] *= 0.2
                p["bad"] = 0

    def state_dict(self):
        return dict(self.plateau)

    def load_state_dict(self, state):
        self.plateau = dict(state)


OTHER_SIDE = {"A": "B", "B": "A"}


@dataclass(frozen=True)
class Direction:
    """One translation direction of a model: what train.py, prune.py, test.py, the search, the
    distillation, the evaluation and the legacy loader need to know about it.

    ``name``: "AtoB" or "BtoA", the key of ``generators()``, of scores and of best models;
    ``generator`` / ``discriminator``: the net names of its generator and of the discriminator that
    judges that generator's output; ``real`` / ``fake``: the model attributes holding the generator's
    input and output in a training step (also the names of the visuals); ``side``: the side ("A"/"B")
    of a data batch the generator reads under ``--direction AtoB``; ``macs_option``: the option
    holding its early-stop MACs threshold (method.md §4.3); ``stop_message``: the log line of that
    early stop (the original's wording).
    """

    name: str
    generator: str
    discriminator: str
    real: str
    fake: str
    side: str
    macs_option: str
    stop_message: str

    def data_side(self, direction_option):
        """The side ("A"/"B") of a data batch the generator reads under ``--direction``."""
        return self.side if direction_option == "AtoB" else OTHER_SIDE[self.side]

    def target_side(self, direction_option):
        """The side ("A"/"B") of a data batch that holds the generator's target domain."""
        return OTHER_SIDE[self.data_side(direction_option)]


class BaseModel:
    """Networks + losses + optimisers of one model, and the model's facts (class attributes and
    class methods, readable without building the model)."""

    name = ""
    objective = ""  # the loss set, for display ("cyclegan": unpaired, "pix2pix": paired)
    generator_family = None  # the family class --netG chooses among (models/families)
    dataset_mode = ""  # the data layout of training: "unaligned" or "aligned"
    eval_phase = ""  # the split evaluation scores: "test" or "val"
    conditional_d = False  # the discriminator judges (input ++ output) channel stacks
    discriminator_norm = "instance"
    generator_names = ()  # net names of the generators, in checkpoint order
    discriminator_names = ()
    loss_names = ()
    visual_names = ()

    # ----------------------------------------------------------------- facts
    @classmethod
    def add_options(cls, group):
        """Declare the options of this model into the argparse ``group`` (upstream's
        ``modify_commandline_options``); a subclass inherits its parent's. None by default."""

    @classmethod
    def directions(cls, direction="AtoB"):
        """The per-direction table under ``--direction``: a tuple of :class:`Direction`, in
        ``generator_names`` order."""
        raise NotImplementedError

    @classmethod
    def discriminator_configs(cls, opt):
        """``{net name: NLayerDiscriminator arguments}`` of the model's discriminators."""
        raise NotImplementedError

    @classmethod
    def check_options(cls, opt):
        """UserError (one line) for options this model cannot train with; called by the parser."""

    def __init__(self, opt, device, gen_configs, disc_configs):
        self.opt = opt
        self.device = device
        self.isTrain = opt.isTrain
        self.nets = nn.ModuleDict()
        self.configs = {}
        for name, config in gen_configs.items():
            self.nets[name] = build_generator(config).to(device)
            self.configs[name] = dict(config, widths=dict(self.nets[name].widths))
        for name, config in disc_configs.items():
            self.nets[name] = build_discriminator(config).to(device)
            self.configs[name] = dict(config)
        self.loss_terms = []
        self.extra_losses = {}
        # generator features by role to record during the main translation pass (distillation)
        self.feature_names = {}
        self.features = {}
        self.optimizers = {}
        self.schedule = LRSchedule(opt)
        self.amp_dtype = amp_dtype(opt, device)
        # fp16 gradients underflow without loss scaling; bf16 has fp32's exponent range
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.amp_dtype == torch.float16)
        if self.amp_dtype is not None and opt.isTrain:
            log.info("--amp: %s autocast%s", PRECISION[self.amp_dtype],
                     " with a gradient scaler" if self.scaler.is_enabled() else "")
        self.memory_format = torch.channels_last if getattr(opt, "channels_last", False) else torch.contiguous_format
        if self.memory_format == torch.channels_last:
            self.nets.to(memory_format=torch.channels_last)
        if self.isTrain:
            self.setup_optimizers()

    # ----------------------------------------------------------------- life cycle
    def setup_optimizers(self):
        betas = (self.opt.beta1, 0.999)
        gen = [p for n in self.generator_names for p in self.nets[n].parameters()]
        disc = [p for n in self.discriminator_names for p in self.nets[n].parameters()]
        self.optimizers = {"G": torch.optim.Adam(gen, lr=self.opt.lr, betas=betas),
                           "D": torch.optim.Adam(disc, lr=self.opt.lr, betas=betas)}

    def set_learning_rate(self, epoch):
        """Set every optimiser's rate for ``epoch`` from the options; returns it."""
        lr = self.opt.lr * self.schedule.factor(epoch)
        for optimizer in self.optimizers.values():
            for group in optimizer.param_groups:
                group["lr"] = lr
        return lr

    def set_input(self, batch):
        """Take a batch of the data loader; ``--direction BtoA`` swaps the roles of A and B."""
        a_to_b = self.opt.direction == "AtoB"
        self.real_A = batch["A" if a_to_b else "B"].to(self.device, memory_format=self.memory_format)
        self.real_B = batch["B" if a_to_b else "A"].to(self.device, memory_format=self.memory_format)
        self.image_paths = batch["A_paths" if a_to_b else "B_paths"]

    def translate(self, name, x):
        """``nets[name](x)``, recording the features ``feature_names[name]`` into ``features[name]``."""
        wanted = self.feature_names.get(name)
        if not wanted:
            return self.nets[name](x)
        out, self.features[name] = self.nets[name].forward_features(x, wanted)
        return out

    def optimize_parameters(self):
        raise NotImplementedError

    # ----------------------------------------------------------------- precision and processes
    def autocast(self):
        """The autocast context of the forward passes and losses (a no-op without ``--amp``)."""
        return torch.autocast(self.device.type, dtype=self.amp_dtype or torch.float32,
                              enabled=self.amp_dtype is not None)

    def backward(self, loss):
        """``loss.backward()``, scaled for fp16 autocast."""
        self.scaler.scale(loss).backward()

    def step(self, key):
        """One step of optimiser ``key`` ("G" or "D"): gradients averaged over the processes first."""
        optimizer = self.optimizers[key]
        distributed.average_gradients([p for group in optimizer.param_groups for p in group["params"]])
        self.scaler.step(optimizer)

    def end_step(self):
        """After both optimiser steps: the loss scale's update, and the BatchNorm running statistics
        averaged over the processes so every rank holds the same buffers."""
        self.scaler.update()
        distributed.average_buffers(self.nets.values())

    def add_loss_term(self, term):
        """Attach an extra generator objective: ``term()`` -> ``{name: scalar tensor}``, called once per
        generator step after the forward pass; its values are summed into the generator loss (after
        the model's own losses, in the order the terms were attached) and logged under their names.
        The stages attach them: train.py the mask search's sparsity losses
        (``MaskSearch.loss_term``), pipeline/finetune.py the distillation losses (``Distiller.loss``)."""
        if not callable(term):
            raise TypeError(f"a loss term is a callable returning {{name: scalar tensor}}, not {type(term).__name__}")
        self.loss_terms.append(term)

    def generator_extra_loss(self):
        """Sum of the registered loss terms; each term's value is kept for logging."""
        total = 0.0
        self.extra_losses = {}
        for term in self.loss_terms:
            for key, value in term().items():
                self.extra_losses[key] = value
                total = total + value
        return total

    def current_loss_tensors(self):
        """The step's losses as detached tensors (no host synchronisation; for running sums)."""
        losses = {k: getattr(self, "loss_" + k).detach() for k in self.loss_names}
        losses.update({k: v.detach() if torch.is_tensor(v) else torch.tensor(float(v))
                       for k, v in self.extra_losses.items()})
        return losses

    def get_current_losses(self):
        return {k: float(v) for k, v in self.current_loss_tensors().items()}

    def get_current_visuals(self):
        return {k: getattr(self, k).detach() for k in self.visual_names if hasattr(self, k)}

    def generators(self):
        """{direction: generator} for evaluation ('AtoB'/'BtoA'), from the per-direction table."""
        return {d.name: self.nets[d.generator] for d in self.directions(self.opt.direction)}

    def train(self):
        self.nets.train()

    def eval(self):
        self.nets.eval()

    @staticmethod
    def set_requires_grad(nets, flag):
        for net in nets:
            for p in net.parameters():
                p.requires_grad_(flag)

    # ----------------------------------------------------------------- state
    def state_dict(self):
        """Networks, their architectures, optimisers and the LR-schedule state (plain data)."""
        return {"nets": {k: v.state_dict() for k, v in self.nets.items()},
                "configs": {k: dict(v) for k, v in self.configs.items()},
                "optimizers": {k: v.state_dict() for k, v in self.optimizers.items()},
                "lr_state": self.schedule.state_dict(),
                **({"grad_scaler": self.scaler.state_dict()} if self.scaler.is_enabled() else {})}

    def process_state(self):
        """The state of this process alone, beside the networks every process shares under torchrun
        (plain data; e.g. CycleGAN's image pools): a checkpoint holds one per process. Empty here."""
        return {}

    def load_process_state(self, state):
        """Restore :meth:`process_state`'s entries from ``state`` (a checkpoint or one process's record)."""

    def load_state_dict(self, state, source="checkpoint", optimizers=True):
        """Load networks (strictly) and, when present and wanted, optimisers; a checkpoint of another
        architecture is a UserError, never a partial load."""
        check_configs(self.configs, state.get("configs", {}), source)
        for name, net in self.nets.items():  # every network is checked before any is loaded
            if name not in state["nets"]:
                raise UserError(f"{source} has no {name}: it is not a {self.name} checkpoint")
            check_fits(net, state["nets"][name], f"{source}: {name}", "this model")
        for name, net in self.nets.items():
            load_strict(net, state["nets"][name], f"{source}: {name}", "this model")
        if optimizers and self.optimizers and state.get("optimizers"):
            stored = state["optimizers"]
            missing = [key for key in self.optimizers if not isinstance(stored, dict) or key not in stored]
            if missing:
                raise UserError(f"{source} has no optimiser state for {', '.join(missing)}: it cannot be resumed; "
                                "start a new run from its networks instead")
            for key, optimizer in self.optimizers.items():
                try:
                    optimizer.load_state_dict(stored[key])
                except (ValueError, KeyError, TypeError, RuntimeError) as err:
                    raise UserError(f"{source}: the optimiser state {key} does not fit this model "
                                    f"({first_line(err)}): resume with the options it was trained with") from None
        if state.get("lr_state"):
            self.schedule.load_state_dict(state["lr_state"])
        if optimizers and state.get("grad_scaler"):
            if self.scaler.is_enabled():
                self.scaler.load_state_dict(state["grad_scaler"])
            else:
                log.warning("%s was trained with fp16 --amp; this run is %s: its gradient scaler is not used",
                            source, PRECISION[self.amp_dtype])


def check_configs(expected, stored, source):
    """Compare stored network architectures with the ones the options build; UserError on mismatch."""
    for name, want in expected.items():
        have = stored.get(name)
        if have is None:
            raise UserError(f"{source} has no {name}: it holds {sorted(stored) or 'no networks'}; "
                            "check --model")
        for key in sorted(set(want) | set(have)):
            if key == "widths" and want.get("widths") is not None and have.get("widths") is not None:
                continue  # widths are compared by the strict state-dict load, with the tensor shapes
            if want.get(key) != have.get(key):
                raise UserError(f"{source}: {name} has {key}={have.get(key)!r} but the options give "
                                f"{want.get(key)!r}; pass the options the checkpoint was trained with")
