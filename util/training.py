"""The training loop shared by the stages: train.py (teacher and mask search) and util/finetune.py
(prune.py --finetune), and the one resume path they take (:func:`resume_state`).

``Run`` owns the run folder (``<checkpoints_dir>/<name>/``): options file, log, checkpoints, best
models. ``train(run, model, ...)`` is the loop: epochs ``epoch_count .. n_epochs + n_epochs_decay``,
a progress bar per epoch, evaluation every ``--eval_freq`` epochs, a checkpoint every
``--save_epoch_freq`` epochs and ``checkpoints/latest.pth`` after every epoch, so a run resumed with
the same options ends bit-identical (on the CPU) to one that was never interrupted.

Under torchrun (util/distributed.py) every process runs the loop on its share of each epoch; rank 0
alone logs, evaluates, displays and writes files, and the other ranks wait for it at a barrier after
each evaluation and save.
"""
import glob
import logging
import math
import os
import re
import shlex
import sys
import time

import torch
from tqdm import tqdm

from data import EpochSampler, create_dataloader, create_dataset
from options import options_text, warn_ignored_options
from util import distributed
from util.checkpoint import header, is_native, load_checkpoint, network_state_dicts, read_checkpoint, save_checkpoint
from util.errors import UserError
from util.files import FolderLock, check_writable_folder, remove_temporaries
from util.device import announce_device
from util.logger import detail_logger, release_console, setup_logging
from util.seed import rng_state, set_rng_state

log = logging.getLogger("dmad")

BEST_FILE = "model_best.pth"


class Run:
    """Paths and files of one experiment folder.

    :meth:`check` (nothing written) runs with the other input checks; :meth:`prepare` then takes the
    folder's lock for the life of the process, removes what a killed save left and writes ``opt.txt``.
    """

    def __init__(self, opt):
        self.opt = opt
        self.dir = os.path.join(opt.checkpoints_dir, opt.name)
        self.ckpt_dir = os.path.join(self.dir, "checkpoints")
        self.lock = None
        # --overwrite: the earlier run's checkpoints, removed only once this run has saved its first one
        self.stale = []
        self.written = set()  # real paths of the checkpoints this run has saved

    def check(self):
        """UserError when the run folder cannot be written (``--checkpoints_dir`` a file or read-only)."""
        check_writable_folder(self.ckpt_dir, f"--checkpoints_dir {self.opt.checkpoints_dir}")

    def existing_checkpoints(self):
        """Paths of the checkpoints an earlier run left here (numbered, latest, best)."""
        found = self.numbered_checkpoints()
        found += [p for p in (self.latest_path, self.best_path) if os.path.isfile(p)]
        return found

    def refuse_overwrite(self, resumable=True, reads=()):
        """UserError when the folder holds checkpoints and neither ``--continue_train`` nor ``--overwrite``
        says what to do with them, or when ``--overwrite`` would replace a file this command reads.

        ``resumable``: whether this command can resume the run (prune.py without --finetune cannot, so
        its error does not suggest ``--continue_train``). ``reads``: ``(option, path)`` of the checkpoints
        the command reads (``--load_path``, ``--pretrain_path``); none of them may be a checkpoint of
        this folder when ``--overwrite`` starts it afresh."""
        if self.opt.continue_train:
            return
        found = self.existing_checkpoints()
        if getattr(self.opt, "overwrite", False):
            ours = {os.path.realpath(p) for p in found}
            for option, path in reads:
                if path and os.path.realpath(os.path.expanduser(path)) in ours:
                    raise UserError(f"{option} {path} is a checkpoint of the run folder {self.dir}, which --overwrite "
                                    f"would clear: choose another --name for this run (the earlier one is kept)")
            return
        if found:
            resume = "resume it with --continue_train, " if resumable else ""
            raise UserError(f"{self.dir} already holds checkpoints of an earlier run ({os.path.basename(found[0])}"
                            f"{f' and {len(found) - 1} more' if len(found) > 1 else ''}): {resume}"
                            f"choose another --name, or pass --overwrite to replace it")

    def release(self):
        """Drop the folder's lock (the end of the process drops it too)."""
        if self.lock is not None:
            self.lock.release()
            self.lock = None

    def prepare(self):
        """Lock the folder (UserError when another run holds it), log to its ``logger.log``, remove partial
        files of an interrupted save (and, with ``--overwrite``, the earlier run's checkpoints), write
        ``opt.txt``; returns its text."""
        self.check()
        try:
            os.makedirs(self.dir, exist_ok=True)
            self.lock = FolderLock(self.dir)
            if not self.lock.acquire():
                self.lock = None
                raise UserError(f"{self.dir} is in use by another run (train.py or prune.py on --name "
                                f"{self.opt.name}): wait for it to end, or choose another --name")
            os.makedirs(self.ckpt_dir, exist_ok=True)
            setup_logging(self.dir)
            removed = remove_temporaries(self.dir)
            if removed:
                log.info("removed %d partial file(s) of an interrupted save: %s", len(removed), ", ".join(removed))
            if getattr(self.opt, "overwrite", False) and not self.opt.continue_train:
                # nothing is removed yet: a run that fails before its first checkpoint leaves the earlier one whole
                self.stale = self.existing_checkpoints()
                if self.stale:
                    log.warning("%s already holds checkpoints of an earlier run (%d files): --overwrite removes them "
                                "once this run has saved its first checkpoint", self.dir, len(self.stale))
            text = options_text(self.opt)
            with open(os.path.join(self.dir, "opt.txt"), "w") as handle:
                handle.write(text + "\n")
        except OSError as err:  # the folder changed under us after check()
            raise UserError(f"cannot write the run folder {self.dir} ({err.strerror or err}): check "
                            "--checkpoints_dir") from None
        return text

    def open(self, device):
        """Once every input check has passed: rank 0 locks and writes the run folder (:meth:`prepare`),
        logs the options and names those without effect; the other ranks keep warnings and errors only,
        on the console. Every rank then waits for rank 0 and announces its ``device``; on a GPU, cuDNN
        autotuning is switched on."""
        if distributed.is_main():
            # the full table is in opt.txt and logger.log; the console names the folder instead
            detail_logger().info("\n%s", self.prepare())
            log.info("run folder %s (options: opt.txt, full log: logger.log)", self.dir)
            warn_ignored_options(self.opt)
        else:
            release_console()
        distributed.barrier()
        announce_device(device)
        if device.type == "cuda":
            # training images all have the crop size: cuDNN times its convolution algorithms once per
            # shape and keeps the fastest (results differ only by the algorithms' rounding)
            torch.backends.cudnn.benchmark = True
            log.info("cuDNN autotuning on (torch.backends.cudnn.benchmark)")

    def saved(self, *paths, clear=True):
        """Record that this run has written the checkpoints ``paths`` (rank 0 only writes). With
        ``--overwrite``, the first call with ``clear`` removes the earlier run's checkpoints that this
        run has not replaced; ``clear=False`` (prune.py's model_0.pth before a fine-tune) only records."""
        self.written.update(os.path.realpath(p) for p in paths)
        if not self.stale or not clear:
            return
        removed = 0
        for path in self.stale:
            if os.path.realpath(path) not in self.written and os.path.isfile(path):
                os.remove(path)
                removed += 1
        self.stale = []
        log.warning("--overwrite: removed the %d checkpoint(s) of the earlier run in %s that this run did not "
                    "replace", removed, self.dir)

    def checkpoint_path(self, epoch):
        return os.path.join(self.ckpt_dir, f"model_{epoch}.pth")

    @property
    def latest_path(self):
        return os.path.join(self.ckpt_dir, "latest.pth")

    @property
    def best_path(self):
        return os.path.join(self.dir, BEST_FILE)

    def numbered_checkpoints(self):
        """Paths of this run's ``checkpoints/model_<epoch>.pth``, newest epoch first."""
        numbered = []
        for path in glob.glob(os.path.join(self.ckpt_dir, "model_*.pth")):
            match = re.fullmatch(r"model_(\d+)\.pth", os.path.basename(path))
            if match:
                numbered.append((int(match.group(1)), path))
        return [path for _, path in sorted(numbered, reverse=True)]

    def resume_candidates(self):
        """The checkpoints of this run a resume may take, preferred first: ``latest.pth``, then
        ``model_<epoch>.pth`` newest epoch first."""
        latest = [self.latest_path] if os.path.isfile(self.latest_path) else []
        return latest + self.numbered_checkpoints()

    def find_latest(self):
        """The checkpoint with the highest epoch in this run, or None."""
        found = self.resume_candidates()
        return found[0] if found else None


def check_first_batch(opt, dataset, epoch):
    """Decode the images of the first batch of ``epoch`` (in this process), so that a broken file there
    is a UserError before the run folder is written. Later files are checked as they are read."""
    sampler = EpochSampler(len(dataset), opt.seed, not opt.serial_batches, epoch)
    dataset.set_epoch(epoch)
    for _, index in zip(range(opt.batch_size), iter(sampler)):
        dataset[index]


# what a training checkpoint must hold to be resumed
RESUME_KEYS = ("nets", "configs", "optimizers", "epoch", "iteration", "rng")


def resume_state(opt, run, candidates, stages, kind, fix, search=None):
    """The checkpoint ``--continue_train`` resumes, checked before anything is written: ``(path, state)``.

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
            earlier = [p for p in candidates[i + 1:] if os.path.basename(p) != "model_0.pth"]
            if given or not earlier:
                raise
            # a damaged latest.pth (a disk fault, a copy cut short): the numbered checkpoints before it may be whole
            raise UserError(f"{err}; or resume from the checkpoint before it with --load_path {earlier[0]}") from None
        if stages is None or (is_native(state) and state.get("stage") in stages and "epoch" in state):
            if stages is None:
                _refuse_pruned(path, state)
            _check_resumable(opt, path, state, search)
            return path, state
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
    missing = [key for key in RESUME_KEYS if key not in state]
    if missing:
        raise UserError(f"{path} lacks {', '.join(missing)}: it is not a complete training checkpoint and cannot be "
                        "resumed; resume from another checkpoints/model_<epoch>.pth or start a new run")
    for key, kind in (("nets", dict), ("configs", dict), ("optimizers", dict), ("rng", dict)):
        if not isinstance(state[key], kind):
            raise UserError(f"{path}: its {key} entry is damaged (a {type(state[key]).__name__}): resume from another "
                            "checkpoint")
    lost = [k for k in ("torch", "numpy", "python") if k not in state["rng"]]
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


# options that change what a resumed run trains: a resume that changes one gets a warning
SEARCH_OPTIONS = ("mask_weight_decay", "mask_loss_type", "update_bound_rule", "block_coeff", "upconv_coeff",
                  "upconv_solo", "upconv_bound", "upconv_relu", "lambda_update_coeff", "lambda_group_lasso",
                  "threshold", "frozen_threshold", "AtoB_macs_threshold", "BtoA_macs_threshold")
DISTILL_OPTIONS = ("lambda_attention_distill", "lambda_discriminator_distill", "attention_normal")
RESUME_OPTIONS = ("dataset_mode", "direction", "serial_batches", "batch_size", "load_size", "crop_size",
                  "max_dataset_size", "preprocess", "no_flip", "n_epochs", "n_epochs_decay", "lr", "beta1",
                  "gan_mode", "pool_size", "lr_policy", "lr_decay_iters", "lambda_A", "lambda_B", "lambda_identity",
                  "lambda_L1", "amp", "amp_dtype") + SEARCH_OPTIONS + DISTILL_OPTIONS


def resume_command(opt):
    """The command line that resumes this run: the script and its options, without those that would
    restart it (``--epoch_count``, ``--overwrite``; for train.py ``--load_path``), plus ``--continue_train``."""
    script = {"train": "train.py", "prune": "prune.py"}.get(getattr(opt, "script", "train"), "train.py")
    drop_value = {"--epoch_count"} | ({"--load_path"} if script == "train.py" else set())
    drop_flag = {"--continue_train", "--overwrite"}
    argv, out, i = list(getattr(opt, "argv", [])), [], 0
    while i < len(argv):
        key = argv[i].split("=", 1)[0]
        if key in drop_value:
            i += 1 if "=" in argv[i] else 2
            continue
        if key in drop_flag:
            bare = "=" in argv[i] or i + 1 >= len(argv) or argv[i + 1].startswith("--")
            i += 1 if bare else 2
            continue
        out.append(argv[i])
        i += 1
    launcher = ["python"]
    if distributed.active():  # the same processes, so that the global batch stays what it was
        launcher = ["torchrun", f"--nproc_per_node={os.environ.get('LOCAL_WORLD_SIZE', distributed.world_size())}"]
        if os.environ.get("GROUP_WORLD_SIZE", "1") != "1":
            launcher.append(f"--nnodes={os.environ['GROUP_WORLD_SIZE']}")
    # the script as it was started (another folder's train.py, say), so that the line runs where it was printed
    if os.path.basename(sys.argv[0]) == script:
        script = sys.argv[0]
    return shlex.join([*launcher, script, *out, "--continue_train"])


class Trainer:
    """One training run: the loop, checkpoints, evaluation and best-model bookkeeping.

    ``stage`` names what is trained ("train", "search", "finetune") and is recorded in checkpoints.
    ``search`` is the mask-search controller (train.py --mask) or None. ``evaluator`` scores
    generators (metrics.Evaluator) or is None / disabled.
    """

    def __init__(self, opt, model, run, stage, visualizer=None, evaluator=None, search=None, dataset=None):
        self.opt, self.model, self.run, self.stage = opt, model, run, stage
        self.visualizer, self.evaluator, self.search = visualizer, evaluator, search
        if search is not None and visualizer is not None:
            search.visualizer = visualizer  # the search plots its progress on the run's display
        self.dataset = dataset if dataset is not None else create_dataset(opt)
        self.rank, self.world = distributed.rank(), distributed.world_size()
        self.main = self.rank == 0
        # only rank 0 holds an evaluator; every rank must agree on whether an epoch is evaluated
        self.eval_enabled = distributed.broadcast_flag(evaluator is not None and evaluator.enabled)
        # batches per epoch of this process (its share of the epoch, padded as the sampler pads it)
        self.n_batches = -(-(-(-len(self.dataset) // self.world)) // opt.batch_size)
        self.start_epoch = opt.epoch_count
        self.iteration = 0  # batches processed since the start of training (across resumes)
        self.images_seen = 0
        self.best = {}  # direction -> {"score": float, "epoch": int}
        self.history = []  # per-epoch mean losses
        self.last_saved = None  # (path, epoch) of the newest checkpoint of this run
        self._bad = None  # the first non-finite losses, recorded on the device (see watch_finite)
        self._on_gpu = False
        # the fine-tune stage: the search checkpoint the model was pruned from, recorded in every checkpoint
        self.source = None
        # whether :meth:`restore` gave every process under torchrun back its own random generators (then
        # util.distributed.prepare_model must not split them again)
        self.process_state_restored = False

    @property
    def last_epoch(self):
        return self.opt.n_epochs + self.opt.n_epochs_decay

    # ------------------------------------------------------------------ checkpoints
    def state(self, epoch):
        state = header("training", self.opt.model, self.stage, self.opt)
        # the state of each process (random generators, image pools): rank 0's at the top level, as a
        # single process writes it, the other ranks' in "rank_states" (a collective: every rank calls this)
        own = {"rng": rng_state(), **self.model.process_state()}
        gathered = distributed.gather_to_main(own)
        state.update({"epoch": epoch, "iteration": self.iteration, "images_seen": self.images_seen,
                      "world_size": self.world,
                      "best": {k: dict(v) for k, v in self.best.items()}, "rng": own["rng"]})
        state.update(self.model.state_dict())
        if self.world > 1 and self.main:
            state["rank_states"] = gathered[1:]
        if self.search is not None:
            state["search"] = self.search.state_dict()
        if self.source:
            state["source"] = self.source
        return state

    def restore(self, state, source, model_loaded=False):
        """Continue from a training checkpoint: everything the loop needs to go on as if never stopped.
        ``model_loaded``: the caller already loaded ``state`` into the model (networks, optimisers,
        pools), e.g. to check it before writing anything."""
        if not model_loaded:
            self.model.load_state_dict(state, source)
        self.iteration = int(state["iteration"])
        self.images_seen = int(state.get("images_seen", 0))
        self.best = {k: dict(v) for k, v in state.get("best", {}).items()}
        if self.search is not None:
            if "search" not in state:
                raise UserError(f"{source} is not a mask-search checkpoint: drop --mask or resume a --mask run")
            self.search.load_state_dict(state["search"])
        processes = int(state.get("world_size", 1))
        others = state.get("rank_states")
        # each process takes back its own state when the checkpoint has one per process of this run;
        # otherwise every process takes rank 0's, and under torchrun their random streams are split
        # again (util.distributed.prepare_model), as at the start of a run
        exact = processes == self.world and (self.world == 1 or (isinstance(others, list)
                                                                 and len(others) == self.world - 1))
        own = others[self.rank - 1] if exact and self.rank > 0 else state
        self.model.load_process_state(own)
        set_rng_state(own["rng"])
        self.process_state_restored = exact and self.world > 1
        self.last_saved = (source, int(state["epoch"]))
        stored = int(state["epoch"]) + 1
        self.start_epoch = self.opt.epoch_count if self.opt.epoch_count_given else stored
        log.info("resuming from %s at epoch %d (iteration %d, %d images seen)", source, self.start_epoch,
                 self.iteration, self.images_seen)
        trained = state.get("options") if isinstance(state.get("options"), dict) else {}
        # every process resumes the same state: one says what changed
        if self.main:
            self.warn_changed_options(trained, source)
        reopened = self.search.reopening(self.iteration, self.start_epoch) if self.search is not None else None
        if reopened is not None and self.main:
            was = " ".join(f"--{k} {trained[k]}" for k in ("n_epochs", "n_epochs_decay") if k in trained)
            log.warning("%s: the mask search had settled (bound 0), but this schedule (--n_epochs %d --n_epochs_decay "
                        "%d) re-opens the bound to %.3f at epoch %d and the masks change again%s", source,
                        self.opt.n_epochs, self.opt.n_epochs_decay, reopened[0], reopened[1],
                        f"; resume with {was} to keep the settled masks" if was else "")
        if processes != self.world and self.main:
            log.warning("%s was trained by %d process(es), this run has %d: the global batch is now %d instead of %d, "
                        "and the per-process state (random generators, image pools) is not restored exactly: every "
                        "process starts from rank 0's", source, processes, self.world,
                        self.opt.batch_size * self.world, self.opt.batch_size * processes)
        elif not exact and self.main:
            log.warning("%s holds the per-process state (random generators, image pools) of rank 0 only (written by an "
                        "earlier version): every process starts from rank 0's, so the run does not repeat an "
                        "uninterrupted one exactly", source)

    def warn_changed_options(self, trained, source):
        """One warning naming the options of :data:`RESUME_OPTIONS` that differ from ``trained`` (the
        options the checkpoint ``source`` recorded), old -> new: the run goes on with the new values, and
        the schedule is the one of this command line (defaults for options not given)."""
        names = [n for n in RESUME_OPTIONS if n in trained and hasattr(self.opt, n)]
        if self.search is None:
            names = [n for n in names if n not in SEARCH_OPTIONS]
        if self.stage != "finetune":
            names = [n for n in names if n not in DISTILL_OPTIONS]
        given = getattr(self.opt, "user_set", ())
        changed = [f"--{n} {trained[n]} -> {getattr(self.opt, n)}{'' if n in given else ' (default)'}"
                   for n in names if trained[n] != getattr(self.opt, n)]
        if changed:
            log.warning("%s was trained with other options: %s; the run goes on with the new values, and its "
                        "schedule (--n_epochs, --n_epochs_decay, --lr_policy) is this command's, the defaults where "
                        "not given: repeat the checkpoint's values to keep them", source, ", ".join(changed))

    def save(self, epoch, numbered, announce=True):
        state = self.state(epoch)
        # a step with finite losses can still blow the weights up (an infinite gradient): never save that
        for name, sd in network_state_dicts(state).items():
            for key, value in sd.items():
                if torch.is_tensor(value) and value.is_floating_point() and not bool(torch.isfinite(value).all()):
                    saved = (f"the checkpoints stay those of epoch {self.last_saved[1]}" if self.last_saved is not None
                             else "no checkpoint was written")
                    raise UserError(f"network tensor {name}.{key} became NaN or infinite in epoch {epoch} (by iteration "
                                    f"{self.iteration}): training stopped and {saved}; lower --lr or the loss weights")
        # every rank checks (their weights are equal) so that all stop together; rank 0 writes
        if self.main:
            if numbered:
                save_checkpoint(state, self.run.checkpoint_path(epoch))
                if announce:
                    log.info("saving the model at the end of epoch %d, iters %d", epoch, self.images_seen)
            save_checkpoint(state, self.run.latest_path)
            self.run.saved(self.run.latest_path, *([self.run.checkpoint_path(epoch)] if numbered else []))
        distributed.barrier()
        self.last_saved = (self.run.latest_path, epoch)

    # ------------------------------------------------------------------ evaluation
    def evaluate(self, epoch):
        """Score the generators; save ``model_best.pth`` halves for directions that improved."""
        ev = self.evaluator
        if not self.main:  # rank 0 evaluates; its best scores are the ones saved
            distributed.barrier()
            return {}
        if ev is None or not ev.enabled:
            distributed.barrier()
            return {}
        scores = ev.evaluate(self.model.generators())
        improved = []
        for direction, score in scores.items():
            log.info("epoch %d %s %s: %.3f", epoch, direction, ev.metric_name, score)
            if self.search is not None and not self.search.best_eligible(direction):
                continue
            best = self.best.get(direction)
            better = best is None or (score >= best["score"] if ev.higher_is_better else score <= best["score"])
            if better:
                self.best[direction] = {"score": float(score), "epoch": epoch}
                improved.append(direction)
        if improved:
            self.save_best(improved, epoch)
        distributed.barrier()
        return scores

    def save_best(self, directions, epoch):
        """Write ``model_best.pth``: per direction the networks of its best epoch (CycleGAN may take
        G_A/D_A and G_B/D_B from different epochs, as the original's assembly did)."""
        path = self.run.best_path
        nets_of = {d.name: (d.generator, d.discriminator) for d in self.model.directions(self.opt.direction)}
        previous = read_checkpoint(path) if os.path.isfile(path) else None
        state = self.model.state_dict()
        best = header("best", self.opt.model, self.stage, self.opt)
        best.update({"nets": {}, "configs": {}, "scores": {}, "epochs": {}})
        for direction, names in nets_of.items():
            keep_previous = (direction not in directions and previous is not None
                             and direction in previous.scores(self.opt.direction))
            nets, configs = (previous.nets, previous.configs) if keep_previous else (state["nets"], state["configs"])
            for name in names:
                best["nets"][name] = nets[name]
                best["configs"][name] = configs[name]
            if direction in self.best:
                best["scores"][direction] = self.best[direction]["score"]
                best["epochs"][direction] = self.best[direction]["epoch"]
        save_checkpoint(best, path)
        self.run.saved(path)
        for direction in directions:
            log.info("new best %s %s %.3f at epoch %d -> %s", direction, self.evaluator.metric_name,
                     self.best[direction]["score"], epoch, path)

    # ------------------------------------------------------------------ the loop
    def train(self):
        """Run the epochs; on Ctrl-C, say which checkpoint was saved last and how to resume, then re-raise."""
        try:
            self._train()
        except KeyboardInterrupt as err:
            err.reported = True  # the entry point adds no bare "interrupted" line (util.errors.cli_entry)
            if self.main and self.last_saved is not None:  # every process gets the Ctrl-C; one says it
                log.warning("interrupted at iteration %d (%d images seen): the last checkpoint saved is %s (end of "
                            "epoch %d); resume with: %s", self.iteration, self.images_seen, self.last_saved[0],
                            self.last_saved[1], resume_command(self.opt))
            elif self.main and self.opt.continue_train:  # the checkpoint this run resumed is still there
                log.warning("interrupted at iteration %d (%d images seen), before a new checkpoint was saved; resume "
                            "with: %s", self.iteration, self.images_seen, resume_command(self.opt))
            elif self.main:
                # nothing of this run to resume (a --continue_train would find none, or an earlier run's)
                log.warning("interrupted at iteration %d (%d images seen), before this run saved its first "
                            "checkpoint: nothing to resume; run the same command again to start it over",
                            self.iteration, self.images_seen)
            raise

    def _train(self):
        opt, model = self.opt, self.model
        if self.start_epoch > self.last_epoch:
            log.info("nothing to train: epoch %d is past the last epoch %d", self.start_epoch, self.last_epoch)
            return
        if opt.lr_policy == "cosine" and self.last_epoch > max(1, opt.n_epochs) + 1 and self.main:
            # the original's schedule (method.md §8): a cosine of period 2 * n_epochs over all the epochs
            log.warning("--lr_policy cosine anneals to 0 over --n_epochs %d and rises again after it: epochs %d-%d "
                        "train at rising rates; give --n_epochs_decay 0 and the whole length as --n_epochs for one "
                        "annealing", opt.n_epochs, max(1, opt.n_epochs) + 2, self.last_epoch)
        for epoch in range(self.start_epoch, self.last_epoch + 1):
            lr = model.set_learning_rate(epoch)
            log.info("Epoch:%d (learning rate = %.7f)", epoch, lr)
            self.train_epoch(epoch)
            if opt.lr_policy == "plateau" and self.history:
                model.schedule.observe(self.history[-1].get("G_total", 0.0))
            numbered = epoch % opt.save_epoch_freq == 0 or epoch == self.last_epoch
            # the epoch is saved before it is evaluated, so that a failing evaluation loses nothing
            self.save(epoch, numbered=numbered)
            if not opt.no_eval and epoch % opt.eval_freq == 0 and self.eval_enabled:
                self.evaluate(epoch)
                # again with the new best scores and the state after evaluation
                self.save(epoch, numbered=numbered, announce=False)
        self.finish()

    def train_epoch(self, epoch):
        opt, model = self.opt, self.model
        loader = create_dataloader(opt, self.dataset, epoch=epoch, rank=self.rank, world=self.world)
        if self.visualizer is not None:
            self.visualizer.reset()
        model.train()
        sums, count = {}, 0
        printed = displayed = False
        epoch_start = time.time()
        data_start = time.time()
        bar = tqdm(loader, total=self.n_batches, desc=f"epoch {epoch}/{self.last_epoch}", leave=False,
                   dynamic_ncols=True, disable=None if self.main else True)
        for batch in bar:
            data_time = time.time() - data_start
            step_start = time.time()
            model.set_input(batch)
            model.optimize_parameters()
            batch_size = next(iter(batch.values())).size(0) * self.world  # images of all processes
            before = self.images_seen
            self.images_seen += batch_size
            self.iteration += 1
            # running sums stay on the device: reading a loss value waits for the GPU
            losses_now = model.current_loss_tensors()
            for key, value in losses_now.items():
                sums[key] = sums.get(key, 0.0) + value
            self.watch_finite(losses_now)
            count += 1
            crossed = lambda freq: self.images_seen // freq > before // freq  # noqa: E731
            # the epoch's last batch reports too when the frequencies are longer than the epoch
            last = count == self.n_batches
            if crossed(opt.print_freq) or (last and not printed):
                printed = True
                losses = model.get_current_losses()
                bar.set_postfix({k: f"{v:.3f}" for k, v in losses.items()}, refresh=False)
                compute = (time.time() - step_start) / batch_size
                message = self.visualizer.print_current_losses(epoch, self.images_seen, losses, compute, data_time) \
                    if self.visualizer is not None else f"(epoch: {epoch}, iters: {self.images_seen}) {losses}"
                log.info(message)
                if self.visualizer is not None:
                    self.visualizer.plot_current_losses(epoch, count / self.n_batches, losses)
            if self.visualizer is not None and (crossed(opt.display_freq) or (last and not displayed)):
                displayed = True
                self.visualizer.display_current_results(model.get_current_visuals(), epoch,
                                                        crossed(opt.update_html_freq))
            if self.search is not None:
                self.search.after_iteration(self.iteration, epoch, self.images_seen)
            if not self._on_gpu or last or crossed(opt.print_freq):  # reading the GPU waits for it: not every step
                self.stop_if_not_finite(epoch)
            data_start = time.time()
        bar.close()
        self.stop_if_not_finite(epoch)
        means = {k: float(v) / max(count, 1) for k, v in sums.items()}
        means["G_total"] = sum(v for k, v in means.items() if not k.startswith("D"))
        self.history.append(means)
        log.info("End of epoch %d / %d \t Time Taken: %d sec | mean losses: %s", epoch, self.last_epoch,
                 time.time() - epoch_start, " ".join(f"{k}: {v:.3f}" for k, v in means.items()))
        if self.search is not None and self.main:
            log.info(self.search.summary())  # the per-layer report of each update point is in logger.log

    def watch_finite(self, losses):
        """Record, on the device and without waiting for it, the first iteration whose losses are not finite."""
        names = list(losses)
        values = torch.stack([losses[k].float().reshape(()) for k in names])
        bad = ~torch.isfinite(values)
        if self._bad is None:
            self._bad = {"names": names, "iteration": torch.full((), -1, device=values.device),
                         "values": values.clone()}
        first = bad.any() & (self._bad["iteration"] < 0)
        self._bad["iteration"] = torch.where(first, torch.full_like(self._bad["iteration"], self.iteration),
                                             self._bad["iteration"])
        self._bad["values"] = torch.where(first, values, self._bad["values"])
        self._on_gpu = values.device.type != "cpu"

    def stop_if_not_finite(self, epoch):
        """UserError naming the first non-finite loss and its iteration; raised before anything of this
        epoch is saved, so every checkpoint on disk holds the last finite weights."""
        if self._bad is None or int(self._bad["iteration"]) < 0:
            return
        values = self._bad["values"].tolist()
        name, value = next((n, v) for n, v in zip(self._bad["names"], values) if not math.isfinite(v))
        saved = (f"the checkpoints stay those of epoch {self.last_saved[1]}" if self.last_saved is not None
                 else "no checkpoint was written")
        raise UserError(f"loss {name} is {value} at iteration {int(self._bad['iteration'])} (epoch {epoch}): training "
                        f"stopped and {saved}; lower --lr or the loss weights (e.g. --lambda_L1), or check the data")

    def finish(self):
        if not self.main:
            return
        for direction, best in sorted(self.best.items()):
            log.info("Best %s Epoch %d: %.3f", direction, best["epoch"], best["score"])
        if os.path.isfile(self.run.best_path):
            log.info("Best model save in %s", self.run.best_path)
        if self.opt.clean_checkpoints:
            # a fine-tune's model_0.pth is the pruned generator prune.py wrote, not an epoch's checkpoint:
            # it is the pruning's result, and a resume checks the run against it
            pruned = self.run.checkpoint_path(0) if self.stage == "finetune" else None
            for path in self.run.numbered_checkpoints():
                if path != pruned:
                    os.remove(path)
            kept = f"; kept {os.path.basename(pruned)}, the pruned model" if pruned and os.path.isfile(pruned) else ""
            log.info("removed the per-epoch checkpoints (--clean_checkpoints)%s", kept)
