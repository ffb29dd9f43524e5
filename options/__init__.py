"""Command-line options of train.py, test.py and prune.py, assembled from the groups their owners declare.

Each owner declares its options where it lives: the mask search (compress/mask_search.py), the
distillation and its teacher (compress/distill.py), the evaluation (metrics/evaluate.py), the display
(report/visualizer.py) and each model (``add_options`` of its class in models/, as upstream's
``modify_commandline_options``); the groups no single module owns are in options/shared.py. A script's
parser shows the groups that script and ``--model`` use (:data:`GROUPS`, ``--help``), and still accepts
every other option of the seed README's list (the original had one parser for all three scripts): one
given where it has no effect is named in one warning (:func:`warn_ignored_options`, e.g.
``--lambda_L1`` with ``--model cyclegan``). :func:`parse` validates the result up front
(options/validate.py); every problem is a :class:`util.errors.UserError` with a one-line message, and
returns read-only :class:`Options`: a stage that reads a checkpoint resolves the values the checkpoint
fixes once, into a copy (:func:`util.frozen.replace`), logs them and passes the copy on.
"""
import argparse
import logging
import sys
from dataclasses import dataclass
from typing import Callable, Optional, Tuple

from compress import distill, mask_search
from metrics import evaluate
from models import MODELS
from models.base_model import BaseModel
from options import shared
from util.frozen import Options
from options.validate import validate as _validate
from report import visualizer
from util.errors import ArgumentParser

log = logging.getLogger("dmad")

SCRIPTS = {"train": "train.py", "test": "test.py", "prune": "prune.py"}


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


@dataclass(frozen=True)
class Group:
    """One group of options: its ``title``, the owner's function that declares it into an argparse
    group, the scripts whose ``--help`` shows it, and where its options act (``effect``: a predicate
    on the parsed options and its description; None: wherever the script shows it)."""
    title: str
    declare: Callable
    scripts: Tuple[str, ...]
    effect: Optional[Tuple[Callable, str]] = None


ALL = tuple(SCRIPTS)
GROUPS = (
    Group("experiment", shared.experiment, ALL),
    Group("model", shared.model, ALL),
    Group("mask search", mask_search.add_options, ("train", "prune"), (_searches, SEARCH)),
    Group("data", shared.data, ALL),
    Group("display", visualizer.add_options, ("train", "prune"), (_trains, TRAINING)),
    Group("training", shared.training, ("train", "prune"), (_trains, TRAINING)),
    Group("distillation", distill.add_options, ("prune",), (_finetunes, FINETUNE)),
    Group("evaluation", evaluate.add_options, ALL),
    Group("test output", shared.test_output, ("test",)),
    Group("pruning and fine-tuning", shared.pruning, ("prune",)),
)

# Options that act elsewhere than their group says: (predicate(opt), where).
EFFECT = {
    "load_path": (lambda o: o.script != "train" or bool(o.continue_train),
                  "test.py, prune.py and train.py --continue_train"),
    "init_path": (lambda o: o.script == "train", "train.py"),
    # the architecture of test.py and prune.py comes from the checkpoint
    "ngf": (lambda o: o.script == "train", "train.py (test.py and prune.py read it from the checkpoint)"),
    "no_dropout": (lambda o: o.script == "train", "train.py (test.py and prune.py read it from the checkpoint)"),
    "norm": (lambda o: o.script == "train", "train.py (test.py and prune.py read it from the checkpoint)"),
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
    "overwrite": (lambda o: o.script != "test", "train.py and prune.py (their run folders)"),
    "finetune": (lambda o: o.script == "prune", "prune.py"),
    "scratch": (lambda o: o.script == "prune", "prune.py --finetune"),
    "amp_dtype": (lambda o: _trains(o) and bool(o.amp), TRAINING + " with --amp"),
    "display_winsize": (lambda o: True, "every script (the size of test.py's images too)"),
}
# values that switch an option's feature off: given where the feature does not act, they agree with
# the script and are not warned about (``--display_id 0`` turns visdom off anywhere)
_OFF_VALUES = {"display_id": lambda v: v <= 0}


def _model_owners():
    """The model classes that declare options, each once (a subclass that adds none shares its parent's)."""
    owners = []
    for cls in MODELS.values():
        owner = next(c for c in cls.__mro__ if "add_options" in vars(c))
        if owner is not BaseModel and owner not in owners:
            owners.append(owner)
    return owners


class _Hidden:
    """An argparse group whose options parse but stay out of ``--help``."""

    def __init__(self, group):
        self.group = group

    def add_argument(self, *args, **kwargs):
        kwargs["help"] = argparse.SUPPRESS
        return self.group.add_argument(*args, **kwargs)


def _chosen_model(argv):
    """The ``--model`` given in ``argv`` (or the default) when it is known, else the default."""
    pre = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    pre.add_argument("--model", default="cyclegan")
    known, _ = pre.parse_known_args(list(argv))
    return known.model if known.model in MODELS else "cyclegan"


def build_parser(script, argv=()):
    """The parser of ``script`` ('train', 'test' or 'prune'): the groups it uses, and the options of the
    model ``--model`` names in ``argv``, in ``--help``; every other option parses too, hidden."""
    prog = SCRIPTS[script]
    parser = ArgumentParser(prog=prog, allow_abbrev=False,
                            description=f"{prog}: DMAD (differentiable masks and co-attention distillation) for "
                                        "CycleGAN and pix2pix")
    for group in GROUPS:
        target = parser.add_argument_group(group.title)
        group.declare(target if script in group.scripts else _Hidden(target))
    chosen = MODELS[_chosen_model(argv)]
    for owner in _model_owners():
        target = parser.add_argument_group(_model_title(owner))
        shown = script != "test" and issubclass(chosen, owner)
        owner.add_options(target if shown else _Hidden(target))
    hidden = [" / ".join(a.option_strings) for a in parser._actions if a.help == argparse.SUPPRESS and a.option_strings]
    parser.epilog = (f"Also accepted, without effect in {prog} --model {chosen.name} (a warning names them when "
                     f"given; --model and other scripts use them): {', '.join(hidden)}") if hidden else None
    return parser


def _model_title(owner):
    return f"{owner.name} model"


def parse(script, argv=None):
    """Parse and validate the options of ``script``; raises UserError on any problem."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(script, argv)
    opt = parser.parse_args(argv, namespace=Options())
    opt.script = script
    opt.isTrain = script in ("train", "prune")
    opt.user_set = _explicit_options(parser, argv)
    opt.argv = argv  # for the resume command after an interruption
    return validate(opt, parser).freeze()


def validate(opt, parser=None):
    """Fill model-dependent defaults and reject invalid or contradictory values (options/validate.py)."""
    parser = parser or build_parser(getattr(opt, "script", "train"))
    return _validate(opt, {a.dest: a.default for a in parser._actions})


def _explicit_options(parser, argv):
    """Names (dest) of the options the user gave on the command line."""
    by_string = {s: action.dest for action in parser._actions for s in action.option_strings}
    return sorted({by_string[t.split("=", 1)[0]] for t in argv
                   if t.startswith("--") and t.split("=", 1)[0] in by_string})


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

def _effects(parser):
    """{option dest: (predicate(opt), where)} for the options that do not act everywhere."""
    effect = {}
    rules = {g.title: g.effect for g in GROUPS if g.effect is not None}
    for owner in _model_owners():
        rules[_model_title(owner)] = (lambda o, owner=owner: _trains(o) and issubclass(MODELS[o.model], owner),
                                      f"training runs of --model {' / '.join(_models_of(owner))}")
    for group in parser._action_groups:
        rule = rules.get(group.title)
        if rule is not None:
            for action in group._group_actions:
                effect[action.dest] = rule
    effect.update(EFFECT)
    return effect


def _models_of(owner):
    return [name for name, cls in MODELS.items() if issubclass(cls, owner)]


def ignored_options(opt, parser=None):
    """[(option string, where it acts)] for the options given on the command line that have no
    effect in ``opt.script`` with the other options given."""
    parser = parser or build_parser(opt.script)
    effect = _effects(parser)
    flags = {a.dest: a.option_strings[0] for a in parser._actions if a.option_strings}
    ignored = []
    for dest in getattr(opt, "user_set", ()):
        if dest in _OFF_VALUES and _OFF_VALUES[dest](getattr(opt, dest)):
            continue
        if dest in effect and not effect[dest][0](opt):
            ignored.append((flags[dest], effect[dest][1]))
    return ignored


def warn_ignored_options(opt):
    """One warning naming the options given on the command line that have no effect in this script
    (and where each acts)."""
    ignored = ignored_options(opt)
    if ignored:
        mode = ""
        if opt.script == "prune":
            mode = " with --finetune" if opt.finetune else " without --finetune"
        log.warning("%s %s no effect in %s%s (--model %s): %s", ", ".join(f for f, _ in ignored),
                    "has" if len(ignored) == 1 else "have", SCRIPTS[opt.script], mode, opt.model,
                    "; ".join(f"{f} acts in {w}" for f, w in ignored))


# options that scale a loss or a step besides the --lambda_* loss weights: a loss that becomes NaN or
# infinite is blamed on those of them that act in the run at hand (pipeline/trainer.py)
_SCALES = ("lr", "mask_weight_decay", "lambda_update_coeff", "block_coeff", "upconv_coeff")


def loss_scale_options(opt):
    """``["--name value", ...]``: the options that scale the losses or the steps of the run ``opt``
    describes (the learning rate, the --lambda_* weights of its model, of the search or of the
    distillation, the search's coefficients), those that act in it and are not 0, the ones given on
    the command line first."""
    parser = build_parser(opt.script, getattr(opt, "argv", ()))
    effect = _effects(parser)
    given = set(getattr(opt, "user_set", ()))
    found = {}
    for action in parser._actions:
        dest = action.dest
        if not action.option_strings or (dest not in _SCALES and not dest.startswith("lambda_")):
            continue
        value = getattr(opt, dest, None)
        if type(value) not in (int, float) or value == 0 or (dest in effect and not effect[dest][0](opt)):
            continue
        found[dest] = f"{action.option_strings[0]} {value:g}"
    return [found[d] for d in found if d in given] + [found[d] for d in found if d not in given]
