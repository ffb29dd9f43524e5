"""Compression study: is DMAD's small generator better than simpler ways of getting one, at equal training?

    python benchmarks/compression_study.py           # the full study: both tasks, 3 seeds, 4x and 8x
    python benchmarks/compression_study.py --quick   # every arm and both pages at a tiny budget
    python benchmarks/compression_study.py --plan    # list every stage and its optimiser steps; run nothing

Tasks (datasets/make_study_tasks.py, written on first use): Gaussian denoising (sigma 25) of 32 px
grey tiles of 18 real photographs, whole photographs held out (12 train, 2 validation, 4 test):

* ``denoise_pix2pix``: pix2pix (U-Net, 10000 x L1 + hinge GAN) on noisy/clean pairs;
* ``denoise_cyclegan``: CycleGAN (ResNet-6, BatchNorm) from noisy tiles of 6 training photographs (domain A) to
  clean tiles of the 6 others (domain B), scored like pix2pix on the held-out pairs.

Every number comes from the project's entry points run as subprocesses (``train.py``, ``prune.py``,
``test.py``); the scores are computed per test tile (metrics/paired.py) from the outputs ``test.py``
writes, so that the confidence intervals can resample whole test photographs.

Floors, printed first in every table: the noisy input copied, and the best Gaussian blur (its sigma
chosen on the test tiles themselves, an upper bound on what a blur does; the blur with sigma chosen
on the validation photographs is printed too). A model whose PSNR does not beat the blur floor by
the decision rule below has not learned the task, and the page says so.

Arms, per task, at 1/4 and 1/8 of the teacher's MACs, seeds 0, 1, 2 (the teacher is trained once per
task, seed 0, and shared):

* ``dmad``: mask search from scratch (``train.py --mask``, stopped at the MACs target), pruned and
  fine-tuned with co-attention and discriminator distillation from the teacher (``prune.py --finetune``);
* ``nodistill``: the same search, fine-tuned with both distillation weights 0;
* ``thin`` (A): every width of the teacher's architecture scaled by one factor, each within one channel
  (MACs within 5 % of DMAD's generator: :func:`matched_uniform_widths`), trained from scratch
  (``prune.py --finetune --scratch``);
* ``l1prune`` (B): the trained teacher's filters ranked by L1 norm (Li et al., ICLR 2017), cut to DMAD's
  widths by ``prune.py`` and fine-tuned with the same distillation (discriminators from the teacher);
* ``scratch`` (C): DMAD's widths re-initialised and trained like A (``prune.py --finetune --scratch``),
  which separates the architecture from the weights the search trained;
* ``dmad_init``: DMAD whose search starts from the teacher's weights (``train.py --init_path``); run only
  when ``train.py --help`` lists ``--init_path``, and the page says when it was not.

Equal training (:func:`arm_schedule`, the one function that decides every arm's training): every arm
trains its student for the same number of epochs E over the same training tiles (so the same number
of optimiser steps, counted from each stage's checkpoint and printed), with Adam (lr LR, beta1 0.5)
and the same learning-rate schedule: constant for epochs 1..E/2, then train.py's linear decay over
epochs E/2+1..E. DMAD's search is epochs 1..E/2 of that schedule and its fine-tune epochs E/2+1..E
(``--epoch_count``), so search + fine-tune see exactly the rates A, B and C see in their one stage.
The teacher (T epochs, the same schedule shape) is listed separately, as are the arms that use it
(DMAD and B distil from it, B starts from its weights). No learning rate is tuned: LR is fixed for
every arm and stage. :func:`check_equal_budget` refuses a plan in which any arm deviates.

Decision rule (fixed in :data:`RULE` before any run): per task and level, "X beats Y" is *supported*
when the 95 % bootstrap interval of the paired PSNR difference X - Y (per test tile, averaged over
the seeds paired by seed, test photographs resampled with replacement, 10000 resamples) lies above
0 *and* X's PSNR is above Y's at every seed; otherwise *not supported*. "DMAD within 0.3 dB of the
teacher" is the same with DMAD - teacher above -0.3 dB. Every verdict of a task is *inconclusive*
when its teacher does not beat the blur floor by that rule or its validation curve has not
flattened (:func:`curve_flat`); a level's verdicts are inconclusive when DMAD's generator misses the
level's MACs ratio by more than 5 % at some seed; a comparison is inconclusive when an arm failed.

Output: ``<out>/<task>/index.html`` (verdicts, the table with floors first and intervals, paired
differences, the teacher's curve, the step counts, a MACs-vs-PSNR plot with error bars, sample
tiles per arm, the cost) and ``<out>/<task>/results.json`` with every number (per-tile scores
included); ``<out>/index.html`` links the tasks. ``<out>`` is results/study (results/study_quick with
``--quick``), the run folders go to experiments/study[_quick]. Stages run two at a time
(``--workers``), one thread each; a stage already finished with the same arguments, whose inputs did
not run again, is reused (so a second invocation is not an end-to-end time, and the page says so).

Cost: the full study is sized for 75 minutes on 2 idle cores (see BUDGETS); ``--quick`` (one seed,
1/4 only, two epochs per stage) is a few minutes.
"""
import os

# Idle OpenMP threads sleep instead of spinning: on a shared or busy CPU, spinning threads make
# training many times slower. Must be set before torch loads OpenMP; an explicit setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
import argparse  # noqa: E402
import glob  # noqa: E402
import html  # noqa: E402
import importlib.util  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402

import numpy as np  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

# ------------------------------------------------------------------------------------------ settings

LR = "0.001"  # Adam's default rate (Kingma & Ba), for every arm and stage; not tuned
BETA1 = "0.5"  # the project's default
BATCH = 8
WORKERS = 2  # stages run in parallel, one torch thread each

TASKS = {
    "denoise_pix2pix": {
        "model": "pix2pix", "data": "paired", "netG": None, "ngf": 16, "ndf": 16, "gan_mode": "hinge",
        # the study measures fidelity (PSNR): L1 weighs 10000 (pix2pix's default is 100), and no dropout. Pilots on
        # the validation photographs, teacher alone, 60 epochs: 100 x L1 stayed below the best Gaussian blur there
        # (29.8 against 30.5 dB); 1000 x L1 (the first full run) ended at 31.15 dB, 10000 x L1 (the second) at
        # 31.56 dB; lr 2e-4 instead of 1e-3 did not help (30.22). The same for every arm.
        "extra": ["--no_dropout", "--lambda_L1", "10000"], "directions": ("AtoB",),
        # the project's pix2pix recipe (README, scripts/pix2pix) at the same ratio to the L1 weight (its
        # lambda_L1 is 100, so every weight x 100): attention distillation 1000, discriminator distillation 1e-2.
        # The sparsity weight per level is the smallest that took the search to the level's MACs within its half
        # of the budget (pilots judged on MACs alone, 10000 x L1): at 1/4, 1e-3 / 1e-2 stopped at 1/3.23 / 1/3.77,
        # 2e-2 (and 3e-2) reached it; at 1/8, 1 reached it (1e-1: 1/4.95)
        "search": ["--lambda_update_coeff", "1.0"], "search_decay": {4: "2e-2", 8: "1"},
        "distill": ["--lambda_attention_distill", "1000", "--lambda_discriminator_distill", "1e-2"],
        "what": "pix2pix: a U-Net (unet_32, ngf 16, no dropout) and a conditional PatchGAN (ndf 16), hinge GAN "
                "loss + 10000 x L1, trained on noisy/clean pairs",
    },
    "denoise_cyclegan": {
        "model": "cyclegan", "data": "unpaired", "netG": "resnet_6blocks", "ngf": 8, "ndf": 8, "gan_mode": "lsgan",
        # BatchNorm generators (``--norm batch``, running statistics at test time): CycleGAN's InstanceNorm removes
        # each tile's brightness and contrast, so that its teacher scored 16.0 dB, below the noisy input copied
        # (20.4), in the first full run. In a pilot on the validation photographs (before the second run), the
        # BatchNorm teacher reached 22.0-27.4 dB there (input copied: 20.5). The same for every arm.
        "extra": ["--norm", "batch"], "directions": ("AtoB", "BtoA"),
        # the project's CycleGAN recipe (scripts/cyclegan): sparsity and distillation weights; the sparsity
        # weight per level: the recipe's 1e-3 (and 1e-2) left G_A at 1/1.9 (1/2.2) of the MACs within the budget,
        # 1e-1 reached 1/4; at 1/8 none of 3e-2, 3e-1, 1 went past 1/6.6 (pilots judged on MACs alone): the
        # strongest is used, and the page says when a level is not reached. With BatchNorm (pilots before the
        # second run): 3e-1 reached 1/4; at 1/8, 1, 3 and 10 stopped at 1/5.7, 1/5.8 and 1/5.8 (1 is kept)
        "search": ["--lambda_update_coeff", "1.0", "--upconv_bound", "--upconv_coeff", "100"],
        "search_decay": {4: "3e-1", 8: "1"},
        "distill": ["--lambda_attention_distill", "100", "--lambda_discriminator_distill", "1e-4"],
        "what": "CycleGAN: ResNet-6 generators (ngf 8, BatchNorm) and PatchGANs (ndf 8), LSGAN loss, cycle and "
                "identity losses, trained on unpaired domains (A: noisy tiles of 6 training photographs, B: clean "
                "tiles of the 6 others); G_A (noisy -> clean) is scored, both generators are compressed",
    },
}
BUDGETS = {
    # epochs over the whole training split; an epoch is 113 steps (pix2pix, 898 pairs) or 59 steps
    # (CycleGAN, max(468, 430) tiles) at batch 8. Sized for 75 minutes on 2 idle cores: from the CPU seconds
    # per step and per process start measured for each stage type (on the 2-core machine shared with other
    # work, load 3-5) and a 2-worker schedule of this plan's 195 stages, about 54 minutes of stages (44 without
    # the DMAD-from-the-teacher arm), plus a minute or two of scoring in the study's own process; the first full
    # run took 51.9 minutes. The second run's pix2pix teacher trains 120 epochs, not 60: in pilots on the
    # validation photographs (10000 x L1), 60 epochs did not flatten (+1.18 dB from the third quarter to the
    # last), 120 did (-0.03 dB): the shortest length piloted that flattens (a 240-epoch pilot was stopped, not
    # evaluated, once 120 passed), about 6 minutes more.
    "full": {"seeds": (0, 1, 2), "levels": (4, 8),
             "curve_every": {"denoise_pix2pix": 4, "denoise_cyclegan": 4},
             "teacher_epochs": {"denoise_pix2pix": 120, "denoise_cyclegan": 32},
             "arm_epochs": {"denoise_pix2pix": 24, "denoise_cyclegan": 8}},
    # quick: every arm of both tasks end to end (one seed, 1/4 only, two epochs): the page's machinery, not a result
    "quick": {"seeds": (0,), "levels": (4,),
              "curve_every": {"denoise_pix2pix": 2, "denoise_cyclegan": 2},
              "teacher_epochs": {"denoise_pix2pix": 2, "denoise_cyclegan": 2},
              "arm_epochs": {"denoise_pix2pix": 2, "denoise_cyclegan": 2}},
}
ARMS = {  # key -> (label, colour, marker)
    "teacher": ("teacher", "black", "*"),
    "dmad": ("DMAD", "tab:red", "o"),
    "nodistill": ("DMAD, no distillation", "tab:orange", "v"),
    "thin": ("A: uniformly thinner, from scratch", "tab:blue", "s"),
    "l1prune": ("B: L1-norm pruning + distillation", "tab:green", "D"),
    "scratch": ("C: DMAD's widths, from scratch", "tab:purple", "^"),
    "dmad_init": ("DMAD, search from the teacher", "tab:brown", "P"),
}
STUDENTS = ("dmad", "nodistill", "thin", "l1prune", "scratch", "dmad_init")
USES_TEACHER = {"dmad": "distillation", "l1prune": "initial weights + distillation",
                "dmad_init": "search start + distillation"}

# ------------------------------------------------------------------------------------------ the rule
# Written before any run; see the module docstring. Nothing below is changed after seeing results.
PRIMARY = "PSNR"
CONFIDENCE = 0.95
RESAMPLES = 10000
BOOTSTRAP_SEED = 20250119
TEACHER_MARGIN_DB = 0.3  # "DMAD within 0.3 dB of the teacher"
MACS_MATCH = 0.05  # baseline A's MACs within 5 % of DMAD's generator
LEVEL_TOLERANCE = 0.05  # a level counts as reached when teacher MACs / DMAD MACs >= level x 0.95
FLAT_DB = 0.2  # the teacher's curve has flattened: its last quarter's mean val PSNR within 0.2 dB of the third's
BLUR_SIGMAS = tuple(round(0.25 + 0.05 * i, 2) for i in range(56))  # 0.25 .. 3.0
RULE = ("X beats Y (supported) when the 95 % bootstrap interval of the paired PSNR difference X - Y (per test tile, "
        "averaged over the seeds paired by seed, the test photographs resampled with replacement, "
        f"{RESAMPLES} resamples) lies above 0 and X's PSNR is above Y's at every seed; otherwise not supported. "
        f"'DMAD within {TEACHER_MARGIN_DB} dB of the teacher' is the same rule with DMAD - teacher above "
        f"-{TEACHER_MARGIN_DB} dB. Every verdict of a task is inconclusive when its teacher does not beat the blur "
        f"floor by this rule or its validation curve has not flattened (the mean validation PSNR of its checkpoints in "
        f"the last quarter of its epochs differs by {FLAT_DB} dB or more from that of the third quarter); "
        f"the verdicts of a level are inconclusive when DMAD's generator has less than {1 - LEVEL_TOLERANCE:.2f} x the "
        "level's MACs reduction at some seed; a comparison is inconclusive when one of its arms failed or did not run.")
CLAIMS = (  # (key, text, X, Y, margin in dB)
    ("dmad_vs_A", "DMAD beats A (uniformly thinner, from scratch)", "dmad", "thin", 0.0),
    ("dmad_vs_B", "DMAD beats B (L1-norm pruning + distillation)", "dmad", "l1prune", 0.0),
    ("distillation", "distillation helps (DMAD beats DMAD without distillation)", "dmad", "nodistill", 0.0),
    ("architecture", "DMAD's architecture helps (C beats A, both from scratch)", "scratch", "thin", 0.0),
    ("search_weights", "the search's weights help (DMAD without distillation beats C)", "nodistill", "scratch", 0.0),
    ("teacher_gap", f"DMAD is within {TEACHER_MARGIN_DB} dB of the teacher", "dmad", "teacher", TEACHER_MARGIN_DB),
    ("init", "a search from the teacher's weights helps (DMAD from the teacher beats DMAD)", "dmad_init", "dmad", 0.0),
)
GOAL_CLAIMS = ("teacher_gap", "dmad_vs_A", "dmad_vs_B")  # at 1/4 of the MACs, on both tasks


# ------------------------------------------------------------------------------------------ schedule

def lr_factor(epoch, epochs):
    """The shared schedule's multiplier of LR in ``epoch`` (1-based) of ``epochs``: train.py's linear
    policy with ``--n_epochs E/2 --n_epochs_decay E/2``."""
    first = epochs // 2
    return 1.0 - max(0, epoch - first) / float(epochs - first + 1)


def arm_schedule(arm, epochs):
    """The one function that decides every arm's training: ``[(stage, first epoch, last epoch)]`` of the
    shared ``epochs``-epoch schedule. DMAD-like arms search in the first half and fine-tune in the second
    (``nodistill`` shares DMAD's search); A, B and C train all ``epochs`` in one stage; so does the teacher
    (with its own, longer, ``epochs``)."""
    if epochs < 2 or epochs % 2:
        raise ValueError(f"an arm trains an even number of epochs (>= 2), got {epochs}")
    half = epochs // 2
    if arm in ("dmad", "nodistill", "dmad_init"):
        return [("search", 1, half), ("finetune", half + 1, epochs)]
    if arm in ("thin", "l1prune", "scratch", "teacher"):
        return [("train" if arm == "teacher" else "finetune", 1, epochs)]
    raise ValueError(f"unknown arm {arm!r}")


def schedule_argv(first, last, epochs):
    """The epoch options that make a train.py / prune.py stage run epochs ``first..last`` of the shared
    ``epochs``-epoch schedule at exactly its rates."""
    half = epochs // 2
    if last == epochs:
        argv = ["--n_epochs", str(half), "--n_epochs_decay", str(epochs - half)]
        return argv + (["--epoch_count", str(first)] if first > 1 else [])
    if first == 1 and last <= half:  # all at the constant rate; the stage ends at ``last``
        return ["--n_epochs", str(last), "--n_epochs_decay", "0"]
    raise ValueError(f"epochs {first}..{last} of {epochs} are not a stage of the shared schedule")


def _option(argv, name, default=None):
    return argv[argv.index(name) + 1] if name in argv else default


def stage_rates(argv):
    """``[(epoch, learning rate)]`` a train.py / prune.py command line trains at: train.py's linear
    policy ``lr x (1 - max(0, e - n_epochs) / (n_epochs_decay + 1))`` for e = epoch_count .. n_epochs +
    n_epochs_decay, read from the arguments alone."""
    if _option(argv, "--lr_policy", "linear") != "linear":
        raise ValueError("the study trains with --lr_policy linear only")
    n, d = int(_option(argv, "--n_epochs")), int(_option(argv, "--n_epochs_decay"))
    lr, start = float(_option(argv, "--lr")), int(_option(argv, "--epoch_count", 1))
    return [(e, lr * (1.0 - max(0, e - n) / float(d + 1))) for e in range(start, n + d + 1)]


def check_equal_budget(plan):
    """Raise ValueError unless every arm of every task, seed and level trains at exactly the shared schedule:
    the concatenated (epoch, rate) of its stages equal (1..E, LR x lr_factor), and every training stage of
    a task has the same batch size, optimiser settings and training data. Returns {arm key: epochs}."""
    shared_keys = ("--batch_size", "--beta1", "--lr_policy", "--dataroot", "--max_dataset_size", "--gan_mode",
                   "--ngf", "--ndf", "--crop_size")
    found = {}
    for (task, seed, level, arm), stages in plan.arms.items():
        epochs = plan.budget["arm_epochs"][task]
        rates = [r for stage in stages for r in stage_rates(stage.argv)]
        expected = [(e, float(LR) * lr_factor(e, epochs)) for e in range(1, epochs + 1)]
        if [e for e, _ in rates] != [e for e, _ in expected] or \
                any(abs(a - b) > 1e-12 for (_, a), (_, b) in zip(rates, expected)):
            raise ValueError(f"{task} seed {seed} 1/{level} {arm}: its stages train at {rates}, not the shared "
                             f"schedule {expected}")
        for stage in stages:
            values = tuple(_option(stage.argv, k) for k in shared_keys)
            ref = found.setdefault(task, values)
            if values != ref:
                raise ValueError(f"{stage.key}: {dict(zip(shared_keys, values))} differs from the task's other "
                                 f"training stages {dict(zip(shared_keys, ref))}")
    return {key: plan.budget["arm_epochs"][key[0]] for key in plan.arms}


# ------------------------------------------------------------------------------------------ stages

@dataclass
class Stage:
    """One subprocess of the study: ``python <script>.py <argv> <late()>``. ``late`` (optional) gives the
    arguments that depend on an earlier stage's output (the search's MACs threshold, from the teacher's
    metrics.json) once the dependencies are done; ``prepare`` (optional) writes this stage's input files
    right before it runs and returns facts to record (e.g. baseline A's width factor). ``command`` is the
    full argument list once known."""
    key: str
    script: str
    run_dir: str
    deps: tuple = ()
    argv: list = None
    late: object = None
    prepare: object = None
    cost: float = 1.0
    info: dict = field(default_factory=dict)
    command: list = None


class Runner:
    """Runs stages in dependency order, ``workers`` at a time, each in its own process with one torch thread;
    a stage whose marker (``<run_dir>/study_stage.json``) holds the same argv, and none of whose
    dependencies ran in this invocation, is reused. A failing stage is recorded with the tail of its log;
    the stages that depend on it are skipped, the others go on."""

    def __init__(self, workers, log=print):
        self.workers, self.log = workers, log
        self.records = {}  # key -> {"status": "ran"|"reused"|"failed"|"skipped", "seconds", "cpu_s", ...}

    @staticmethod
    def env():
        env = dict(os.environ)
        env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", OMP_WAIT_POLICY="PASSIVE", PYTHONUNBUFFERED="1")
        return env

    def run(self, stages):
        stages = {s.key: s for s in stages}
        priority = self._priorities(stages)
        pending, running, ran = dict(stages), {}, set()
        total, start = len(stages), time.perf_counter()
        while pending or running:
            progressed = True
            while progressed and len(running) < self.workers:
                progressed = False
                ready = [s for s in pending.values() if all(d in self.records for d in s.deps)]
                for stage in sorted(ready, key=lambda s: -priority[s.key]):
                    if len(running) >= self.workers:
                        break
                    del pending[stage.key]
                    progressed = True
                    bad = [d for d in stage.deps if self.records[d]["status"] in ("failed", "skipped")]
                    if bad:
                        self.records[stage.key] = {"status": "skipped", "reason": f"{bad[0]} did not finish"}
                        continue
                    launched = self._launch(stage, ran)
                    if launched is not None:
                        running[launched[0].pid] = (stage, *launched)
            if not running:
                if pending:  # nothing can start: a dependency cycle or unknown dependency
                    raise RuntimeError(f"stages cannot start: {sorted(pending)[:3]}")
                break
            pid, status, usage = os.wait4(-1, 0)
            if pid not in running:
                continue
            stage, proc, began, handle = running.pop(pid)
            proc.returncode = os.waitstatus_to_exitcode(status)
            handle.close()
            seconds = time.perf_counter() - began
            cpu = usage.ru_utime + usage.ru_stime
            if proc.returncode != 0:
                self.records[stage.key] = {"status": "failed", "seconds": seconds, "cpu_s": cpu,
                                           "reason": f"exit {proc.returncode}: {self._tail(stage)}"}
                self.log(f"[{self._count()}/{total}] FAILED {stage.key} after {seconds:.0f} s: "
                         f"{self.records[stage.key]['reason']}")
                continue
            record = {"status": "ran", "seconds": seconds, "cpu_s": cpu, "argv": stage.command, "info": stage.info,
                      "load": os.getloadavg()[0]}
            with open(os.path.join(stage.run_dir, "study_stage.json"), "w") as handle:
                json.dump(record, handle)
            self.records[stage.key] = record
            ran.add(stage.key)
            self.log(f"[{self._count()}/{total}] {stage.key}: {seconds:.0f} s ({cpu:.0f} s CPU) "
                     f"[{(time.perf_counter() - start) / 60:.1f} min]")
        return self.records

    def _count(self):
        return sum(1 for r in self.records.values() if r["status"] in ("ran", "reused", "failed"))

    def _launch(self, stage, ran):
        """Reuse ``stage`` or start it; returns (Popen, start time, log handle), or None when reused or
        failed before starting."""
        try:
            stage.command = stage.argv + (stage.late() if stage.late is not None else [])
            marker = os.path.join(stage.run_dir, "study_stage.json")
            if not any(d in ran for d in stage.deps) and os.path.isfile(marker):
                with open(marker) as handle:
                    done = json.load(handle)
                if done.get("argv") == stage.command and done.get("status") == "ran":
                    done["status"] = "reused"
                    stage.info = done.get("info") or {}
                    self.records[stage.key] = done
                    return None
            if os.path.isdir(stage.run_dir):  # an unfinished or different run: start it over
                shutil.rmtree(stage.run_dir)
            os.makedirs(stage.run_dir)
            if stage.prepare is not None:
                stage.info = stage.prepare() or {}
        except Exception as err:  # noqa: BLE001 (a study keeps going; the page names the failure)
            self.records[stage.key] = {"status": "failed", "reason": f"{type(err).__name__}: {err}"}
            self.log(f"FAILED {stage.key}: {self.records[stage.key]['reason']}")
            return None
        handle = open(os.path.join(stage.run_dir, "study_stage.log"), "w")
        command = [sys.executable, os.path.join(ROOT, f"{stage.script}.py")] + stage.command
        handle.write(" ".join(command) + "\n")
        handle.flush()
        proc = subprocess.Popen(command, cwd=ROOT, env=self.env(), stdout=handle, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
        return proc, time.perf_counter(), handle

    @staticmethod
    def _tail(stage, lines=3):
        try:
            with open(os.path.join(stage.run_dir, "study_stage.log")) as handle:
                text = [line.strip() for line in handle if line.strip()]
        except OSError:
            return "no log"
        return " | ".join(text[-lines:])

    @staticmethod
    def _priorities(stages):
        """Longest estimated cost from each stage to the end of the study (critical path first)."""
        children = {k: [] for k in stages}
        for stage in stages.values():
            for dep in stage.deps:
                if dep in children:
                    children[dep].append(stage.key)
        memo = {}

        def bottom(key):
            if key not in memo:
                memo[key] = stages[key].cost + max((bottom(c) for c in children[key]), default=0.0)
            return memo[key]

        return {k: bottom(k) for k in stages}


# ------------------------------------------------------------------------------------------ the plan

_TASKS_MODULE = []


def _tasks_module():
    """datasets/make_study_tasks.py, loaded by path (datasets/ is not a package)."""
    if _TASKS_MODULE:
        return _TASKS_MODULE[0]
    path = os.path.join(ROOT, "datasets", "make_study_tasks.py")
    spec = importlib.util.spec_from_file_location("dmad_study_tasks", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    _TASKS_MODULE.append(module)
    return module


def init_path_supported():
    """Whether this checkout's train.py takes ``--init_path`` (it lists it in ``--help``)."""
    out = subprocess.run([sys.executable, os.path.join(ROOT, "train.py"), "--help"], cwd=ROOT, env=Runner.env(),
                         capture_output=True, text=True, timeout=300)
    return "--init_path" in out.stdout


def checkpoint_steps(path):
    """Optimiser steps (``iteration``) a training checkpoint records."""
    from pipeline.checkpoint import read_checkpoint  # the project's modules load only where they are needed

    return read_checkpoint(path).iteration


class Plan:
    """Every stage of the study, and which stages make up each arm."""

    def __init__(self, mode, tasks, data_root, work, with_init):
        self.mode, self.budget = mode, BUDGETS[mode]
        self.tasks, self.data_root, self.work, self.with_init = tasks, data_root, work, with_init
        self.stages = []
        self.arms = {}  # (task, seed, level, arm) -> [training Stage, ...]
        self.tests = {}  # (task, seed, name) -> test Stage; seed None for the teacher
        self.curve = {}  # task -> [(epoch, test Stage)]
        self.teacher_train = {}  # task -> Stage
        for task in tasks:
            self._task(task)

    # ---- helpers
    def data(self, task):
        return os.path.join(self.data_root, TASKS[task]["data"])

    def paired(self):
        return os.path.join(self.data_root, "paired")

    def batches_per_epoch(self, task):
        root = self.data(task)
        if os.path.isdir(os.path.join(root, "trainA")):  # unpaired: an epoch is the larger domain
            n = max(len(glob.glob(os.path.join(root, f"train{s}", "*.png"))) for s in "AB")
        else:
            n = len(glob.glob(os.path.join(root, "train", "*.png")))
        return math.ceil(n / BATCH)

    def common(self, task, seed, folder, save_every=100000):
        spec = TASKS[task]
        argv = ["--dataroot", self.data(task), "--model", spec["model"], "--input_nc", "1", "--output_nc", "1",
                "--ngf", str(spec["ngf"]), "--ndf", str(spec["ndf"]), "--batch_size", str(BATCH),
                "--gan_mode", spec["gan_mode"], "--preprocess", "none", "--load_size", "32", "--crop_size", "32",
                "--lr", LR, "--beta1", BETA1, "--lr_policy", "linear", "--seed", str(seed),
                "--checkpoints_dir", folder, "--display_id", "0", "--no_html", "--num_threads", "0",
                "--gpu_ids", "-1", "--metric", "none", "--print_freq", "100000000",
                "--save_epoch_freq", str(save_every), "--keep_checkpoints", "0"]
        return argv + (["--netG", spec["netG"]] if spec["netG"] else []) + spec["extra"]

    def add(self, stage):
        self.stages.append(stage)
        return stage

    def test_stage(self, task, seed, name, checkpoint, deps, results, phase="test", cost=0.5):
        run_dir = os.path.join(results, name)
        argv = ["--dataroot", self.paired(), "--dataset_mode", "aligned", "--model", TASKS[task]["model"],
                "--name", name, "--load_path", checkpoint, "--results_dir", results, "--phase", phase,
                "--gpu_ids", "-1", "--metric", "none", "--preprocess", "none", "--display_id", "0"]
        return self.add(Stage(f"{task}/{'teacher' if seed is None else f'seed{seed}'}/test_{name}", "test", run_dir,
                              tuple(deps), argv, cost=cost))

    # ---- one task
    def _task(self, task):
        spec, budget = TASKS[task], self.budget
        weight = {"pix2pix": 1.0, "cyclegan": 6.0}[spec["model"]] * self.batches_per_epoch(task) / 100.0
        base = os.path.join(self.work, task)
        teacher_epochs = budget["teacher_epochs"][task]
        every = budget["curve_every"][task]
        teacher_dir = os.path.join(base, "teacher")
        (_, first, last), = arm_schedule("teacher", teacher_epochs)
        teacher = self.add(Stage(
            f"{task}/teacher/train", "train", os.path.join(teacher_dir, "teacher"), (),
            self.common(task, 0, teacher_dir, save_every=every) + ["--name", "teacher"]
            + schedule_argv(first, last, teacher_epochs), cost=weight * teacher_epochs))
        self.teacher_train[task] = teacher
        teacher_ckpt = os.path.join(teacher.run_dir, "checkpoints", "latest.pth")
        curve_results = os.path.join(teacher_dir, "curve")
        self.curve[task] = [(e, self.test_stage(task, None, f"teacher_e{e}", os.path.join(
            teacher.run_dir, "checkpoints", f"model_{e}.pth"), [teacher.key], curve_results, phase="val"))
                            for e in range(every, teacher_epochs + 1, every)]
        teacher_test = self.test_stage(task, None, "teacher", teacher_ckpt, [teacher.key],
                                       os.path.join(teacher_dir, "results"))
        self.tests[(task, None, "teacher")] = teacher_test
        epochs = budget["arm_epochs"][task]
        for seed in budget["seeds"]:
            for level in budget["levels"]:
                self._level(task, seed, level, epochs, weight, teacher, teacher_ckpt, teacher_test)

    def _level(self, task, seed, level, epochs, weight, teacher, teacher_ckpt, teacher_test):
        spec = TASKS[task]
        folder = os.path.join(self.work, task, f"seed{seed}")
        results = os.path.join(folder, "results")
        common = self.common(task, seed, folder)
        latest = lambda name: os.path.join(folder, name, "checkpoints", "latest.pth")  # noqa: E731
        model_0 = lambda name: os.path.join(folder, name, "checkpoints", "model_0.pth")  # noqa: E731

        def thresholds():  # the teacher's MACs / level, from its test.py metrics.json
            macs = read_metrics(teacher_test.run_dir)["macs"]
            return [arg for d in spec["directions"]
                    for arg in (f"--{d}_macs_threshold", f"{macs[d] / level / 1e9:.12f}")]

        def search_stage(name, extra, deps):
            (_, first, last), _ = arm_schedule("dmad", epochs)
            argv = common + ["--name", name, "--mask", "--mask_weight_decay", spec["search_decay"][level]] \
                + spec["search"] + extra + schedule_argv(first, last, epochs)
            return self.add(Stage(f"{task}/seed{seed}/{name}", "train", os.path.join(folder, name), tuple(deps), argv,
                                  late=thresholds, cost=weight * last * 1.3))

        def finetune_stage(name, arm, source, deps, extra, prepare=None):
            _, first, last = arm_schedule(arm, epochs)[-1]
            argv = common + ["--name", name, "--mask", "--load_path", source, "--finetune"] + extra \
                + schedule_argv(first, last, epochs)
            return self.add(Stage(f"{task}/seed{seed}/{name}", "prune", os.path.join(folder, name), tuple(deps), argv,
                                  prepare=prepare, cost=weight * (last - first + 1)))

        distill = spec["distill"] + ["--pretrain_path", teacher_ckpt]
        no_distill = ["--lambda_attention_distill", "0", "--lambda_discriminator_distill", "0"]
        search_name = f"search_{level}x"
        search = search_stage(search_name, [], [teacher_test.key])
        dmad = finetune_stage(f"dmad_{level}x", "dmad", latest(search_name), [search.key, teacher.key], distill)
        nodistill = finetune_stage(f"nodistill_{level}x", "nodistill", latest(search_name), [search.key], no_distill)
        scratch = finetune_stage(f"scratch_{level}x", "scratch", latest(search_name), [search.key],
                                 no_distill + ["--scratch"])
        thin_source = os.path.join(folder, "masks", f"thin_{level}x.pth")
        thin = finetune_stage(
            f"thin_{level}x", "thin", thin_source, [dmad.key], no_distill + ["--scratch"],
            prepare=lambda: uniform_masks(spec["model"], latest(search_name), model_0(f"dmad_{level}x"), thin_source))
        l1_source = os.path.join(folder, "masks", f"l1prune_{level}x.pth")
        l1prune = finetune_stage(
            f"l1prune_{level}x", "l1prune", l1_source, [dmad.key, teacher.key], distill + ["--use_pretrain_d"],
            prepare=lambda: l1_norm_masks(spec["model"], latest(search_name), teacher_ckpt, model_0(f"dmad_{level}x"),
                                          l1_source))
        arms = {"dmad": [search, dmad], "nodistill": [search, nodistill], "thin": [thin], "l1prune": [l1prune],
                "scratch": [scratch]}
        if self.with_init:
            init_name = f"search_init_{level}x"
            search_init = search_stage(init_name, ["--init_path", teacher_ckpt], [teacher_test.key, teacher.key])
            arms["dmad_init"] = [search_init, finetune_stage(f"dmad_init_{level}x", "dmad_init", latest(init_name),
                                                             [search_init.key, teacher.key], distill)]
        for arm, stages in arms.items():
            self.arms[(task, seed, level, arm)] = stages
            name = f"{arm}_{level}x"
            self.tests[(task, seed, name)] = self.test_stage(task, seed, name, latest(name), [stages[-1].key], results)


def read_metrics(results_dir):
    """test.py's metrics.json under ``results_dir`` (``<results_dir>/<phase>_<label>/metrics.json``)."""
    found = sorted(glob.glob(os.path.join(results_dir, "*", "metrics.json")))
    if len(found) != 1:
        raise RuntimeError(f"expected one metrics.json under {results_dir}, found {len(found)}")
    with open(found[0]) as handle:
        return json.load(handle)


def output_images(results_dir):
    """{tile file name: path of test.py's G(A->B) output PNG} under ``results_dir``."""
    found = {}
    for path in glob.glob(os.path.join(results_dir, "*", "images", "fake_B", "*_fake_B.png")):
        found[os.path.basename(path)[:-len("_fake_B.png")] + ".png"] = path
    return found


# ------------------------------------------------------------------------------------------ baselines
# The baselines' masks are written as copies of the search checkpoint whose masks keep the chosen
# channels, so that prune.py's own slicing cuts them (the same code path as DMAD's generator).

def _generators(model):
    """{direction: net name} of the generators a model compresses (pix2pix: G; CycleGAN: G_A and G_B)."""
    from models import generator_name  # the project's modules load only where the baselines are built

    directions = next(spec["directions"] for spec in TASKS.values() if spec["model"] == model)
    return {d: generator_name(model, d) for d in directions}


def _set_masks(net, keep):
    """Masks of ``net`` at bound 0 keeping exactly the channels ``keep`` ({set: LongTensor}); every mask of a
    set (a residual group has several) gets the same +1 / -1 weights."""
    import torch

    structure = net.structure()
    with torch.no_grad():
        for set_name, index in keep.items():
            for path in structure.masks_of(set_name):
                mask = net.get_submodule(path)
                weight = torch.full_like(mask.mask_weight, -1.0)
                weight[index] = 1.0
                mask.mask_weight.copy_(weight)
                mask.bound.fill_(0.0)


def _write_masks(search_path, out_path, nets):
    """A copy of the search checkpoint whose generators are ``nets`` ({net name: masked generator})."""
    # the project's modules load only where the baselines are built
    from pipeline.checkpoint import load_checkpoint, save_checkpoint, with_generators

    save_checkpoint(with_generators(load_checkpoint(search_path), nets), out_path)


def uniform_widths(structure, scale):
    return {name: max(1, round(scale * cset.width)) for name, cset in structure.sets.items()}


def matched_uniform_widths(structure, goal, size=32):
    """Baseline A's widths for a generator of ``structure``: every set at ``round(s * width)``, the one
    factor ``s`` (steps of 1/2000) whose MACs at ``size`` px are closest to ``goal``; then, since one
    channel of a thin set moves the MACs by more than MACS_MATCH (an 8-channel ResNet), sets are moved
    by one channel each toward ``goal``, one at a time, the move that brings the MACs closest first, while
    a move brings them closer (each set at most once, at least 1 and at most its full width). Returns
    ``(widths, s, relative MACs error)``."""
    def error(widths):
        return abs(structure.macs_params(widths, (size, size))[0] / goal - 1)

    errors = {step / 2000: error(uniform_widths(structure, step / 2000)) for step in range(1, 2001)}
    scale = min(errors, key=errors.get)
    widths, best, moved = uniform_widths(structure, scale), errors[scale], set()
    while best > 0:
        sign = 1 if structure.macs_params(widths, (size, size))[0] < goal else -1
        moves = {name: dict(widths, **{name: widths[name] + sign}) for name, cset in structure.sets.items()
                 if name not in moved and 1 <= widths[name] + sign <= cset.width}
        scored = {name: error(w) for name, w in moves.items()}
        if not scored or min(scored.values()) >= best:
            break
        name = min(scored, key=scored.get)
        widths, best = moves[name], scored[name]
        moved.add(name)
    return widths, scale, best


def uniform_masks(model, search_path, pruned_path, out_path, size=32):
    """Baseline A: per generator, masks keeping the first channels of every set, as many as
    :func:`matched_uniform_widths` gives for the MACs at ``size`` px of DMAD's pruned generator. Returns
    {"scale": {direction: s}, "macs_error": {direction: relative error}}; raises RuntimeError when the
    widths do not land within MACS_MATCH."""
    import torch

    from pipeline.checkpoint import load_generator  # the channel structure of the search's generators

    nets, info = {}, {"scale": {}, "macs_error": {}}
    for direction, name in _generators(model).items():
        net, target = load_generator(search_path, direction), load_generator(pruned_path, direction)
        structure = net.structure()
        goal = structure.macs_params(dict(target.widths), (size, size))[0]
        widths, scale, error = matched_uniform_widths(structure, goal, size)
        if error > MACS_MATCH:
            raise RuntimeError(f"{direction}: no uniform width factor matches {goal} MACs within {MACS_MATCH:.0%} "
                               f"(best {scale} is {error:.1%} off)")
        _set_masks(net, {s: torch.arange(w) for s, w in widths.items()})
        nets[name] = net
        info["scale"][direction], info["macs_error"][direction] = scale, error
    _write_masks(search_path, out_path, nets)
    return info


def l1_norm_ranking(net):
    """{set: channel indices by decreasing L1 norm of the filters that write them} of a generator
    (ConvTranspose2d weights are (in, out, k, k): the filter of output c is ``weight[:, c]``)."""
    import torch

    structure = net.structure()
    ranking = {}
    for name in structure.sets:
        norms = 0
        for conv in structure.writers(name):
            weight = net.get_submodule(conv.name).weight.detach().abs()
            norms = norms + weight.sum(dim=(0, 2, 3) if conv.transposed else (1, 2, 3))
        ranking[name] = torch.argsort(norms, descending=True, stable=True)
    return ranking


def l1_norm_masks(model, search_path, teacher_path, pruned_path, out_path):
    """Baseline B: per generator, the teacher's weights in a masked generator whose masks keep, per set, the
    filters of largest L1 norm, as many as DMAD's pruned generator keeps."""
    from pipeline.checkpoint import load_generator  # the teacher's weights and the search's channel structure

    nets = {}
    for direction, name in _generators(model).items():
        teacher, net = load_generator(teacher_path, direction), load_generator(search_path, direction)
        widths = load_generator(pruned_path, direction).widths
        missing, unexpected = net.load_state_dict(teacher.state_dict(), strict=False)
        if unexpected or any(not key.endswith(("mask_weight", "bound")) for key in missing):
            raise RuntimeError(f"the teacher's {name} does not fit the search's: {unexpected[:3]} {missing[:3]}")
        ranking = l1_norm_ranking(teacher)
        _set_masks(net, {s: ranking[s][:widths[s]] for s in ranking})
        nets[name] = net
    _write_masks(search_path, out_path, nets)
    return {}


# ------------------------------------------------------------------------------------------ scores

def load_tiles(folder):
    """(names, noisy uint8 [N, H, W], clean uint8 [N, H, W]) of the A|B pairs in ``folder``, sorted by name."""
    from PIL import Image

    names = sorted(os.path.basename(p) for p in glob.glob(os.path.join(folder, "*.png")))
    noisy, clean = [], []
    for name in names:
        with Image.open(os.path.join(folder, name)) as image:
            pair = np.asarray(image.convert("L"))
        half = pair.shape[1] // 2
        noisy.append(pair[:, :half])
        clean.append(pair[:, half:])
    return names, np.stack(noisy), np.stack(clean)


def tile_scores(images, clean):
    """Per-tile L1, PSNR, SSIM (metrics/paired.py, the [0, 1] scale) of uint8 ``images`` against ``clean``."""
    import torch

    from metrics.paired import paired_scores  # the project's own L1 / PSNR / SSIM, as test.py computes them

    def tensor(a):
        return torch.from_numpy(a.astype(np.float32) / 127.5 - 1.0).unsqueeze(1)

    return {k: v.numpy() for k, v in paired_scores(tensor(images), tensor(clean)).items()}


def gaussian_blur(noisy, sigma):
    from scipy.ndimage import gaussian_filter

    return np.stack([np.clip(np.rint(gaussian_filter(t.astype(np.float64), sigma, mode="reflect")), 0, 255)
                     for t in noisy]).astype(np.uint8)


def floors(data_root):
    """The floors on the test tiles: {"input": scores, "blur_val": scores, "blur": scores} (+ their sigmas)."""
    _, val_noisy, val_clean = load_tiles(os.path.join(data_root, "paired", "val"))
    names, noisy, clean = load_tiles(os.path.join(data_root, "paired", "test"))
    val = {s: float(tile_scores(gaussian_blur(val_noisy, s), val_clean)[PRIMARY].mean()) for s in BLUR_SIGMAS}
    test = {s: tile_scores(gaussian_blur(noisy, s), clean) for s in BLUR_SIGMAS}
    sigma_val = max(val, key=val.get)
    sigma_test = max(test, key=lambda s: test[s][PRIMARY].mean())
    return {"names": names, "noisy": noisy, "clean": clean,
            "input": {"scores": tile_scores(noisy, clean)},
            "blur_val": {"scores": test[sigma_val], "sigma": sigma_val},
            "blur": {"scores": test[sigma_test], "sigma": sigma_test},
            "blur_curve_test": {str(s): float(v[PRIMARY].mean()) for s, v in test.items()},
            "blur_curve_val": {str(s): v for s, v in val.items()}}


def model_scores(results_dir, names, clean):
    """Per-tile scores of the outputs test.py wrote under ``results_dir`` (one per test tile, in ``names``
    order), plus MACs, params and test.py's own mean PSNR (a check)."""
    from PIL import Image

    paths = output_images(results_dir)
    missing = [n for n in names if n not in paths]
    if missing:
        raise RuntimeError(f"{results_dir}: no output for {len(missing)} test tiles ({missing[0]}, ...)")
    images = []
    for name in names:
        with Image.open(paths[name]) as image:
            images.append(np.asarray(image.convert("L")))
    metrics = read_metrics(results_dir)
    return {"scores": tile_scores(np.stack(images), clean), "macs": metrics["macs"]["AtoB"],
            "params": metrics["params"]["AtoB"], "test_py_psnr": (metrics.get("PSNR") or {}).get("AtoB")}


def grey_level_response(checkpoint, tiles):
    """How much a generator's output follows its input's grey levels: the mean absolute change of the input,
    and of the output, when the input x (in [-1, 1]) becomes 0.5 x + 0.2 ([0, 1] scale). A generator that
    normalises away each channel's mean and scale right after its first convolution (the ResNet's affine-free
    InstanceNorm) gives the same output for both: it cannot restore the grey levels of a tile."""
    import torch

    from pipeline.checkpoint import load_generator  # the teacher's generator, run on tiles here

    net = load_generator(checkpoint, "AtoB")
    x = torch.from_numpy(tiles.astype(np.float32) / 127.5 - 1.0).unsqueeze(1)
    with torch.no_grad():
        a, b = net(x), net(0.5 * x + 0.2)
    return {"input_change": float((x - (0.5 * x + 0.2)).abs().mean() / 2),
            "output_change": float((a - b).abs().mean() / 2)}


# ------------------------------------------------------------------------------------------ statistics

def photo_groups(names):
    """(photo names, index array: tile -> photo) of the test tiles."""
    photos = sorted({_tasks_module().photo_of(n) for n in names})
    return photos, np.array([photos.index(_tasks_module().photo_of(n)) for n in names])


def bootstrap(per_tile, groups, n_groups, resamples=RESAMPLES, seed=BOOTSTRAP_SEED):
    """Mean of ``per_tile`` and its 95 % percentile bootstrap interval, resampling whole photographs
    (``groups``: tile -> photograph) with replacement: (mean, lower, upper)."""
    per_tile = np.asarray(per_tile, dtype=np.float64)
    sums = np.bincount(groups, weights=per_tile, minlength=n_groups)
    counts = np.bincount(groups, minlength=n_groups).astype(np.float64)
    rng = np.random.default_rng(seed)
    draw = rng.integers(0, n_groups, size=(resamples, n_groups))
    stats = sums[draw].sum(axis=1) / counts[draw].sum(axis=1)
    alpha = (1 - CONFIDENCE) / 2
    lower, upper = np.quantile(stats, [alpha, 1 - alpha])
    return float(per_tile.mean()), float(lower), float(upper)


def summarise_arm(per_seed, groups, n_groups):
    """{metric: {"mean", "lower", "upper", "per_seed"}} over seeds: per-tile values averaged over the seeds,
    intervals by photograph."""
    out = {}
    for metric in ("L1", "PSNR", "SSIM"):
        stacked = np.mean([s[metric] for s in per_seed.values()], axis=0)
        mean, lower, upper = bootstrap(stacked, groups, n_groups)
        out[metric] = {"mean": mean, "lower": lower, "upper": upper,
                       "per_seed": {str(k): float(v[metric].mean()) for k, v in per_seed.items()}}
    return out


def paired_difference(x, y, groups, n_groups, metric=PRIMARY):
    """X - Y per tile, paired by seed (``x``, ``y``: {seed: scores}; a one-entry ``y``, the teacher or a
    floor, pairs with every seed of ``x``): mean, interval, per-seed means."""
    seeds = sorted(x)
    diffs = {s: x[s][metric] - (y[s] if s in y else next(iter(y.values())))[metric] for s in seeds}
    mean, lower, upper = bootstrap(np.mean([diffs[s] for s in seeds], axis=0), groups, n_groups)
    return {"mean": mean, "lower": lower, "upper": upper, "per_seed": {str(s): float(diffs[s].mean()) for s in seeds}}


def verdict(diff, margin=0.0):
    """The decision rule on a paired difference: "supported" when its interval lies above -margin and every
    seed's difference is above -margin, else "not supported"."""
    ok = diff["lower"] > -margin and all(v > -margin for v in diff["per_seed"].values())
    return "supported" if ok else "not supported"


def curve_flat(curve):
    """Whether the teacher's validation curve [(epoch, PSNR)] has flattened: the mean PSNR of the checkpoints
    in the last quarter of the epochs differs by less than FLAT_DB from the mean of those in the third
    quarter (means of several checkpoints, because a GAN's validation PSNR moves from one to the next).
    Returns (flat, last quarter's mean - third quarter's mean); not flat when a quarter has no checkpoint."""
    last_epoch = curve[-1][0]
    third = [p for e, p in curve if 0.5 * last_epoch < e <= 0.75 * last_epoch]
    fourth = [p for e, p in curve if e > 0.75 * last_epoch]
    if not third or not fourth:
        return False, float("nan")
    gain = float(np.mean(fourth) - np.mean(third))
    return abs(gain) < FLAT_DB, gain


# ------------------------------------------------------------------------------------------ the study

class Study:
    def __init__(self, mode, tasks, data_root, work, out, workers=WORKERS, log=print):
        self.mode, self.tasks, self.data_root = mode, tasks, data_root
        self.work, self.out, self.workers, self.log = work, out, workers, log

    def run(self):
        start, load0, cpu0 = time.perf_counter(), os.getloadavg(), time.process_time()
        record = _tasks_module().build(self.data_root)
        self.log(f"tasks written to {self.data_root} ({record['changed']} files changed)")
        self.with_init = init_path_supported()
        self.plan = Plan(self.mode, self.tasks, self.data_root, self.work, self.with_init)
        self.epochs = check_equal_budget(self.plan)
        self.log(f"{len(self.plan.stages)} stages, {self.workers} at a time"
                 + ("" if self.with_init else "; train.py has no --init_path: the arm 'DMAD, search from the teacher' "
                                              "is not run"))
        self.records = Runner(self.workers, self.log).run(self.plan.stages)
        self.floors = floors(self.data_root)
        self.data_record = record
        pages = [self.task_page(task) for task in self.tasks]
        self.wall = time.perf_counter() - start
        self.cost = {"wall_s": self.wall, "load_start": load0, "load_end": os.getloadavg(),
                     "main_cpu_s": time.process_time() - cpu0}
        for page in pages:  # the wall time is known only now: written into every page
            page["cost"] = self.cost_record()
            write_task_page(self, page)
        write_index(self, pages)
        return pages

    def cost_record(self):
        records = list(self.records.values())
        ran = [r for r in records if r["status"] == "ran"]
        reused = [r for r in records if r["status"] == "reused"]
        return {"wall_s": self.wall, "stages": len(records), "ran": len(ran), "reused": len(reused),
                "failed": sum(1 for r in records if r["status"] in ("failed", "skipped")),
                "stage_s": sum(r.get("seconds", 0.0) for r in ran),
                "stage_cpu_s": sum(r.get("cpu_s", 0.0) for r in ran),
                "main_cpu_s": self.cost["main_cpu_s"], "load_start": self.cost["load_start"],
                "load_end": self.cost["load_end"], "cores": os.cpu_count(), "workers": self.workers}

    def ok(self, stage):
        return self.records.get(stage.key, {}).get("status") in ("ran", "reused")

    # ---- one task's numbers
    def task_page(self, task):
        plan, fl = self.plan, self.floors
        groups, n_groups = photo_groups(fl["names"])[1], len(photo_groups(fl["names"])[0])
        photos = photo_groups(fl["names"])[0]
        budget = plan.budget
        models, failures = {}, {}
        for (t, seed, name), stage in plan.tests.items():
            if t != task:
                continue
            if not self.ok(stage):
                failures[name if seed is None else f"{name} seed {seed}"] = self._why(stage)
                continue
            try:
                models[(seed, name)] = model_scores(stage.run_dir, fl["names"], fl["clean"])
            except (RuntimeError, OSError, KeyError) as err:
                failures[name if seed is None else f"{name} seed {seed}"] = str(err)
        floor_scores = {k: {"shared": fl[k]["scores"]} for k in ("input", "blur_val", "blur")}
        teacher = models.get((None, "teacher"))
        page = {"task": task, "mode": self.mode, "spec": TASKS[task], "photos": photos, "failures": failures,
                "floors": {}, "arms": {}, "comparisons": {}, "verdicts": {}, "gates": {}, "budget": {},
                "levels": list(budget["levels"]), "seeds": list(budget["seeds"]), "with_init": self.with_init,
                "rule": RULE, "data": self.data_record}
        for key, label in (("input", "input copied"), ("blur_val", "Gaussian blur, sigma chosen on validation"),
                           ("blur", "best Gaussian blur (floor)")):
            page["floors"][key] = {"label": label, "sigma": fl[key].get("sigma"),
                                   **summarise_arm(floor_scores[key], groups, n_groups)}
        page["floors"]["blur_curve_test"] = fl["blur_curve_test"]
        page["floors"]["blur_curve_val"] = fl["blur_curve_val"]
        # the teacher: its curve, whether it beats the floor
        curve = []
        for epoch, stage in plan.curve[task]:
            if self.ok(stage):
                try:
                    m = read_metrics(stage.run_dir)
                    curve.append((epoch, float(m["PSNR"]["AtoB"])))
                except (RuntimeError, KeyError):
                    pass
        flat, gain = curve_flat(curve) if curve else (False, float("nan"))
        gates = page["gates"]
        gates["curve"] = [{"epoch": e, "steps": e * plan.batches_per_epoch(task), "val_psnr": p} for e, p in curve]
        gates["curve_gain_last_quarter"] = gain
        gates["teacher_flat"] = bool(flat)
        if teacher is not None:
            page["arms"]["teacher"] = {"label": ARMS["teacher"][0], "macs": teacher["macs"],
                                       "params": teacher["params"],
                                       **summarise_arm({"shared": teacher["scores"]}, groups, n_groups)}
            floor_diff = paired_difference({"shared": teacher["scores"]}, floor_scores["blur"], groups, n_groups)
            gates["teacher_vs_floor"] = floor_diff
            gates["teacher_learned"] = verdict(floor_diff) == "supported"
        else:
            gates["teacher_learned"] = False
        gates["task_ok"] = bool(gates["teacher_learned"] and gates["teacher_flat"])
        if teacher is not None:
            page["grey_levels"] = grey_level_response(os.path.join(plan.teacher_train[task].run_dir, "checkpoints",
                                                                   "latest.pth"), fl["noisy"][::4])
        # the arms
        per_arm = {}
        for level in budget["levels"]:
            for arm in STUDENTS:
                name = f"{arm}_{level}x"
                runs = {s: models[(s, name)] for s in budget["seeds"] if (s, name) in models}
                if not runs:
                    continue
                per_arm[name] = {str(s): r["scores"] for s, r in runs.items()}
                record = {"label": ARMS[arm][0], "level": level, "arm": arm,
                          "macs": {str(s): r["macs"] for s, r in runs.items()},
                          "params": {str(s): r["params"] for s, r in runs.items()},
                          "complete": len(runs) == len(budget["seeds"]),
                          "test_py_psnr": {str(s): r["test_py_psnr"] for s, r in runs.items()},
                          **summarise_arm(runs_scores(runs), groups, n_groups)}
                record["vs_floor"] = paired_difference(runs_scores(runs), floor_scores["blur"], groups, n_groups)
                record["beats_floor"] = verdict(record["vs_floor"]) == "supported"
                if teacher is not None:
                    record["macs_ratio"] = {s: teacher["macs"] / m for s, m in record["macs"].items()}
                page["arms"][name] = record
            # gates of the level: an arm with a search of its own (DMAD, DMAD from the teacher) counts at a level
            # only when its models reach the level's MACs ratio at every seed
            def at_level(arm):
                record = page["arms"].get(f"{arm}_{level}x")
                return bool(record and record["complete"] and "macs_ratio" in record
                            and all(r >= level * (1 - LEVEL_TOLERANCE) for r in record["macs_ratio"].values()))

            reached = at_level("dmad")
            gates[f"level_{level}_reached"] = reached
            if self.with_init:
                gates[f"level_{level}_reached_from_teacher"] = at_level("dmad_init")
            page["verdicts"][level], page["comparisons"][level] = {}, {}
            for key, text, x, y, margin in CLAIMS:
                xs = per_arm.get(f"{x}_{level}x")
                ys = {"shared": teacher["scores"]} if y == "teacher" and teacher is not None else (
                    {int(s): v for s, v in per_arm[f"{y}_{level}x"].items()} if f"{y}_{level}x" in per_arm else None)
                complete = all(page["arms"].get(f"{a}_{level}x", {}).get("complete") for a in (x, y) if a != "teacher")
                if x == "dmad_init" and not self.with_init:
                    page["verdicts"][level][key] = "not run (train.py has no --init_path)"
                    continue
                if xs is None or ys is None or not complete:
                    page["verdicts"][level][key] = "inconclusive (an arm failed)"
                    continue
                diff = paired_difference({int(s): v for s, v in xs.items()}, ys, groups, n_groups)
                diff["margin"] = margin
                page["comparisons"][level][key] = diff
                if not gates["task_ok"]:
                    page["verdicts"][level][key] = "inconclusive (no real teacher)"
                elif not reached:
                    page["verdicts"][level][key] = "inconclusive (DMAD did not reach the level)"
                elif "dmad_init" in (x, y) and not at_level("dmad_init"):
                    page["verdicts"][level][key] = "inconclusive (DMAD from the teacher did not reach the level)"
                else:
                    page["verdicts"][level][key] = verdict(diff, margin)
        goal_level = 4 if 4 in budget["levels"] else budget["levels"][0]
        page["goal"] = {"level": goal_level, "met": all(page["verdicts"].get(goal_level, {}).get(k) == "supported"
                                                        for k in GOAL_CLAIMS)}
        # the budget: steps counted per stage
        steps_per_epoch = plan.batches_per_epoch(task)
        teacher_stage = plan.teacher_train[task]
        page["budget"] = {"lr": float(LR), "beta1": float(BETA1), "batch": BATCH, "steps_per_epoch": steps_per_epoch,
                          "arm_epochs": budget["arm_epochs"][task], "teacher_epochs": budget["teacher_epochs"][task],
                          "teacher_steps": self._steps(teacher_stage), "arms": {}}
        for (t, seed, level, arm), stages in plan.arms.items():
            if t != task:
                continue
            rows = []
            for stage, (kind, first, last) in zip(stages, arm_schedule(arm, budget["arm_epochs"][task])):
                rows.append({"stage": stage.key.split("/")[-1], "kind": kind, "epochs": [first, last],
                             "planned_steps": (last - first + 1) * steps_per_epoch, "steps": self._steps(stage),
                             "argv": stage.command or stage.argv, "rates": stage_rates(stage.argv),
                             "info": stage.info})
            page["budget"]["arms"][f"{arm}_{level}x_seed{seed}"] = {
                "arm": arm, "level": level, "seed": seed, "stages": rows,
                "steps": sum(r["steps"] or 0 for r in rows), "planned_steps": sum(r["planned_steps"] for r in rows),
                "teacher_steps": page["budget"]["teacher_steps"] if arm in USES_TEACHER else 0}
        page["budget"]["teacher_argv"] = teacher_stage.command or teacher_stage.argv
        page["per_tile"] = {"names": fl["names"],
                            "floors": {k: _rounded(fl[k]["scores"]) for k in ("input", "blur_val", "blur")},
                            "teacher": _rounded(teacher["scores"]) if teacher else None,
                            "arms": {n: {s: _rounded(v) for s, v in seeds.items()} for n, seeds in per_arm.items()}}
        page["samples"] = self.samples(task, models)
        return page

    def _steps(self, stage):
        if not self.ok(stage):
            return None
        path = os.path.join(stage.run_dir, "checkpoints", "latest.pth")
        try:
            return checkpoint_steps(path)
        except (OSError, KeyError, RuntimeError):
            return None

    def _why(self, stage):
        record = self.records.get(stage.key, {})
        return f"{record.get('status', 'not run')}: {record.get('reason', '')}"

    def samples(self, task, models):
        """Sample tiles (one from the middle of each test photograph): noisy input, clean, blur floor,
        teacher and every arm of seed 0, as PNG files next to the page; {"header", "rows"} of relative paths."""
        from PIL import Image

        fl, plan = self.floors, self.plan
        out = os.path.join(self.out, task, "images")
        os.makedirs(out, exist_ok=True)
        names = fl["names"]
        photos, groups = photo_groups(names)
        picks = [int(np.flatnonzero(groups == g)[len(np.flatnonzero(groups == g)) // 2]) for g in range(len(photos))]
        seed = plan.budget["seeds"][0]
        blur = gaussian_blur(fl["noisy"][picks], fl["blur"]["sigma"])
        columns = [("noisy input", lambda i, k: fl["noisy"][i]), ("clean", lambda i, k: fl["clean"][i]),
                   (f"blur floor (sigma {fl['blur']['sigma']})", lambda i, k: blur[k])]
        sources = [("teacher", os.path.join(plan.tests[(task, None, "teacher")].run_dir))] + [
            (f"{ARMS[a][0]} 1/{lv}", plan.tests[(task, seed, f"{a}_{lv}x")].run_dir)
            for lv in plan.budget["levels"] for a in STUDENTS if (task, seed, f"{a}_{lv}x") in plan.tests]
        rows = []
        for k, i in enumerate(picks):
            row = []
            for label, get in columns:
                rel = f"images/tile{k}_{label.split()[0]}.png"
                Image.fromarray(get(i, k)).save(os.path.join(self.out, task, rel))
                row.append(rel)
            for label, folder in sources:
                path = output_images(folder).get(names[i])
                if path is None:
                    row.append(None)
                    continue
                rel = f"images/tile{k}_{os.path.basename(folder)}.png"
                shutil.copyfile(path, os.path.join(self.out, task, rel))
                row.append(rel)
            rows.append(row)
        return {"header": [c[0] for c in columns] + [s[0] for s in sources], "rows": rows,
                "tiles": [names[i] for i in picks], "seed": seed}


def runs_scores(runs):
    return {s: r["scores"] for s, r in runs.items()}


def _rounded(scores):
    return {k: [round(float(v), 5) for v in values] for k, values in scores.items()}


# ------------------------------------------------------------------------------------------ the pages

def _fmt_ci(entry, digits=2):
    return f"{entry['mean']:.{digits}f} [{entry['lower']:.{digits}f}, {entry['upper']:.{digits}f}]"


def _fmt_diff(diff):
    seeds = ", ".join(f"{v:+.2f}" for v in diff["per_seed"].values())
    return f"{diff['mean']:+.2f} [{diff['lower']:+.2f}, {diff['upper']:+.2f}]", seeds


def _table(header, rows):
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _claim_text(key):
    return next(text for k, text, *_ in CLAIMS if k == key)


def task_summary(page):
    """Plain sentences on the task's outcome (the page's first paragraph, and the index's)."""
    gates = page["gates"]
    floor = page["floors"]["blur"]
    teacher = page["arms"].get("teacher")
    lines = []
    if teacher is None:
        lines.append("The teacher did not finish: no verdict.")
    else:
        lines.append(f"Teacher: {teacher['PSNR']['mean']:.2f} dB against the blur floor's "
                     f"{floor['PSNR']['mean']:.2f} dB "
                     f"(input copied: {page['floors']['input']['PSNR']['mean']:.2f} dB); it "
                     + ("beats" if gates["teacher_learned"] else "does not beat") + " the floor by the rule, and its "
                     f"validation curve {'has' if gates['teacher_flat'] else 'has not'} flattened ("
                     + (f"last quarter against the third: {gates['curve_gain_last_quarter']:+.2f} dB)."
                        if math.isfinite(gates["curve_gain_last_quarter"]) else "too few checkpoints to tell)."))
    grey = page.get("grey_levels")
    if grey and grey["output_change"] < 0.1 * grey["input_change"]:
        lines.append(f"The teacher's output does not follow its input's grey levels (an input change of "
                     f"{grey['input_change']:.3f} moves its output by {grey['output_change']:.4f}): its first "
                     "normalisation removes each tile's brightness and contrast, so it cannot give the ground "
                     "truth's grey levels, however long it trains.")
    if not gates["task_ok"]:
        lines.append("Inconclusive: without a teacher that has learned the task and converged, this task supports no "
                     "compression verdict.")
    not_learned = [n for n, a in page["arms"].items() if n != "teacher" and not a.get("beats_floor")]
    if not_learned:
        lines.append(f"{len(not_learned)} of {len(page['arms']) - 1} compressed models do not beat the blur floor by "
                     f"the rule (they have not learned the task): {', '.join(not_learned)}.")
    goal = page["goal"]
    lines.append(f"Goal (DMAD at 1/{goal['level']} of the MACs within {TEACHER_MARGIN_DB} dB of the teacher and ahead "
                 f"of A and B, intervals excluding 0): {'met' if goal['met'] else 'not met'} on this task.")
    return lines


def pareto_figure(page, path):
    """MACs (log) vs PSNR per arm, error bars = 95 % intervals by photograph; floors as horizontal lines."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.5, 5), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    for key, style in (("input", ":"), ("blur", "--")):
        floor = page["floors"][key]
        ax.axhline(floor["PSNR"]["mean"], color="grey", linestyle=style, label=floor["label"])
    for arm, (label, colour, marker) in ARMS.items():
        names = ["teacher"] if arm == "teacher" else [f"{arm}_{lv}x" for lv in page["levels"]]
        points = [page["arms"][n] for n in names if n in page["arms"]]
        if not points:
            continue
        xs = [np.mean(list(p["macs"].values())) / 1e6 if isinstance(p["macs"], dict) else p["macs"] / 1e6
              for p in points]
        ys = [p["PSNR"]["mean"] for p in points]
        err = [[p["PSNR"]["mean"] - p["PSNR"]["lower"] for p in points], [p["PSNR"]["upper"] - p["PSNR"]["mean"]
                                                                            for p in points]]
        ax.errorbar(xs, ys, yerr=err, label=label, color=colour, marker=marker, markersize=10 if marker == "*" else 6,
                    linestyle="-" if len(xs) > 1 else "none", capsize=3)
    ax.set_xscale("log")
    ax.set_xlabel("MACs of the generator at 32x32 px (M, log scale)")
    ax.set_ylabel("PSNR on the test photographs (dB)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    ax.set_title(f"{page['task']}: quality against cost (bars: 95 % interval by photograph)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path)


def curve_figure(page, path):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 3.5), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    curve = page["gates"]["curve"]
    ax.plot([c["steps"] for c in curve], [c["val_psnr"] for c in curve], marker="o", color="black", label="teacher")
    best = page["floors"]["blur_curve_val"]
    ax.axhline(max(best.values()), color="grey", linestyle="--", label="best Gaussian blur (validation)")
    ax.set_xlabel("optimiser steps")
    ax.set_ylabel("PSNR on the validation photographs (dB)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)


def write_task_page(study, page):
    out = os.path.join(study.out, page["task"])
    os.makedirs(os.path.join(out, "images"), exist_ok=True)
    from util.files import finite_or_null  # the project's modules load only where they are needed

    with open(os.path.join(out, "results.json"), "w") as handle:
        json.dump(finite_or_null(page), handle, indent=1, default=_json_default, allow_nan=False)
    pareto_figure(page, os.path.join(out, "images", "pareto.png"))
    if page["gates"]["curve"]:
        curve_figure(page, os.path.join(out, "images", "curve.png"))
    spec, budget, gates, cost = page["spec"], page["budget"], page["gates"], page["cost"]
    parts = [f"<h1>Compression study: {page['task']} ({page['mode']})</h1>"]
    parts.append("<p>" + html.escape(" ".join(task_summary(page))) + "</p>")
    if page["mode"] == "quick":
        parts.append("<p><b>Quick run</b>: a budget that only checks that every arm runs end to end; its numbers carry "
                     "no claim.</p>")
    # verdicts
    parts.append("<h2>Verdicts</h2><p>" + html.escape(RULE) + "</p>")
    rows = [[text] + [page["verdicts"].get(lv, {}).get(key, "") for lv in page["levels"]] for key, text, *_ in CLAIMS]
    parts.append(_table(["claim"] + [f"1/{lv} of the teacher's MACs" for lv in page["levels"]], rows))
    # the table, floors first
    parts.append("<h2>Models and floors (test photographs)</h2><p>" + html.escape(
        f"Mean over the {len(page['per_tile']['names'])} test tiles of {len(page['photos'])} held-out photographs "
        f"({', '.join(page['photos'])}), averaged over seeds {', '.join(map(str, page['seeds']))}; "
        "[95 % bootstrap interval, test photographs resampled]. Scores of the 8-bit outputs test.py writes, "
        "metrics/paired.py (PSNR and SSIM per tile, averaged). 'beats floor': the arm beats the best Gaussian blur "
        "by the decision rule; a model that does not has not learned the task.") + "</p>")
    rows = []
    for key in ("input", "blur_val", "blur"):
        f = page["floors"][key]
        label = f["label"] + (f" (sigma {f['sigma']})" if f.get("sigma") else "")
        rows.append([label, "", "", "", _fmt_ci(f["PSNR"]), _fmt_ci(f["SSIM"], 3), _fmt_ci(f["L1"], 4), "", "floor"])
    teacher = page["arms"].get("teacher")
    for name, a in page["arms"].items():
        macs = a["macs"] if name == "teacher" else np.mean(list(a["macs"].values()))
        params = a["params"] if name == "teacher" else np.mean(list(a["params"].values()))
        ratio = f"{teacher['macs'] / macs:.2f}x" if teacher else ""
        seeds = "" if name == "teacher" else ", ".join(f"{v:.2f}" for v in a["PSNR"]["per_seed"].values())
        beats = ("yes" if gates.get("teacher_learned") else "no") if name == "teacher" else (
            "yes" if a["beats_floor"] else "no")
        rows.append([a["label"] + ("" if name == "teacher" else f" 1/{a['level']}"), f"{macs / 1e6:.2f}", ratio,
                     f"{params / 1e3:.1f}", _fmt_ci(a["PSNR"]), _fmt_ci(a["SSIM"], 3), _fmt_ci(a["L1"], 4), seeds,
                     beats])
    parts.append(_table(["model", "MACs (M)", "teacher / model", "params (K)", "PSNR (dB)", "SSIM", "L1",
                         "PSNR per seed", "beats floor"], rows))
    if page["failures"]:
        parts.append("<p>" + html.escape("Did not finish: " + "; ".join(f"{k} ({v})" for k, v in
                                                                         page["failures"].items())) + "</p>")
    if not page["with_init"]:
        parts.append("<p>The arm 'DMAD, search from the teacher' was not run: train.py on this checkout has no "
                     "--init_path.</p>")
    # paired differences
    parts.append("<h2>Paired differences (PSNR, dB)</h2>")
    rows = []
    for lv in page["levels"]:
        for key, diff in page["comparisons"].get(lv, {}).items():
            mean, seeds = _fmt_diff(diff)
            rows.append([f"1/{lv}", _claim_text(key), mean, seeds, page["verdicts"][lv][key]])
    parts.append(_table(["level", "claim", "X - Y [95 % interval]", "per seed", "verdict"], rows))
    parts.append('<p><img src="images/pareto.png" alt="MACs vs PSNR"></p>')
    # the teacher
    parts.append("<h2>The teacher</h2><p>" + html.escape(
        f"Trained once (seed 0) for {budget['teacher_epochs']} epochs = {budget['teacher_steps']} steps, shared by "
        f"every seed. Validation PSNR (photographs {', '.join(page['data']['split']['val'])}) every few epochs; the "
        f"curve has flattened when the mean of its last quarter's checkpoints is within {FLAT_DB} dB of the third "
        + (f"quarter's: difference {gates['curve_gain_last_quarter']:+.3f} dB, "
           f"{'flat' if gates['teacher_flat'] else 'not flat'}." if math.isfinite(gates["curve_gain_last_quarter"])
           else "quarter's: too few checkpoints to tell, not flat.")) + "</p>")
    if page.get("grey_levels"):
        grey = page["grey_levels"]
        parts.append("<p>" + html.escape(
            f"Grey levels: when the input x of the teacher (test tiles, [-1, 1]) becomes 0.5 x + 0.2, the input "
            f"changes "
            f"by {grey['input_change']:.3f} on average ([0, 1] scale) and the teacher's output by "
            f"{grey['output_change']:.4f}; a denoiser's output must follow its input's grey levels.") + "</p>")
    parts.append(_table(["epoch", "steps", "validation PSNR (dB)"],
                        [[c["epoch"], c["steps"], f"{c['val_psnr']:.2f}"] for c in gates["curve"]]))
    if gates["curve"]:
        parts.append('<p><img src="images/curve.png" alt="teacher validation curve"></p>')
    # the budget
    parts.append("<h2>Training budget (optimiser steps, counted from each stage's checkpoint)</h2><p>" + html.escape(
        f"Every arm: {budget['arm_epochs']} epochs x {budget['steps_per_epoch']} steps = "
        f"{budget['arm_epochs'] * budget['steps_per_epoch']} steps of its student, Adam (lr {budget['lr']}, beta1 "
        f"{budget['beta1']}), batch {budget['batch']}, the rate constant for epochs 1-{budget['arm_epochs'] // 2} and "
        f"decaying linearly over epochs {budget['arm_epochs'] // 2 + 1}-{budget['arm_epochs']} (DMAD: search = the "
        "first half, fine-tune = the second half, started with --epoch_count). 'teacher steps' are the teacher's, "
        "listed for the arms that use it.") + "</p>")
    rows = []
    for key, arm in budget["arms"].items():
        stages = "; ".join(f"{r['stage']}: epochs {r['epochs'][0]}-{r['epochs'][1]}, {r['steps']} steps"
                           for r in arm["stages"])
        rows.append([ARMS[arm["arm"]][0], f"1/{arm['level']}", arm["seed"], stages, arm["steps"], arm["teacher_steps"]])
    parts.append(_table(["arm", "level", "seed", "stages", "student steps", "teacher steps"], rows))
    # samples
    samples = page["samples"]
    parts.append(f"<h2>Sample tiles (seed {samples['seed']})</h2>")
    head = "".join(f"<th>{html.escape(h)}</th>" for h in samples["header"])
    body = "".join("<tr>" + "".join(f'<td><img src="{html.escape(p)}" width="96"></td>' if p else "<td>-</td>"
                                    for p in row) + "</tr>" for row in samples["rows"])
    parts.append(f"<table><tr>{head}</tr>{body}</table>")
    # set-up and cost
    data = page["data"]
    parts.append("<h2>Set-up</h2><p>" + html.escape(
        f"Task: {data['task']}; {data['tile']} px tiles, photographs scaled to a shorter side of at most "
        f"{data['short_side']} px; train: {', '.join(data['split']['train'])} ({data['counts']['train']} tiles); "
        f"validation: {', '.join(data['split']['val'])}; test: {', '.join(data['split']['test'])} "
        f"({data['counts']['test']} tiles). CycleGAN domains: A (noisy) = {', '.join(data['split']['domain_A'])}; "
        f"B (clean) = {', '.join(data['split']['domain_B'])}. Model: {spec['what']}. DMAD's search: "
        f"{' '.join(spec['search'])}, --mask_weight_decay "
        f"{', '.join(f'{v} at 1/{k}' for k, v in spec['search_decay'].items())}, stopped at the MACs target; "
        f"distillation: {' '.join(spec['distill'])}.") + "</p>")
    parts.append("<h2>Cost</h2><p>" + html.escape(cost_text(cost)) + "</p>")
    with open(os.path.join(out, "index.html"), "w") as handle:
        handle.write(_document(f"Compression study: {page['task']}", "\n".join(parts)))


def cost_text(cost):
    reused = (f" {cost['reused']} of the {cost['stages']} stages were reused from an earlier invocation, so this is "
              "not "
              "an end-to-end time." if cost["reused"] else " Every stage ran in this invocation: end to end.")
    return (f"Wall time of this invocation: {cost['wall_s'] / 60:.1f} min on {cost['cores']} CPU cores, "
            f"{cost['workers']} "
            f"stages at a time with one torch thread each.{reused} The stages that ran took {cost['stage_s'] / 60:.1f} "
            f"min of wall time and {cost['stage_cpu_s'] / 60:.1f} min of CPU time in all (plus "
            f"{cost['main_cpu_s'] / 60:.1f} min in this process). 1-minute load average at the start and the end: "
            f"{cost['load_start'][0]:.1f} and {cost['load_end'][0]:.1f}; a load above the number of cores means other "
            "work shared the CPU and inflated the wall time.")


def _document(title, body):
    style = ("body{font-family:sans-serif;margin:2em;max-width:1200px} table{border-collapse:collapse;margin:1em 0}"
             "td,th{border:1px solid #bbb;padding:3px 7px;text-align:right} th{background:#eee}"
             "td:first-child{text-align:left}"
             "img{image-rendering:pixelated}")
    return (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            f"<style>{style}</style></head><body>\n{body}\n</body></html>\n")


def write_index(study, pages):
    parts = ["<h1>Compression study</h1>", "<p>" + html.escape(RULE) + "</p>"]
    for page in pages:
        parts.append(f'<h2><a href="{page["task"]}/index.html">{page["task"]}</a></h2>')
        parts.append("<p>" + html.escape(" ".join(task_summary(page))) + "</p>")
        rows = [[text] + [page["verdicts"].get(lv, {}).get(key, "") for lv in page["levels"]]
                for key, text, *_ in CLAIMS]
        parts.append(_table(["claim"] + [f"1/{lv}" for lv in page["levels"]], rows))
    goal = all(p["goal"]["met"] for p in pages)
    parts.append("<p>" + html.escape(f"Goal on every task: {'met' if goal else 'not met'}.") + "</p>")
    parts.append("<h2>Cost</h2><p>" + html.escape(cost_text(pages[0]["cost"])) + "</p>")
    with open(os.path.join(study.out, "index.html"), "w") as handle:
        handle.write(_document("Compression study", "\n".join(parts)))


def _json_default(value):
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"not JSON: {type(value).__name__}")


# ------------------------------------------------------------------------------------------ entry

def print_plan(plan):
    for task in plan.tasks:
        steps = plan.batches_per_epoch(task)
        budget = plan.budget
        print(f"{task}: {steps} steps per epoch; teacher {budget['teacher_epochs'][task]} epochs "
              f"({budget['teacher_epochs'][task] * steps} steps); every arm {budget['arm_epochs'][task]} epochs "
              f"({budget['arm_epochs'][task] * steps} steps)")
    for stage in plan.stages:
        rates = stage_rates(stage.argv) if "--n_epochs" in stage.argv else []
        epochs = f"epochs {rates[0][0]}..{rates[-1][0]}, lr {rates[0][1]:.2e} -> {rates[-1][1]:.2e}" if rates else ""
        print(f"  {stage.key:55s} {stage.script:6s} {epochs}")
    print(f"{len(plan.stages)} stages")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="every arm at a tiny budget (one seed, 1/4 only)")
    parser.add_argument("--tasks", nargs="+", choices=sorted(TASKS), default=list(TASKS), help="default: both")
    parser.add_argument("--workers", type=int, default=WORKERS, help=f"stages at a time. default: {WORKERS}")
    parser.add_argument("--data", default=os.path.join(ROOT, "datasets", "study"),
                        help="the tasks' folder (written by datasets/make_study_tasks.py). default: datasets/study")
    parser.add_argument("--work", default=None, help="run folders. default: experiments/study[_quick]")
    parser.add_argument("--out", default=None, help="pages and results.json. default: results/study[_quick]")
    parser.add_argument("--plan", action="store_true", help="print every stage and its epochs; run nothing")
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    mode = "quick" if args.quick else "full"
    suffix = "_quick" if args.quick else ""
    work = os.path.abspath(args.work or os.path.join(ROOT, "experiments", f"study{suffix}"))
    out = os.path.abspath(args.out or os.path.join(ROOT, "results", f"study{suffix}"))
    data = os.path.abspath(args.data)
    if args.plan:
        _tasks_module().build(data)
        plan = Plan(mode, args.tasks, data, work, with_init=init_path_supported())
        check_equal_budget(plan)
        print_plan(plan)
        return 0
    study = Study(mode, args.tasks, data, work, out, args.workers,
                  log=lambda line: print(time.strftime("%H:%M:%S"), line, flush=True))
    pages = study.run()
    for page in pages:
        print(f"{page['task']}: " + " ".join(task_summary(page)))
        for level in page["levels"]:
            for key, text, *_ in CLAIMS:
                print(f"  1/{level} {text}: {page['verdicts'][level].get(key)}")
    print(f"wall time {study.wall / 60:.1f} min; page: {os.path.join(out, 'index.html')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
