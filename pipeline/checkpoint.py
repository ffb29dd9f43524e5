"""The checkpoint schema: plain dicts of tensors and JSON-able values, written atomically.

Every file this project writes carries ``format == "dmad"``, ``version``, ``kind``, ``model``,
``stage`` and ``options`` (:func:`header`); it loads with ``torch.load(path, weights_only=True)``.
Writing goes to a temporary file in the same folder that is renamed over the target, so an
interrupted save never leaves a truncated checkpoint behind. The kinds:

* ``training``: the full resumable state, ``checkpoints/latest.pth``
  (stage ``train``, ``search`` or ``finetune``): ``nets``, ``configs``, ``epoch``, ``iteration``,
  ``images_seen``, ``best`` ({direction: {"score", "epoch"}}), ``rng``, the optimisers and the
  model's extra state (CycleGAN's image ``pools``), ``world_size``, ``search`` for a mask search and,
  for a fine-tune, ``source`` (the absolute path of the search checkpoint the model was pruned from).
  ``rng`` and ``pools`` are rank 0's under torchrun; ``rank_states`` (written when ``world_size`` > 1)
  lists ``{"rng", ["pools"]}`` of ranks 1 .. world_size-1, so that a resume with as many processes
  gives each its own back.
* ``snapshot``: ``checkpoints/model_<epoch>.pth``: the networks of the epoch with their configs, the
  mask-search state, ``epoch``, ``iteration``, ``images_seen``, ``best``, ``source``, the LR-schedule
  state; no optimiser moments, image pools or random generators (a tenth of a training state's size at
  the shipped settings). A resume from it continues the schedule with fresh optimisers and pools.
* ``best``: ``model_best.pth``, per direction the networks of its best epoch, with ``scores`` and
  ``epochs`` per direction.
* ``pruned``: prune.py's ``checkpoints/model_0.pth``: the slim generators and ``cfg``,
  ``prune_report``, ``macs``, ``params``, ``source`` and, when evaluated, ``metric`` and ``scores``.

:func:`read_checkpoint` turns any file this project wrote (version 1 included) or the original DMAD
code wrote into one :class:`Checkpoint` record, and so it does for the files of pytorch-CycleGAN-and-pix2pix
("upstream", models/upstream.py): a run folder (``latest_net_G_A.pth`` ...), one file of it with its
siblings, or a model-zoo file holding one generator's state dict. Version history: 1 had no ``kind``
and marked the best model with ``"best": True``; 2 added ``kind``; 3 wrote the numbered checkpoints as
``snapshot`` (2 wrote them as full ``training`` states, which still resume as before).

Only this module assembles a checkpoint (:func:`training_state`, :func:`snapshot`, :func:`best_model`,
:func:`pruned_model`), validates a resume (:func:`resume_state`) and reads one (:func:`read_checkpoint`).
"""
import logging
import os
import pickletools
import shlex
import warnings
import zipfile
from dataclasses import dataclass

import numpy as np
import torch

from models import DIRECTIONS, MODELS, families, generator_from_state, generator_name
from models.legacy import load_model_state
from models.upstream import UPSTREAM, convert_upstream, is_run_folder, net_file, upstream_files, \
    upstream_model
from util.errors import UserError
from util.files import atomic_path

FORMAT = "dmad"
VERSION = 3
KINDS = ("training", "snapshot", "best", "pruned")
OTHER_DIRECTION = {"AtoB": "BtoA", "BtoA": "AtoB"}

log = logging.getLogger(__name__)


def header(kind, model, stage, opt):
    """The keys every checkpoint of ``kind`` (one of :data:`KINDS`) starts with."""
    assert kind in KINDS, kind
    return {"format": FORMAT, "version": VERSION, "kind": kind, "model": model, "stage": stage,
            "options": options_dict(opt)}


def training_state(opt, stage, model_state, *, epoch, iteration, images_seen, world_size, best, rng,
                   rank_states=None, search=None, source=None):
    """The full resumable state of a training loop after ``epoch`` (kind ``training``; stage ``train``,
    ``search`` or ``finetune``): ``model_state`` is the model's ``state_dict()`` (nets, configs,
    optimisers, LR schedule, process state such as CycleGAN's pools); ``best``: {direction: {"score",
    "epoch"}}; ``rng``: this process's random generators; ``rank_states``: the other processes' records
    under torchrun; ``search``: the mask search's state; ``source``: the search checkpoint a fine-tune
    was pruned from."""
    state = header("training", opt.model, stage, opt)
    state.update({"epoch": int(epoch), "iteration": int(iteration), "images_seen": int(images_seen),
                  "world_size": int(world_size), "best": {k: dict(v) for k, v in best.items()}, "rng": rng})
    state.update(model_state)
    if rank_states:
        state["rank_states"] = rank_states
    if search is not None:
        state["search"] = search
    if source:
        state["source"] = source
    return state


# what a snapshot keeps of a training state: the networks and what places them in the schedule
SNAPSHOT_KEYS = ("format", "version", "model", "stage", "options", "nets", "configs", "epoch", "iteration",
                 "images_seen", "world_size", "best", "search", "source", "lr_state")


def snapshot(state):
    """The numbered checkpoint of a training state (kind ``snapshot``): its networks, configs, search
    state and place in the schedule, without optimiser moments, image pools and random generators."""
    kept = {k: state[k] for k in SNAPSHOT_KEYS if k in state}
    kept["kind"] = "snapshot"
    return kept


def with_generators(state, nets):
    """A copy of the mask-search checkpoint ``state`` whose generators are ``nets`` ({net name: masked
    generator module}), without scores: the search that baselines built from other channel choices
    prune as if it had been searched (benchmarks/compression_study.py)."""
    changed = dict(state, nets=dict(state["nets"]), configs=dict(state["configs"]), scores={})
    for name, net in nets.items():
        changed["nets"][name] = {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}
        changed["configs"][name] = net.config()
    return changed


def best_model(opt, stage, nets, configs, scores, epochs):
    """``model_best.pth`` (kind ``best``): per direction the networks of its best epoch (``nets``,
    ``configs``: {net name: ...}), with ``scores`` and ``epochs`` {direction: ...}."""
    state = header("best", opt.model, stage, opt)
    state.update({"nets": dict(nets), "configs": dict(configs), "scores": dict(scores), "epochs": dict(epochs)})
    return state


def pruned_model(opt, nets, reports, source, discriminators=None, evaluation=None):
    """prune.py's pruned model (kind ``pruned``): ``nets`` {generator name: slim module}, ``reports``
    their prune reports (``cfg``, ``macs_after``, ``params_after``), ``discriminators`` {name: (state
    dict, config)} kept from the search, ``source`` the search checkpoint, ``evaluation`` {"metric",
    "scores"} when the pruned generators were scored. Epoch 0, as the original code's file."""
    state = header("pruned", opt.model, "pruned", opt)
    state.update({"epoch": 0, "nets": {}, "configs": {}, "cfg": {}, "prune_report": reports, "macs": {},
                  "params": {}, "source": os.path.abspath(source)})
    for name, net in nets.items():
        state["nets"][name] = {k: v.detach().cpu() for k, v in net.state_dict().items()}
        state["configs"][name] = net.config()
        state["cfg"][name] = reports[name]["cfg"]
        state["macs"][name] = reports[name]["macs_after"]
        state["params"][name] = reports[name]["params_after"]
    for name, (state_dict, config) in (discriminators or {}).items():
        state["nets"][name] = state_dict
        state["configs"][name] = dict(config)
    state.update(evaluation or {})
    return state


def save_checkpoint(state, path):
    """Write ``state`` to ``path`` atomically (:func:`util.files.atomic_path`, flushed to the disk
    before the rename), creating the folder. UserError when the file system refuses the write (a
    full disk, a quota): the file at ``path``, and every other, is left as it was."""
    try:
        with atomic_path(path, fsync=True) as tmp, open(tmp, "wb") as handle:
            torch.save(state, handle)
    except (OSError, RuntimeError) as err:
        # torch's archive writer turns a failed write into a RuntimeError raised while handling the OSError
        cause = err if isinstance(err, OSError) else err.__context__
        if not isinstance(cause, OSError):
            raise
        raise UserError(f"cannot write the checkpoint {path} ({cause.strerror or cause}): free disk space or choose "
                        "another --checkpoints_dir; the checkpoints written before are intact (a training run "
                        "resumes from them with --continue_train)") from None


def check_checkpoint_file(path, option="--load_path"):
    """UserError unless ``path`` is an existing file: a folder and a missing path get their own message."""
    path = os.path.expanduser(path)
    if os.path.isdir(path):
        raise UserError(f"{option} {path} is a folder, not a checkpoint file: give the .pth file inside it "
                        "(e.g. model_best.pth or checkpoints/latest.pth)")
    if not os.path.isfile(path):
        raise UserError(f"{option} {path} does not exist: check the path of the checkpoint")
    return path


def load_checkpoint(path, map_location="cpu", option=None):
    """Load a checkpoint with ``weights_only=True`` and check its network tensors.

    ``option``: the command-line option that gave ``path`` (e.g. ``"--pretrain_path"``), named in
    every error so that the user knows which path to fix; None for a path the code chose.

    Raises UserError with one line for a missing path or a folder, a file that is not a torch
    checkpoint, one holding objects other than plain tensors and values (pickled code is never run),
    and one whose network tensors are not floating point or not finite (see :func:`check_networks`).
    """
    path = check_checkpoint_file(path, option or "checkpoint")
    named = f"{option} {path}" if option else path
    try:
        with torch.serialization.safe_globals(_numpy_scalar_globals()), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch warns about pickle protocols before failing
            state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # noqa: BLE001 - every failure to unpickle is reported as one of three kinds
        if _is_torchscript(path):
            raise UserError(f"{named} is an exported TorchScript module (export.py), not a checkpoint: give the "
                            "checkpoint it was exported from") from None
        if _holds_objects(path, err):
            raise UserError(f"{named} is not a readable checkpoint: it holds objects that are not plain tensors "
                            "(pickled classes or code, never run here); use a checkpoint saved as plain state "
                            "dicts") from None
        raise UserError(f"{named} is not a readable checkpoint: not a torch.save archive (truncated, or another "
                        "format); give a .pth file written by this project or the original DMAD code") from None
    if is_native(state):
        families.upgrade_checkpoint(state)
    check_networks(state, named)
    return state


def is_checkpoint_file(path):
    """True for a ``torch.save`` archive that is not an exported TorchScript module: a checkpoint,
    which exporters must not overwrite."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (OSError, zipfile.BadZipFile):
        return False
    return any(n.endswith("/data.pkl") for n in names) and not _is_torchscript(path)


def _is_torchscript(path):
    """True for a ``torch.jit.save`` archive (it holds the module's code and constants)."""
    try:
        with zipfile.ZipFile(path) as archive:
            return any(n.endswith("/constants.pkl") or "/code/" in n for n in archive.namelist())
    except (OSError, zipfile.BadZipFile):
        return False


_OBJECT_OPS = {"GLOBAL", "STACK_GLOBAL", "REDUCE", "INST", "OBJ", "NEWOBJ", "NEWOBJ_EX", "BUILD"}


def _holds_objects(path, err):
    """True when the unpickling failed because the file asks for classes or functions (the weights-only
    unpickler refused them), read from the pickle's opcodes without running any."""
    if "allowed global" in str(err):
        return True
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                names = [n for n in archive.namelist() if n.endswith("data.pkl")]
                data = archive.read(names[0]) if names else b""
        else:
            with open(path, "rb") as handle:
                data = handle.read(1 << 26)
        ops = [op.name for op, _, _ in pickletools.genops(data)]  # raises unless it is a whole pickle
        return bool(_OBJECT_OPS.intersection(ops))
    except Exception:  # noqa: BLE001 - not a pickle at all
        return False


# the networks of the original code's layouts, stored at the top level of its checkpoints
_LEGACY_NETS = ("G", "D", "G_A", "G_B", "D_A", "D_B")


def network_state_dicts(state):
    """``{name: state dict}`` of the networks in a loaded checkpoint (native ``nets`` or the original
    code's top-level ``G``/``D``/``G_A``... entries)."""
    if not isinstance(state, dict):
        return {}
    if is_native(state):
        nets = state.get("nets")
        return {k: v for k, v in nets.items() if isinstance(v, dict)} if isinstance(nets, dict) else {}
    return {k: state[k] for k in _LEGACY_NETS if isinstance(state.get(k), dict)}


def check_networks(state, path):
    """UserError naming the first network tensor that is not floating point or not finite.

    BatchNorm's ``num_batches_tracked`` counters (integers by design) and thop's counters are exempt.
    A NaN or infinite weight makes every output black or white, and integer weights would silently
    change them, so such a checkpoint is refused wherever it is loaded.
    """
    _check_state_dicts(network_state_dicts(state), path)


def _check_state_dicts(state_dicts, path):
    """:func:`check_networks` of ``{name: state dict}``."""
    for name, sd in state_dicts.items():
        for key, value in sd.items():
            if not torch.is_tensor(value) or key.rsplit(".", 1)[-1] in _COUNTERS:
                continue
            if not value.is_floating_point():
                raise UserError(f"{path}: network tensor {name}.{key} is {str(value.dtype).replace('torch.', '')}, "
                                "not floating point: the checkpoint is damaged or not a network; use another one")
    bad = _first_non_finite(state_dicts)
    if bad:
        raise UserError(f"{path}: network tensor {bad} holds NaN or infinite values (training diverged before it "
                        "was saved): use an earlier checkpoint")


def first_non_finite(state):
    """``"<net>.<tensor>"`` of the first floating-point network tensor of ``state`` holding NaN or
    infinite values, or None."""
    return _first_non_finite(network_state_dicts(state))


def _first_non_finite(state_dicts):
    for name, sd in state_dicts.items():
        for key, value in sd.items():
            if torch.is_tensor(value) and value.is_floating_point() and not bool(torch.isfinite(value).all()):
                return f"{name}.{key}"
    return None


def missing_nets(nets, configs, names):
    """The names of ``names`` that ``nets`` or ``configs`` ({net name: ...}) lack."""
    return [n for n in names if n not in nets or n not in configs]


_COUNTERS = ("num_batches_tracked", "total_ops", "total_params")


def _numpy_scalar_globals():
    """NumPy scalars that the original code's checkpoints contain (its ``fid`` is a float64); allowed
    for the weights-only unpickler. Nothing else from NumPy is let through."""
    scalar = np._core.multiarray.scalar if hasattr(np, "_core") else np.core.multiarray.scalar
    allowed = [scalar, (scalar, "numpy.core.multiarray.scalar"), np.dtype]
    allowed += [type(np.dtype(t)) for t in (np.float64, np.float32, np.int64, np.int32)]
    return allowed


def is_native(state):
    return isinstance(state, dict) and state.get("format") == FORMAT


def options_dict(opt):
    """The options as JSON-able values (what checkpoints and opt.txt record)."""
    return {k: v for k, v in vars(opt).items() if isinstance(v, (int, float, str, bool, list, type(None)))}


# ------------------------------------------------------------------------------------------ reader

@dataclass
class Checkpoint:
    """One checkpoint file, read once and normalised (see the module docstring for the kinds).

    ``kind``: "training", "best", "pruned", "original" (the original DMAD code's files, converted
    to this project's layouts) or "upstream" (pytorch-CycleGAN-and-pix2pix's files, converted by
    models/upstream.py); ``model``: a name of ``models.MODELS`` (for an original file, the one its
    layout and generator family fit; for an upstream one, the one its net names fit: "cyclegan" for
    G_A / G_B / D_A / D_B, "pix2pix" for G / D and for a model-zoo file; None when a file of this
    project does not say); ``stage``; ``version`` (0 for original and upstream files); ``epoch``
    (None when unknown); ``options``: the options it was written with ({} for original and upstream
    files); ``nets`` / ``configs``: ``{net name: state dict}`` / ``{net name: architecture}``;
    ``metric``: "fid"/"miou" of the scores, or None; ``state``: the loaded dict itself (original
    files: as stored; upstream files: the converted dict of models.upstream.convert_upstream).
    ``lone_generator``: True for an upstream model-zoo file (one generator ``G``, no discriminator,
    whatever model trained it: it runs as the generator of ``--direction``); ``files``: an upstream
    checkpoint's ``{net name: file}`` that were read (None for the other kinds).
    """

    path: str
    kind: str
    model: str
    stage: str
    version: int
    epoch: int
    options: dict
    nets: dict
    configs: dict
    metric: str
    state: dict
    _scores: object = None  # as stored: {direction: score}, or the original's fid (a number or one per generator)
    lone_generator: bool = False
    files: dict = None

    @property
    def source(self):
        """The search checkpoint a pruned model or a fine-tune checkpoint was pruned from, as the file
        records it (an absolute path), or None."""
        recorded = self.state.get("source") if is_native(self.state) else None
        return recorded or None

    @property
    def iteration(self):
        """The optimiser steps a training state or snapshot records (None for other files)."""
        steps = self.state.get("iteration") if is_native(self.state) else None
        return int(steps) if isinstance(steps, int) else None

    @property
    def label(self):
        """"best", the epoch, or the file's name: how test.py names its results folder (an upstream
        run's files: their epoch label, ``latest``, ``5`` or ``iter_3000``)."""
        if self.kind == "upstream" and self.files:
            parsed = net_file(next(iter(self.files.values())))
            if parsed is not None:
                return parsed[0]
        if self.kind == "best" or os.path.basename(self.path).startswith("model_best"):
            return "best"
        if self.epoch is not None:
            return str(self.epoch)
        return os.path.splitext(os.path.basename(self.path))[0]

    def check_model(self, name):
        """UserError unless the file holds a ``name`` model (or does not say which: files of the
        original code, early files of this project, and an upstream model-zoo file, whose one
        generator any model runs in its ``--direction``)."""
        if self.kind != "original" and not self.lone_generator and self.model is not None and self.model != name:
            raise UserError(f"{self.path} holds a {self.model} model but --model {name} was given: "
                            f"pass --model {self.model}")

    def scores(self, direction="AtoB"):
        """``{direction: score}`` the file records: the best epochs' scores of a training state or a
        best model, a pruned model's scores, or the original's ``fid`` (one per generator, in the
        model's table order under ``--direction direction``)."""
        stored = self._scores
        if isinstance(stored, dict):
            return {d: float(v) for d, v in stored.items() if isinstance(v, (int, float))}
        if self.model is None or stored is None:
            return {}
        names = [d.name for d in MODELS[self.model].directions(direction)]
        values = list(stored) if isinstance(stored, (list, tuple)) else [stored]
        if len(values) != len(names) or not all(isinstance(v, (int, float)) for v in values):
            return {}
        return {name: float(v) for name, v in zip(names, values)}

    def take_options(self, opt, names):
        """``{name: value}`` for the options ``names`` that the command line did not give (not in
        ``opt.user_set``), as this file was trained with them (positive integers); files without stored
        options (the original code's) give none. ``opt`` is left as it
        is: the stage resolves the values into a copy (``util.frozen.replace``)."""
        taken = {}
        for name in names:
            value = self.options.get(name)
            if name not in getattr(opt, "user_set", ()) and type(value) is int and value > 0:
                taken[name] = value
        return taken

    def take_sizes(self, opt):
        """:meth:`take_options` for ``--load_size`` and ``--crop_size``: ``(taken, values)``, the sizes
        taken as the file has them (to name, :meth:`log_taken`) and the values the run uses, where a
        load size taken from the file is raised to a larger crop size."""
        taken = self.take_options(opt, ("load_size", "crop_size"))
        values = dict(taken)
        if "load_size" in taken:
            values["load_size"] = max(taken["load_size"], taken.get("crop_size", opt.crop_size))
        return taken, values

    def log_taken(self, taken):
        """One info line naming the options ``taken`` (``{name: value}``, as :meth:`take_options`
        returns them) from this file, so that the user sees which options were not the defaults;
        nothing when ``taken`` is empty."""
        if taken:
            log.info("%s taken from the options %s was trained with",
                     " and ".join(f"--{k} {v}" for k, v in taken.items()), self.path)

    @property
    def trained_direction(self):
        """The ``--direction`` the file was trained with ("AtoB"/"BtoA"), or None when it does not say
        (the original code's files, and early files of this project)."""
        trained = self.options.get("direction")
        return trained if self.model is not None and trained in DIRECTIONS else None

    def fit_direction(self, direction, given):
        """The direction to translate, in the data's terms ("AtoB": A images to B). ``direction`` is
        the requested one, ``given`` whether the user named it. Not named: the trained direction (or
        ``direction`` when the file does not say). A model with one generator (pix2pix) maps only the
        side it was trained on: another named direction is a UserError; a model with two (CycleGAN)
        has a generator for either, :meth:`table_direction` says which."""
        trained = self.trained_direction
        if trained is None or trained == direction:
            return direction
        if not given:
            return trained
        if len(MODELS[self.model].generator_names) > 1:  # one generator per direction
            return direction
        raise UserError(f"{self.path} was trained with --direction {trained} (its generator maps "
                        f"{trained[0]} to {trained[-1]}): use --direction {trained}")

    def table_direction(self, direction):
        """The name, in the model's per-direction table (the key of :meth:`generator`, of scores and of
        ``model.generators()``), of the generator that translates ``direction`` in the data's terms
        ("AtoB": A images to B). A model with two generators trained with ``--direction BtoA`` swapped
        the data's sides: its "AtoB" generator (CycleGAN's G_A) maps B images to A, so the names swap."""
        if self.trained_direction == "BtoA" and len(MODELS[self.model].generator_names) > 1:
            return OTHER_DIRECTION[direction]
        return direction

    def generator(self, direction="AtoB"):
        """The generator of this file that translates ``direction`` ("AtoB"/"BtoA"), in eval mode:
        the net the model's per-direction table names. UserError when the file has none."""
        name = generator_name(self.model, direction, self.path)
        if name not in self.nets or name not in self.configs:
            raise UserError(f"{self.path} holds no generator for {direction} (it has {sorted(self.nets)})")
        return generator_from_state(self.configs[name], self.nets[name], self.path).eval()


def take_fixed(opt, taken, option, value, named, whose):
    """Add ``--option`` ``value`` (what the checkpoint ``named`` fixes: its network ``whose`` has it) to
    ``taken`` when ``opt`` says otherwise and the command line did not give it; given otherwise on the
    command line is a UserError (one line). ``opt`` is left as it is."""
    if getattr(opt, option) == value:
        return
    if option in opt.user_set:
        raise UserError(f"--{option} {getattr(opt, option)} does not fit {named}, whose {whose} has {option} {value}: "
                        f"drop --{option} or give --{option} {value}")
    taken[option] = value


def read_checkpoint(path, option=None, generators_only=False):
    """The :class:`Checkpoint` of ``path``: a file of this project (any version up to
    :data:`VERSION`), of the original DMAD code, or of pytorch-CycleGAN-and-pix2pix: its run folder
    (the ``latest_net_<net>.pth`` files), one ``<epoch>_net_<net>.pth`` file of it (with the files of
    that epoch beside it), or a model-zoo file holding one generator's state dict (kind "upstream",
    see :func:`upstream_checkpoint`).

    ``option``: the command-line option that gave ``path``, named in the errors of a missing,
    unreadable or damaged file (see :func:`load_checkpoint`). ``generators_only``: read and convert
    only an upstream checkpoint's generators (test.py and export.py need no discriminator, so a run
    with ``--netD pixel`` still tests and exports); other files are read whole.
    UserError (one line) for a missing, unreadable, damaged, newer or unknown file, a folder that is
    no upstream run folder, and an upstream network this project cannot represent."""
    path = os.path.expanduser(str(path))
    if os.path.isdir(path):
        if not is_run_folder(path):
            raise UserError(f"{option or 'checkpoint'} {path} is a folder, not a checkpoint file: give the .pth file "
                            "inside it (e.g. model_best.pth or checkpoints/latest.pth), or a pytorch-CycleGAN-and-pix2pix "
                            f"run folder (one holding <epoch>_net_<net>.pth files)")
        return upstream_checkpoint(path, option, generators_only)
    return checkpoint_from_state(load_checkpoint(path, option=option), path, option, generators_only)


def is_state_dict(state):
    """True for a non-empty dict of tensors only: a bare network state dict, as pytorch-CycleGAN-and-pix2pix
    saves each network (checkpoints of this project and of the original code hold dicts of them)."""
    return isinstance(state, dict) and bool(state) and all(torch.is_tensor(v) for v in state.values())


def upstream_checkpoint(path, option=None, generators_only=False, loaded=None):
    """The :class:`Checkpoint` (kind "upstream") of a pytorch-CycleGAN-and-pix2pix checkpoint at ``path``.

    path:     a run folder (its ``latest_net_<net>.pth`` files), one ``<epoch>_net_<net>.pth`` file
              (it and the files of its epoch beside it), or a model-zoo file (one generator, ``G``);
              :func:`models.upstream.upstream_files` names the files.
    option:   the command-line option that gave ``path``, for the errors.
    generators_only: load and convert the generators' files alone (the discriminators' are not read).
    loaded:   the state dict already loaded from ``path`` when it is a file (not loaded twice).
    Each file is loaded with :func:`load_checkpoint` (``weights_only=True``) and its tensors checked,
    then models.upstream.convert_upstream maps them (stale InstanceNorm statistics and ``module.``
    prefixes dropped). UserError (one line, naming ``path``) for a file that is not a network's
    state dict and for a variant this project cannot represent (``--norm none``, ``--netD pixel``,
    up-sampling without transposed convolutions...)."""
    named = f"{option} {path}" if option else path
    files = upstream_files(path)
    if generators_only:
        model = upstream_model(files, named)
        files = {n: f for n, f in files.items() if n in MODELS[model].generator_names} or files
    state_dicts = {}
    for name, file in files.items():
        if loaded is not None and os.path.abspath(file) == os.path.abspath(path):
            state = loaded
        else:
            state = load_checkpoint(file, option=option)
        if is_native(state) or (isinstance(state, dict) and not is_state_dict(state)):
            raise UserError(f"{file} is not a network's state dict (a dict of tensors, as {UPSTREAM} saves each "
                            f"network): {'its' if os.path.isdir(path) else 'the'} {UPSTREAM} run folder must hold "
                            "only the files of one run; pass this file on its own")
        state_dicts[name] = state
    _check_state_dicts(state_dicts, named)
    converted = convert_upstream(state_dicts, named)
    return Checkpoint(path=path, kind="upstream", model=converted["model"], stage="train", version=0,
                      epoch=_upstream_epoch(files), options={}, nets=converted["nets"], configs=converted["configs"],
                      metric=None, state=converted, lone_generator=converted["lone_generator"], files=dict(files))


def _upstream_epoch(files):
    """The epoch number of an upstream run's files (``5_net_G.pth`` -> 5); None for ``latest``,
    ``iter_<n>`` and model-zoo files."""
    parsed = net_file(next(iter(files.values())))
    return int(parsed[0]) if parsed is not None and parsed[0].isdigit() else None


def checkpoint_from_state(state, path, option=None, generators_only=False):
    """The :class:`Checkpoint` of ``state``, a checkpoint already loaded from ``path`` (see
    :func:`read_checkpoint`, which raises the same UserErrors; ``option`` and ``generators_only`` as
    there). A bare state dict is a pytorch-CycleGAN-and-pix2pix file (:func:`upstream_checkpoint`)."""
    if not is_native(state):
        if not isinstance(state, dict):
            raise UserError(f"{path} is not a model checkpoint: it holds a {type(state).__name__}, not a dict")
        if is_state_dict(state):
            return upstream_checkpoint(path, option, generators_only, loaded=state)
        converted = load_model_state(state, path)
        return Checkpoint(path=path, kind="original", model=converted["model"], stage=converted["stage"], version=0,
                          epoch=converted["epoch"], options={}, nets=converted["nets"], configs=converted["configs"],
                          metric=None, state=state, _scores=converted.get("fid"))
    version = state.get("version")
    if not isinstance(version, int) or version > VERSION:
        raise UserError(f"{path} was written by a newer version of this project (checkpoint version {version}, "
                        f"this one reads up to {VERSION}): update the code")
    if state.get("model") is not None and state["model"] not in MODELS:
        raise UserError(f"{path} holds an unknown model {state['model']!r}: this code knows {', '.join(MODELS)}")
    kind = state.get("kind") if version >= 2 else _kind_v1(state)
    if kind not in KINDS:
        raise UserError(f"{path}: unknown checkpoint kind {kind!r}; expected one of {', '.join(KINDS)}")
    epoch = state.get("epoch")
    options = state.get("options") if isinstance(state.get("options"), dict) else {}
    if isinstance(state.get("scores"), dict):  # a best or pruned model: its scores
        scores = dict(state["scores"])
    else:  # a training state: the scores of each direction's best epoch so far
        scores = {d: b["score"] for d, b in (state.get("best") or {}).items() if isinstance(b, dict) and "score" in b}
    return Checkpoint(path=path, kind=kind, model=state.get("model"), stage=state.get("stage"), version=version,
                      epoch=epoch if isinstance(epoch, int) else None, options=options,
                      nets=state.get("nets") or {}, configs=state.get("configs") or {},
                      metric=state.get("metric") or options.get("metric"), state=state, _scores=scores)


def _kind_v1(state):
    """Version 1 had no ``kind``: the best model said ``"best": True``, the pruned one its stage, and
    everything else was a training state."""
    if state.get("best") is True:
        return "best"
    if state.get("stage") == "pruned":
        return "pruned"
    return "training"


def load_generator(path, direction="AtoB"):
    """The generator of a checkpoint this project or the original code wrote, in eval mode, for
    ``direction``: the net the model's per-direction table names (CycleGAN: ``G_A`` for AtoB and
    ``G_B`` for BtoA; pix2pix: its single ``G``). UserError (one line) for a bad file."""
    return read_checkpoint(path).generator(direction)


# ------------------------------------------------------------------------------------------ resume

# what a training checkpoint must hold to be resumed
RESUME_KEYS = ("nets", "configs", "optimizers", "epoch", "iteration", "rng")
# what a snapshot (a numbered checkpoint) must hold to be resumed, with fresh optimisers and pools
SNAPSHOT_RESUME_KEYS = ("nets", "configs", "epoch", "iteration")


def is_snapshot(state):
    """Whether a loaded checkpoint is a networks-only snapshot (kind ``snapshot``)."""
    return is_native(state) and state.get("kind") == "snapshot"



@dataclass(frozen=True)
class Resume:
    """A training checkpoint that ``--continue_train`` resumes (:func:`resume_state`), checked, as the
    loop takes it back. ``record``: the file as a :class:`Checkpoint` (networks, architectures,
    options); ``full``: False for a networks-only snapshot (no optimiser moments, pools or random
    generators); ``epoch``, ``iteration``, ``images_seen``: where the run stopped; ``best``:
    ``{direction: {"score", "epoch"}}``; ``search``: the mask search's state, or None; ``world_size``:
    the processes that wrote it; ``process_states``: per rank the random generators and image pools
    (rank 0's first: the file's top level, as one process writes it; the others' from a torchrun run,
    when the file has them); ``source``: the search checkpoint a fine-tune was pruned from, or None."""

    path: str
    record: Checkpoint
    full: bool
    epoch: int
    iteration: int
    images_seen: int
    best: dict
    search: object
    world_size: int
    process_states: list
    source: object

    @property
    def model_state(self):
        """What the model wrote with ``model.state_dict()`` (networks, configs, optimisers, learning-rate
        schedule, pools), which ``model.load_state_dict`` reads back."""
        return self.record.state

    @property
    def options(self):
        """``{option: value}`` the run was trained with."""
        return self.record.options

    @property
    def configs(self):
        """``{net name: architecture}`` of the resumed networks."""
        return self.record.configs


def resume_record(path, state):
    """The :class:`Resume` of ``state``, a training checkpoint loaded from ``path`` and checked by
    :func:`_check_resumable`."""
    others = state.get("rank_states")
    return Resume(path=path, record=checkpoint_from_state(state, path), full=not is_snapshot(state),
                  epoch=int(state["epoch"]), iteration=int(state["iteration"]),
                  images_seen=int(state.get("images_seen", 0)),
                  best={k: dict(v) for k, v in (state.get("best") or {}).items()}, search=state.get("search"),
                  world_size=int(state.get("world_size", 1)),
                  process_states=[state] + (list(others) if isinstance(others, list) else []),
                  source=state.get("source") or None)


def resume_state(opt, run, candidates, stages, kind, fix, search=None):
    """The checkpoint ``--continue_train`` resumes, checked before anything is written: a :class:`Resume`.

    Both stages resume through here and differ only in the arguments. train.py passes ``--load_path``
    or :meth:`Run.resume_candidates` with ``stages=None``: the first candidate is taken and must be a
    training checkpoint. prune.py --finetune passes :meth:`Run.resume_candidates` (its ``--load_path``
    names the search checkpoint) with ``stages=("finetune",)``: checkpoints of other stages, such as
    the pruned ``model_0.pth``, are passed over.

    ``candidates``: checkpoint paths, preferred first. ``stages``: None, or the stages whose
    checkpoints count. ``kind``, ``fix``: the error when none counts, "--continue_train found no
    <kind> in <checkpoints folder>: <fix>". ``search``: whether the resumed stage holds mask-search
    state (train.py: ``--mask``); None leaves it unchecked.

    Raises UserError for no candidate, a file that is not a training checkpoint of this project, one
    of another ``--model``, one lacking an entry of :data:`RESUME_KEYS` or with a damaged one, and one
    whose mask-search state disagrees with ``search``.
    """
    candidates = list(candidates)
    for i, path in enumerate(candidates):
        given = bool(opt.load_path) and path == opt.load_path
        try:
            # the path the user gave is named by its option in the errors
            state = load_checkpoint(path, option="--load_path" if given else None)
        except UserError as err:
            earlier = candidates[i + 1:]
            if given or not earlier:
                raise
            # a damaged latest.pth (a disk fault, a copy cut short): the numbered checkpoints before it may be whole
            raise UserError(f"{err}; or resume from the checkpoint before it with --load_path {earlier[0]}") from None
        if stages is None or (is_native(state) and state.get("stage") in stages and "epoch" in state):
            if stages is None:
                _refuse_pruned(path, state)
            _check_resumable(opt, path, state, search)
            return resume_record(path, state)
    raise UserError(f"--continue_train found no {kind} in {run.ckpt_dir}: {fix}")


def _refuse_pruned(path, state):
    """UserError when ``state`` (loaded from ``path``) holds pruned generators, prune.py's model_0.pth or
    a fine-tune checkpoint: train.py builds full-width ones, and the fine-tune resumes through prune.py."""
    if not is_native(state) or not (state.get("kind") == "pruned" or state.get("stage") in ("pruned", "finetune")):
        return
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.basename(folder) == "checkpoints":  # the run folder <checkpoints_dir>/<name>/checkpoints
        folder = os.path.dirname(folder)
    options = state.get("options") or {}
    search = state.get("source") or options.get("load_path") or "<its search checkpoint>"
    dataroot = f"--dataroot {shlex.quote(str(options['dataroot']))} " if options.get("dataroot") else ""
    raise UserError(f"{path} holds pruned generators (a prune.py checkpoint): resume it with prune.py {dataroot}"
                    f"--model {state.get('model')} --mask --finetune --continue_train --checkpoints_dir "
                    f"{os.path.dirname(folder)} --name {os.path.basename(folder)} --load_path {search} and the "
                    f"fine-tune's other options ({os.path.join(folder, 'opt.txt')})")


def _check_resumable(opt, path, state, search=None):
    """UserError unless ``state`` (loaded from ``path``) is a complete training checkpoint of ``--model``
    (see :func:`resume_state`)."""
    if not is_native(state) or "epoch" not in state:
        raise UserError(f"{path} is not a training checkpoint of this project (no epoch/optimiser state): "
                        "resume from checkpoints/model_<epoch>.pth or latest.pth")
    if state.get("model") != opt.model:
        raise UserError(f"{path} holds a {state.get('model')} model but --model {opt.model} was given")
    missing = [key for key in (SNAPSHOT_RESUME_KEYS if is_snapshot(state) else RESUME_KEYS) if key not in state]
    if missing:
        raise UserError(f"{path} lacks {', '.join(missing)}: it is not a complete training checkpoint and cannot be "
                        "resumed; resume from another checkpoints/model_<epoch>.pth or start a new run")
    for key, kind in (("nets", dict), ("configs", dict), ("optimizers", dict), ("rng", dict)):
        if key in state and not isinstance(state[key], kind):
            raise UserError(f"{path}: its {key} entry is damaged (a {type(state[key]).__name__}): resume from another "
                            "checkpoint")
    lost = [k for k in ("torch", "numpy", "python") if "rng" in state and k not in state["rng"]]
    if lost:
        raise UserError(f"{path}: its random-generator state lacks {', '.join(lost)}: resume from another checkpoint")
    others = state.get("rank_states")  # the other processes' state of a torchrun run
    if others is not None and not (isinstance(others, list) and len(others) == int(state.get("world_size", 1)) - 1
                                   and all(isinstance(o, dict) and isinstance(o.get("rng"), dict)
                                           and all(k in o["rng"] for k in ("torch", "numpy", "python"))
                                           for o in others)):
        raise UserError(f"{path}: its per-process state (rank_states) is damaged: resume from another checkpoint")
    if search is not None and search != ("search" in state):
        kind = "a mask-search" if "search" in state else "a plain (no --mask)"
        raise UserError(f"{path} is {kind} checkpoint: resume it {'with' if 'search' in state else 'without'} --mask")
