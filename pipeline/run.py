"""The run folder of a training stage, ``<checkpoints_dir>/<name>/``: its lock, options file, log,
checkpoints (``checkpoints/model_<epoch>.pth``, ``checkpoints/latest.pth``) and best model
(``model_best.pth``), and what ``--overwrite`` does with an earlier run's files."""
import glob
import logging
import os
import re

import torch

from models import DIRECTIONS
from options import options_text, warn_ignored_options
from pipeline.export import FORMATS
from util import distributed
from util.device import announce_device
from util.errors import UserError
from util.files import FolderLock, check_writable_folder, remove_temporaries
from util.logger import detail_logger, release_console, setup_logging

log = logging.getLogger("dmad")

BEST_FILE = "model_best.pth"
PRUNED_FILE = "model_0.pth"


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
        """Paths of the checkpoints an earlier run left here (numbered, latest, best, pruned)."""
        found = self.numbered_checkpoints()
        found += [p for p in (self.latest_path, self.best_path, self.pruned_path) if os.path.isfile(p)]
        return found

    def existing_exports(self):
        """Paths of the files export.py wrote by default from this run's checkpoints, beside them
        (``<checkpoint name>_<direction><extension>``, e.g. ``checkpoints/latest_AtoB.onnx``): an
        ``--overwrite`` removes them with the earlier run's checkpoints."""
        names = re.compile(r"(model_\d+|latest|model_best)_(%s)(%s)" % (
            "|".join(DIRECTIONS), "|".join(re.escape(ext) for ext in FORMATS.values())))
        return [os.path.join(folder, name) for folder in (self.ckpt_dir, self.dir) if os.path.isdir(folder)
                for name in sorted(os.listdir(folder))
                if names.fullmatch(name) and os.path.isfile(os.path.join(folder, name))]

    def has_training_checkpoints(self):
        """Whether an earlier run left a checkpoint a training loop can resume (numbered or latest)."""
        return bool(self.numbered_checkpoints()) or os.path.isfile(self.latest_path)

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
                self.stale = self.existing_checkpoints() + self.existing_exports()
                if self.stale:
                    log.warning("%s already holds checkpoints of an earlier run (%d files, with the files exported from "
                                "them): --overwrite removes them once this run has saved its first checkpoint",
                                self.dir, len(self.stale))
            text = options_text(self.opt)
            with open(os.path.join(self.dir, "opt.txt"), "w") as handle:
                handle.write(text + "\n")
        except OSError as err:  # the folder changed under us after check()
            raise UserError(f"cannot write the run folder {self.dir} ({err.strerror or err}): check "
                            "--checkpoints_dir") from None
        return text

    def open(self, device, opt=None):
        """Once every input check has passed: rank 0 locks and writes the run folder (:meth:`prepare`), logs
        the options and names those without effect (``opt``: the options as the stage resolved them from its
        checkpoints, which opt.txt records; default: those the run was made with); the other ranks keep
        warnings and errors only, on the console. Every rank then waits for rank 0 and announces its
        ``device``; on a GPU, cuDNN autotuning is switched on."""
        if opt is not None:
            self.opt = opt
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
        log.warning("--overwrite: removed the %d checkpoint(s) and exported file(s) of the earlier run in %s that "
                    "this run did not replace", removed, self.dir)

    def checkpoint_path(self, epoch):
        return os.path.join(self.ckpt_dir, f"model_{epoch}.pth")

    @property
    def latest_path(self):
        return os.path.join(self.ckpt_dir, "latest.pth")

    @property
    def pruned_path(self):
        """prune.py's pruned model: ``checkpoints/model_0.pth``, the name the original code gave it."""
        return os.path.join(self.ckpt_dir, PRUNED_FILE)

    @property
    def best_path(self):
        return os.path.join(self.dir, BEST_FILE)

    def numbered_checkpoints(self):
        """Paths of this run's ``checkpoints/model_<epoch>.pth`` (epochs count from 1; the pruned model is
        not one of them), newest epoch first."""
        numbered = []
        for path in glob.glob(os.path.join(self.ckpt_dir, "model_*.pth")):
            match = re.fullmatch(r"model_(\d+)\.pth", os.path.basename(path))
            if match and int(match.group(1)) > 0:
                numbered.append((int(match.group(1)), path))
        return [path for _, path in sorted(numbered, reverse=True)]

    def keep_newest(self, count):
        """Remove all but the ``count`` newest numbered checkpoints (``count`` 0: keep every one);
        returns the paths removed."""
        removed = self.numbered_checkpoints()[count:] if count > 0 else []
        for path in removed:
            os.remove(path)
        return removed

    def resume_candidates(self):
        """The checkpoints of this run a resume may take, preferred first: ``latest.pth``, then
        ``model_<epoch>.pth`` newest epoch first."""
        latest = [self.latest_path] if os.path.isfile(self.latest_path) else []
        return latest + self.numbered_checkpoints()

    def find_latest(self):
        """The checkpoint with the highest epoch in this run, or None."""
        found = self.resume_candidates()
        return found[0] if found else None
