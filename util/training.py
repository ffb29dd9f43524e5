"""The training loop shared by train.py (teacher and mask search) and prune.py --finetune.

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
import os
import re
import time

from tqdm import tqdm

from data import create_dataloader, create_dataset
from options import options_text
from util import distributed
from util.checkpoint import FORMAT, VERSION, is_native, load_checkpoint, options_dict, rng_state, save_checkpoint, set_rng_state
from util.errors import UserError

log = logging.getLogger("dmad")

BEST_FILE = "model_best.pth"


class Run:
    """Paths and files of one experiment folder."""

    def __init__(self, opt):
        self.opt = opt
        self.dir = os.path.join(opt.checkpoints_dir, opt.name)
        self.ckpt_dir = os.path.join(self.dir, "checkpoints")

    def prepare(self):
        os.makedirs(self.ckpt_dir, exist_ok=True)
        text = options_text(self.opt)
        with open(os.path.join(self.dir, "opt.txt"), "w") as handle:
            handle.write(text + "\n")
        return text

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

    def find_latest(self):
        """The checkpoint with the highest epoch in this run, or None."""
        if os.path.isfile(self.latest_path):
            return self.latest_path
        numbered = self.numbered_checkpoints()
        return numbered[0] if numbered else None


def resume_state(opt, run):
    """The checkpoint --continue_train resumes from (UserError when there is none)."""
    path = opt.load_path or run.find_latest()
    if path is None:
        raise UserError(f"--continue_train found no checkpoint in {run.ckpt_dir}: give --load_path or start "
                        "without --continue_train")
    state = load_checkpoint(path)
    if not is_native(state) or "epoch" not in state:
        raise UserError(f"{path} is not a training checkpoint of this project (no epoch/optimiser state): "
                        "resume from checkpoints/model_<epoch>.pth or latest.pth")
    if state.get("model") != opt.model:
        raise UserError(f"{path} holds a {state.get('model')} model but --model {opt.model} was given")
    if opt.mask != ("search" in state):
        kind = "a mask-search" if "search" in state else "a plain (no --mask)"
        raise UserError(f"{path} is {kind} checkpoint: resume it {'with' if 'search' in state else 'without'} --mask")
    return path, state


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
        # batches per epoch of this process (its share of the epoch, padded as the sampler pads it)
        self.n_batches = -(-(-(-len(self.dataset) // self.world)) // opt.batch_size)
        self.start_epoch = opt.epoch_count
        self.iteration = 0  # batches processed since the start of training (across resumes)
        self.images_seen = 0
        self.best = {}  # direction -> {"score": float, "epoch": int}
        self.history = []  # per-epoch mean losses

    @property
    def last_epoch(self):
        return self.opt.n_epochs + self.opt.n_epochs_decay

    # ------------------------------------------------------------------ checkpoints
    def state(self, epoch):
        state = {"format": FORMAT, "version": VERSION, "model": self.opt.model, "stage": self.stage,
                 "epoch": epoch, "iteration": self.iteration, "images_seen": self.images_seen,
                 "best": {k: dict(v) for k, v in self.best.items()}, "rng": rng_state(),
                 "options": options_dict(self.opt)}
        state.update(self.model.state_dict())
        if self.search is not None:
            state["search"] = self.search.state_dict()
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
        set_rng_state(state["rng"])
        stored = int(state["epoch"]) + 1
        self.start_epoch = self.opt.epoch_count if self.opt.epoch_count_given else stored
        log.info("resuming from %s at epoch %d (iteration %d)", source, self.start_epoch, self.iteration)

    def save(self, epoch, numbered):
        if self.main:
            state = self.state(epoch)
            if numbered:
                save_checkpoint(state, self.run.checkpoint_path(epoch))
                log.info("saving the model at the end of epoch %d, iters %d", epoch, self.images_seen)
            save_checkpoint(state, self.run.latest_path)
        distributed.barrier()

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
        nets_of = {"AtoB": ("G_A", "D_A"), "BtoA": ("G_B", "D_B")} if self.opt.model == "cyclegan" else \
            {self.opt.direction: ("G", "D")}
        previous = load_checkpoint(path) if os.path.isfile(path) else None
        state = self.model.state_dict()
        best = {"format": FORMAT, "version": VERSION, "model": self.opt.model, "stage": self.stage, "best": True,
                "nets": {}, "configs": {}, "scores": {}, "epochs": {}, "options": options_dict(self.opt)}
        for direction, names in nets_of.items():
            keep_previous = (direction not in directions and previous is not None
                             and direction in previous.get("scores", {}))
            source = previous if keep_previous else state
            for name in names:
                best["nets"][name] = source["nets"][name]
                best["configs"][name] = source["configs"][name]
            if direction in self.best:
                best["scores"][direction] = self.best[direction]["score"]
                best["epochs"][direction] = self.best[direction]["epoch"]
        save_checkpoint(best, path)
        for direction in directions:
            log.info("new best %s %s %.3f at epoch %d -> %s", direction, self.evaluator.metric_name,
                     self.best[direction]["score"], epoch, path)

    # ------------------------------------------------------------------ the loop
    def train(self):
        opt, model = self.opt, self.model
        if self.start_epoch > self.last_epoch:
            log.info("nothing to train: epoch %d is past the last epoch %d", self.start_epoch, self.last_epoch)
            return
        for epoch in range(self.start_epoch, self.last_epoch + 1):
            lr = model.set_learning_rate(epoch)
            log.info("Epoch:%d (learning rate = %.7f)", epoch, lr)
            self.train_epoch(epoch)
            if opt.lr_policy == "plateau" and self.history:
                model.schedule.observe(self.history[-1].get("G_total", 0.0))
            if not opt.no_eval and epoch % opt.eval_freq == 0:
                self.evaluate(epoch)
            self.save(epoch, numbered=epoch % opt.save_epoch_freq == 0 or epoch == self.last_epoch)
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
            for key, value in model.current_loss_tensors().items():
                sums[key] = sums.get(key, 0.0) + value
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
            data_start = time.time()
        bar.close()
        means = {k: float(v) / max(count, 1) for k, v in sums.items()}
        means["G_total"] = sum(v for k, v in means.items() if not k.startswith("D"))
        self.history.append(means)
        log.info("End of epoch %d / %d \t Time Taken: %d sec", epoch, self.last_epoch, time.time() - epoch_start)

    def finish(self):
        if not self.main:
            return
        for direction, best in sorted(self.best.items()):
            log.info("Best %s Epoch %d: %.3f", direction, best["epoch"], best["score"])
        if os.path.isfile(self.run.best_path):
            log.info("Best model save in %s", self.run.best_path)
        if self.opt.clean_checkpoints:
            for path in glob.glob(os.path.join(self.run.ckpt_dir, "model_*.pth")):
                os.remove(path)
            log.info("removed the per-epoch checkpoints (--clean_checkpoints)")
