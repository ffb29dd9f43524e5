"""The training loop shared by the stages: train.py (teacher and mask search) and pipeline/finetune.py
(prune.py --finetune); they resume through :func:`pipeline.checkpoint.resume_state`.

:class:`pipeline.run.Run` owns the run folder (``<checkpoints_dir>/<name>/``). :meth:`Trainer.train` is the loop: epochs ``epoch_count .. n_epochs + n_epochs_decay``,
a progress bar per epoch, evaluation every ``--eval_freq`` epochs, a checkpoint every
``--save_epoch_freq`` epochs and ``checkpoints/latest.pth`` after every epoch, so a run resumed with
the same options ends bit-identical (on the CPU) to one that was never interrupted.

Under torchrun (util/distributed.py) every process runs the loop on its share of each epoch; rank 0
alone logs, evaluates, displays and writes files, and the other ranks wait for it at a barrier after
each evaluation and save.
"""
import logging
import math
import os
import shlex
import sys
import time

import torch
from tqdm import tqdm

from data import create_dataloader, create_dataset
from metrics.evaluate import score_and_log
from options import loss_scale_options
from util import distributed
from pipeline.checkpoint import (best_model, first_non_finite, read_checkpoint, save_checkpoint, snapshot,
                                 training_state)
from util.errors import UserError
from util.seed import rng_state, set_rng_state

log = logging.getLogger("dmad")

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
        """The full training state after ``epoch`` (pipeline.checkpoint.training_state). The state of each
        process (random generators, image pools) is rank 0's at the top level, as a single process writes
        it, the other ranks' in ``rank_states`` (a collective: every rank calls this)."""
        own = {"rng": rng_state(), **self.model.process_state()}
        gathered = distributed.gather_to_main(own)
        return training_state(self.opt, self.stage, self.model.state_dict(), epoch=epoch, iteration=self.iteration,
                              images_seen=self.images_seen, world_size=self.world, best=self.best, rng=own["rng"],
                              rank_states=gathered[1:] if self.world > 1 and self.main else None,
                              search=self.search.state_dict() if self.search is not None else None,
                              source=self.source)

    def restore(self, resume, model_loaded=False):
        """Continue from the training checkpoint ``resume`` (a :class:`pipeline.checkpoint.Resume`):
        everything the loop needs to go on as if never stopped. ``model_loaded``: the caller already
        loaded it into the model (networks, optimisers, pools), e.g. to check it before writing anything."""
        source, full = resume.path, resume.full
        if not model_loaded:
            self.model.load_state_dict(resume.model_state, source, optimizers=full)
        if not full and self.main:
            log.warning("%s is a numbered snapshot (networks only): the run goes on from its epoch with fresh "
                        "optimiser moments%s and random streams, so it does not repeat an uninterrupted run exactly; "
                        "checkpoints/latest.pth resumes exactly", source,
                        ", image pools" if self.model.process_state() else "")
        self.iteration = resume.iteration
        self.images_seen = resume.images_seen
        self.best = {k: dict(v) for k, v in resume.best.items()}
        if self.search is not None:
            if resume.search is None:
                raise UserError(f"{source} is not a mask-search checkpoint: drop --mask or resume a --mask run")
            self.search.load_state_dict(resume.search)
        processes = resume.world_size
        # each process takes back its own state when the checkpoint has one per process of this run;
        # otherwise every process takes rank 0's, and under torchrun their random streams are split
        # again (util.distributed.prepare_model), as at the start of a run
        exact = processes == self.world and len(resume.process_states) == self.world
        own = resume.process_states[self.rank if exact else 0]
        self.model.load_process_state(own)
        if full:
            set_rng_state(own["rng"])
        self.process_state_restored = full and exact and self.world > 1
        self.last_saved = (source, resume.epoch)
        stored = resume.epoch + 1
        self.start_epoch = self.opt.epoch_count if self.opt.epoch_count_given else stored
        log.info("resuming from %s at epoch %d (iteration %d, %d images seen)", source, self.start_epoch,
                 self.iteration, self.images_seen)
        trained = resume.options
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
        bad = first_non_finite(state)
        if bad:
            saved = (f"the checkpoints stay those of epoch {self.last_saved[1]}" if self.last_saved is not None
                     else "no checkpoint was written")
            raise UserError(f"network tensor {bad} became NaN or infinite in epoch {epoch} (by iteration "
                            f"{self.iteration}): training stopped and {saved}; lower --lr or the loss weights")
        # every rank checks (their weights are equal) so that all stop together; rank 0 writes
        if self.main:
            if numbered:  # the networks of the epoch; the full resume state goes to latest.pth only
                save_checkpoint(snapshot(state), self.run.checkpoint_path(epoch))
                if announce:
                    log.info("saving the model at the end of epoch %d, iters %d", epoch, self.images_seen)
            save_checkpoint(state, self.run.latest_path)
            self.run.saved(self.run.latest_path, *([self.run.checkpoint_path(epoch)] if numbered else []))
            if numbered:
                self.run.keep_newest(self.opt.keep_checkpoints)
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
        scores = score_and_log(ev, self.model.generators(), prefix=f"epoch {epoch} ", digits=3)
        improved = []
        for direction, score in scores.items():
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
        nets, configs, scores, epochs = {}, {}, {}, {}
        for direction, names in nets_of.items():
            keep_previous = (direction not in directions and previous is not None
                             and direction in previous.scores(self.opt.direction))
            source = previous if keep_previous else None
            for name in names:
                nets[name] = source.nets[name] if source else state["nets"][name]
                configs[name] = source.configs[name] if source else state["configs"][name]
            if direction in self.best:
                scores[direction] = self.best[direction]["score"]
                epochs[direction] = self.best[direction]["epoch"]
        best = best_model(self.opt, self.stage, nets, configs, scores, epochs)
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
            err.reported = True  # the entry point adds no bare "interrupted" line (util.cli.cli_entry)
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
                sums[key] = sums.get(key, 0.0) + value.to(torch.float64)  # large finite losses overflow float32
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
        scales = loss_scale_options(self.opt) if hasattr(self.opt, "script") else ["--lr"]
        raise UserError(f"loss {name} is {value} at iteration {int(self._bad['iteration'])} (epoch {epoch}): training "
                        f"stopped and {saved}; lower one of the options that scale this run's losses and steps "
                        f"({', '.join(scales)}), or check the data")

    def finish(self):
        if not self.main:
            return
        for direction, best in sorted(self.best.items()):
            log.info("Best %s Epoch %d: %.3f", direction, best["epoch"], best["score"])
        if os.path.isfile(self.run.best_path):
            log.info("Best model save in %s", self.run.best_path)
        if self.opt.clean_checkpoints:
            # a fine-tune's pruned model (checkpoints/model_0.pth) is not an epoch's: it stays
            for path in self.run.numbered_checkpoints():
                os.remove(path)
            pruned = self.run.pruned_path
            kept = f"; kept {os.path.basename(pruned)}, the pruned model" if os.path.isfile(pruned) else ""
            log.info("removed the per-epoch checkpoints (--clean_checkpoints)%s", kept)
