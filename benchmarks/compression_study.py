"""Compression study: DMAD against simpler ways to get a small generator, on paired data with ground truth.

    python benchmarks/compression_study.py [--task photo|toy] [--quick] [--out DIR] [--work DIR]

Every model is trained on the same data, with the same number of iterations per training stage and
the same seed, through the project's own entry points (``train.py``, ``prune.py --finetune``,
``test.py``, called in-process), so the study measures the code a user runs:

* ``teacher``: the full pix2pix U-Net (``train.py``);
* ``DMAD``: mask search from scratch (``train.py --mask``) stopped early at 1/2, 1/4 and 1/8 of the
  teacher's MACs (``--AtoB_macs_threshold``), pruned and fine-tuned with co-attention and discriminator
  distillation from the teacher (``prune.py --finetune``);
* ``DMAD, no distillation``: the same pruned generators fine-tuned with both distillation weights 0;
* ``thinner, from scratch`` (baseline A): every layer of the teacher's architecture narrowed by one
  factor, chosen so that the MACs are within 5 % of each DMAD generator's, trained from scratch for as
  many iterations as the DMAD generator saw (search + fine-tune);
* ``L1-norm pruning`` (baseline B): the trained teacher's filters ranked by their L1 norm (Li et al.,
  *Pruning Filters for Efficient ConvNets*, ICLR 2017) and cut to each DMAD generator's widths by the
  project's pruning code (``prune.py``), then the same distillation fine-tune as DMAD.

Each model is scored by ``test.py`` (L1, PSNR, SSIM against the ground truth, MACs and params at the
training size) and timed on the CPU. The page ``<out>/index.html`` has the table, a Pareto plot (MACs vs
PSNR per method), sample images per model and a reading of the numbers; ``<out>/results.json`` has every
number per seed. ``--quick`` runs a short budget twice (seeds 0 and 1) to show the run-to-run spread.
Stages already finished with the same arguments are reused when the study is run again (delete
``--work`` to start over).

Tasks: ``photo`` = colourisation of crops of scikit-image's photographs (datasets/make_photo_dataset.py,
written on first use), ``toy`` = the toy aligned set (edges -> filled shapes). For a real dataset see
the README ("Compression study").
"""
import os

# Idle OpenMP threads sleep instead of spinning: on a shared or busy CPU, spinning threads make
# training many times slower. Must be set before torch loads OpenMP; an explicit setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
import argparse  # noqa: E402
import glob  # noqa: E402
import importlib.util  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import math  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import torch  # noqa: E402
from tqdm import tqdm  # noqa: E402

from data import create_dataset  # noqa: E402
from models import MODELS  # noqa: E402
from pipeline.checkpoint import load_generator  # noqa: E402
from options import parse  # noqa: E402
from pipeline.checkpoint import load_checkpoint, save_checkpoint  # noqa: E402
from util.errors import UserError  # noqa: E402
from util.cli import cli_entry  # noqa: E402
from report.image import save_image, tensor2im  # noqa: E402
from util.logger import setup_logging  # noqa: E402
from report.page import cpu_latency_ms, write_report  # noqa: E402

log = logging.getLogger("dmad")

MODEL = "pix2pix"
LEVELS = (2, 4, 8)  # DMAD targets: 1/2, 1/4, 1/8 of the teacher's MACs
METHODS = {  # key -> (label, colour and marker of the plot)
    "teacher": ("teacher", "black", "*"),
    "dmad": ("DMAD", "tab:red", "o"),
    "nodistill": ("DMAD, no distillation", "tab:orange", "v"),
    "thin": ("thinner, from scratch (A)", "tab:blue", "s"),
    "l1prune": ("L1-norm pruning + distillation (B)", "tab:green", "D"),
}
MATCH_TOLERANCE = 0.05  # baseline A's MACs within 5 % of the DMAD generator's

TASKS = {
    "photo": {"dataroot": os.path.join(ROOT, "datasets", "photo"), "script": "make_photo_dataset.py",
              "input_nc": 1, "output_nc": 3,
              "what": "colourisation (grayscale -> colour) of 64 px crops of scikit-image's photographs; the "
                      "test crops come from two photographs (chelsea, coffee) that no training crop comes from"},
    "toy": {"dataroot": os.path.join(ROOT, "datasets", "toy", "aligned"), "script": "make_toy_dataset.py",
            "input_nc": 3, "output_nc": 3, "what": "the toy aligned set: black outlines -> filled colour shapes"},
}
# iterations: of every training stage (baseline A: twice, search + fine-tune); batch 4 at 64 px,
# ngf/ndf 16. The full photo run takes about 20-25 minutes on 2 idle cores.
BUDGETS = {
    "full": {"iterations": 800, "seeds": (0,)},
    "quick": {"iterations": 40, "seeds": (0, 1)},
}
SIZE, NGF, BATCH = 64, 16, 4  # defaults of --size, --ngf (= ndf), --batch_size
# the pix2pix recipe of the README and of the original's scripts (method.md §3.5, §7.3, §7.4);
# --mask_weight_decay per MACs level: the README's 1e-3 reaches 1/2 and 1/4 of the teacher's MACs within
# the full budget but not 1/8 (the masks settle near 1/4), so the 1/8 setting pushes ten times harder;
# the early stop still ends each search at its MACs target.
SEARCH_DECAY = {2: "1e-3", 4: "1e-3", 8: "1e-2"}


def search_flags(level):
    return ["--mask", "--mask_weight_decay", SEARCH_DECAY.get(level, "1e-3"), "--lambda_update_coeff", "1.0"]


# In a short search Adam moves a mask weight by about lr per step; at the default 2e-4 the masks
# could not leave their N(0, 0.2^2) start within the budget (same reason as the demo's search lr).
SEARCH_LR = "0.002"
DISTILL_FLAGS = ["--lambda_attention_distill", "10", "--lambda_discriminator_distill", "1e-4"]
NO_DISTILL_FLAGS = ["--lambda_attention_distill", "0", "--lambda_discriminator_distill", "0"]
SAMPLES = 4
LATENCY_SIZE = 256


# ------------------------------------------------------------------------------------------ stages

_MODULES = {}


def _entry(name):
    """The ``main`` of one of the repository's scripts (loaded by path: the stdlib has a ``test``)."""
    if name not in _MODULES:
        spec = importlib.util.spec_from_file_location(f"dmad_study_{name}", os.path.join(ROOT, f"{name}.py"))
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        _MODULES[name] = module
    return _MODULES[name].main


def schedule(iterations, dataset_size, batch):
    """Epoch options giving about ``iterations`` batches of ``batch`` images: half the epochs at the
    initial learning rate, half decaying, each over at most the whole training set. Returns (argv,
    iterations)."""
    images = iterations * batch
    epochs = max(2, math.ceil(images / dataset_size))
    per_epoch = min(dataset_size, max(batch, round(images / epochs / batch) * batch))
    first = math.ceil(epochs / 2)
    argv = ["--n_epochs", str(first), "--n_epochs_decay", str(epochs - first), "--max_dataset_size", str(per_epoch)]
    return argv, epochs * math.ceil(per_epoch / batch)


class Study:
    """One study run: the stages of every seed, their results and the page."""

    def __init__(self, task, quick, work, out, iterations=None, dataroot=None, direction="AtoB", size=SIZE, ngf=NGF,
                 batch_size=BATCH, gpu_ids="-1"):
        self.task, self.quick = task, quick
        self.spec = dict(TASKS[task])
        if dataroot is not None:  # any aligned dataset (A|B pairs in train/ and test/)
            self.spec.update(dataroot=os.path.abspath(dataroot), script=None, input_nc=3, output_nc=3,
                             what=f"the aligned dataset {dataroot} ({direction})")
        budget = BUDGETS["quick" if quick else "full"]
        self.iterations = iterations or budget["iterations"]
        self.seeds = budget["seeds"]
        self.work, self.out = os.path.abspath(work), os.path.abspath(out)
        self.dataroot = self.spec["dataroot"]
        self.direction, self.size, self.ngf, self.batch, self.gpu_ids = direction, size, ngf, batch_size, gpu_ids
        # test.py scores test/, or val/ where a dataset has no test/ (edges2shoes)
        has_test = dataroot is None or os.path.isdir(os.path.join(self.dataroot, "test"))
        self.test_phase = "test" if has_test else "val"
        self.timings = []  # (seed, stage, seconds it took, reused from an earlier invocation, load average)
        self.results = {}  # seed -> model name -> record
        self.thin_scale = {}  # (seed, level) -> width factor of baseline A
        self.rerun = set()  # seeds whose stages run from here on

    # -------------------------------------------------------------- data
    def prepare_data(self):
        if os.path.isdir(os.path.join(self.dataroot, "train")) and os.path.isdir(os.path.join(self.dataroot, self.test_phase)):
            return
        if self.spec["script"] is None:
            raise UserError(f"--dataroot {self.dataroot} needs train/ and test/ (or val/) folders of A|B pairs")
        log.info("writing the %s data with datasets/%s", self.task, self.spec["script"])
        path = os.path.join(ROOT, "datasets", self.spec["script"])
        spec = importlib.util.spec_from_file_location("dmad_study_data", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        module.main([])

    def common(self, seed):
        argv = ["--dataroot", self.dataroot, "--model", MODEL, "--input_nc", str(self.spec["input_nc"]),
                "--output_nc", str(self.spec["output_nc"]), "--crop_size", str(self.size), "--load_size",
                str(self.size), "--ngf", str(self.ngf), "--ndf", str(self.ngf), "--batch_size", str(self.batch),
                "--gan_mode", "hinge", "--seed", str(seed), "--checkpoints_dir", self.seed_dir(seed),
                "--display_id", "0", "--no_html", "--num_threads", "0", "--gpu_ids", self.gpu_ids, "--metric", "none",
                "--print_freq", "100000", "--save_epoch_freq", "100000"]
        return argv + (["--direction", self.direction] if self.direction != "AtoB" else [])

    def seed_dir(self, seed):
        return os.path.join(self.work, f"seed{seed}")

    def latest(self, seed, name):
        return os.path.join(self.seed_dir(seed), name, "checkpoints", "latest.pth")

    def stage(self, seed, name, script, argv, bar):
        """Run ``script.main(argv)`` as run ``name``, unless a finished run with the same argv exists and no
        earlier stage of this seed ran again (a later stage may read its outputs)."""
        run_dir = os.path.join(self.seed_dir(seed), name)
        marker = os.path.join(run_dir, "study_stage.json")
        bar.set_postfix_str(f"seed {seed}: {name}")
        if seed not in self.rerun and os.path.isfile(marker):
            with open(marker) as handle:
                done = json.load(handle)
            if done.get("argv") == argv:
                self.timings.append((seed, name, float(done.get("seconds", 0.0)), True, done.get("load")))
                bar.update()
                return
        if os.path.isdir(run_dir):  # an unfinished or different run: start it over
            shutil.rmtree(run_dir)
        self.rerun.add(seed)
        log.info("==== seed %d: %s (%s.py) ====", seed, name, script)
        start = time.perf_counter()
        _entry(script)(argv)
        seconds = time.perf_counter() - start
        os.makedirs(run_dir, exist_ok=True)
        load = os.getloadavg()[1]  # 5-minute average: how busy the CPU was while the stage ran
        with open(marker, "w") as handle:
            json.dump({"argv": argv, "seconds": seconds, "load": load}, handle)
        self.timings.append((seed, name, seconds, False, load))
        bar.update()

    # -------------------------------------------------------------- one seed
    def run_seed(self, seed, bar):
        common = self.common(seed)
        n_train = len(create_dataset(parse("train", common), phase="train"))
        epochs, self.stage_iterations = schedule(self.iterations, n_train, self.batch)
        twice, self.thin_iterations = schedule(2 * self.iterations, n_train, self.batch)
        teacher = self.latest(seed, "teacher")
        self.stage(seed, "teacher", "train", common + ["--name", "teacher"] + epochs, bar)
        teacher_macs = self.teacher_macs(teacher)
        for level in LEVELS:
            search = self.latest(seed, f"search_{level}x")
            threshold = teacher_macs / level / 1e9
            self.stage(seed, f"search_{level}x", "train",
                       common + ["--name", f"search_{level}x", "--lr", SEARCH_LR, "--AtoB_macs_threshold",
                                 f"{threshold:.9f}"] + search_flags(level) + epochs, bar)
            self.stage(seed, f"dmad_{level}x", "prune",
                       common + ["--name", f"dmad_{level}x", "--mask", "--load_path", search, "--finetune",
                                 "--pretrain_path", teacher] + DISTILL_FLAGS + epochs, bar)
            self.stage(seed, f"nodistill_{level}x", "prune",
                       common + ["--name", f"nodistill_{level}x", "--mask", "--load_path", search, "--finetune"]
                       + NO_DISTILL_FLAGS + epochs, bar)
            dmad = load_generator(self.latest(seed, f"dmad_{level}x"))
            thin_source = os.path.join(self.seed_dir(seed), "masks", f"thin_{level}x.pth")
            self.thin_scale[(seed, level)] = uniform_masks(search, thin_source, dmad, self.size)
            self.stage(seed, f"thin_{level}x", "prune",
                       common + ["--name", f"thin_{level}x", "--mask", "--load_path", thin_source, "--finetune",
                                 "--scratch"] + NO_DISTILL_FLAGS + twice, bar)
            l1_source = os.path.join(self.seed_dir(seed), "masks", f"l1prune_{level}x.pth")
            l1_norm_masks(search, teacher, l1_source, dmad.widths)
            self.stage(seed, f"l1prune_{level}x", "prune",
                       common + ["--name", f"l1prune_{level}x", "--mask", "--load_path", l1_source, "--finetune",
                                 "--pretrain_path", teacher] + DISTILL_FLAGS + epochs, bar)
        self.results[seed] = {}
        for name in self.model_names():
            results_dir = os.path.join(self.seed_dir(seed), "results")
            self.stage(seed, f"test_{name}", "test",
                       common + ["--name", name, "--load_path", self.latest(seed, name), "--results_dir", results_dir],
                       bar)
            self.results[seed][name] = self.score(seed, name, results_dir)

    def teacher_macs(self, path):
        from util.flops import count_macs_params  # only when the teacher's MACs are counted

        net = load_generator(path)
        return count_macs_params(net, (1, self.spec["input_nc"], self.size, self.size))[0]

    @staticmethod
    def model_names():
        return ["teacher"] + [f"{m}_{level}x" for level in LEVELS for m in ("dmad", "nodistill", "thin", "l1prune")]

    def score(self, seed, name, results_dir):
        found = sorted(glob.glob(os.path.join(results_dir, name, "test_*", "metrics.json")))
        if not found:
            raise RuntimeError(f"test.py wrote no metrics.json for {name} in {results_dir}")
        with open(found[-1]) as handle:
            report = json.load(handle)
        net = load_generator(self.latest(seed, name))
        d = self.direction
        return {"macs": report["macs"][d], "params": report["params"][d],
                "L1": report["L1"][d], "PSNR": report["PSNR"][d], "SSIM": report["SSIM"][d],
                "latency_ms": latency(net, self.spec["input_nc"]),
                "widths": dict(net.widths)}

    # -------------------------------------------------------------- all
    def run(self):
        self.prepare_data()
        load = os.getloadavg()
        start = time.perf_counter()
        total = len(self.seeds) * (1 + 5 * len(LEVELS) + len(self.model_names()))
        bar = tqdm(total=total, desc=f"study {self.task}", unit="stage", disable=None)
        for seed in self.seeds:
            self.run_seed(seed, bar)
        bar.close()
        self.wall = time.perf_counter() - start
        self.load = (load, os.getloadavg())
        return write_page(self)


def latency(net, channels):
    """CPU latency (ms) at LATENCY_SIZE px, batch 1: the lowest of three medians of 5 runs, because other
    work on a shared CPU only ever adds time."""
    return min(cpu_latency_ms(net, (1, channels, LATENCY_SIZE, LATENCY_SIZE), runs=5) for _ in range(3))


# ------------------------------------------------------------------------------------------ baselines

def _set_masks(net, keep):
    """Masks of ``net`` at bound 0 keeping exactly the channels ``keep`` ({set: LongTensor}); every
    mask of a set (a residual group has several) gets the same +1 / -1 weights."""
    structure = net.structure()
    with torch.no_grad():
        for set_name, index in keep.items():
            for path in structure.masks_of(set_name):
                mask = net.get_submodule(path)
                weight = torch.full_like(mask.mask_weight, -1.0)
                weight[index] = 1.0
                mask.mask_weight.copy_(weight)
                mask.update(0.0)


def _write_mask_checkpoint(search_path, out_path, net, discriminators=None):
    """A copy of the search checkpoint with the generator ``net`` (masked, full width) and optionally
    other discriminators: the input ``prune.py`` expects, so its own slicing cuts the baselines."""
    state = load_checkpoint(search_path)
    names = MODELS[MODEL].generator_names
    state["nets"][names[0]] = {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}
    state["configs"][names[0]] = net.config()
    for name, (weights, config) in (discriminators or {}).items():
        state["nets"][name], state["configs"][name] = weights, config
    state["scores"] = {}
    save_checkpoint(state, out_path)


def uniform_widths(structure, scale):
    return {name: max(1, round(scale * cset.width)) for name, cset in structure.sets.items()}


def uniform_masks(search_path, out_path, target, size):
    """Baseline A: masks keeping the first ``round(s * width)`` channels of every set, ``s`` chosen so that
    the MACs at ``size`` px are as close as possible to ``target``'s (a generator). Returns ``s``; raises
    RuntimeError when no ``s`` lands within MATCH_TOLERANCE."""
    net = load_generator(search_path)
    structure = net.structure()
    goal = structure.macs_params(dict(target.widths), (size, size))[0]
    best = None
    for step in range(1, 2001):
        scale = step / 2000
        macs = structure.macs_params(uniform_widths(structure, scale), (size, size))[0]
        if best is None or abs(macs / goal - 1) < best[1]:
            best = (scale, abs(macs / goal - 1))
    scale, error = best
    if error > MATCH_TOLERANCE:
        raise RuntimeError(f"no uniform width scale matches {goal} MACs within {MATCH_TOLERANCE:.0%} "
                           f"(best {scale} is {error:.1%} off)")
    widths = uniform_widths(structure, scale)
    _set_masks(net, {name: torch.arange(w) for name, w in widths.items()})
    _write_mask_checkpoint(search_path, out_path, net)
    return scale


def l1_norm_ranking(net):
    """{set: channel indices by decreasing L1 norm of the filters that write them} of a generator
    (ConvTranspose2d weights are (in, out, k, k): the filter of output c is ``weight[:, c]``)."""
    structure = net.structure()
    ranking = {}
    for name in structure.sets:
        norms = 0
        for conv in structure.writers(name):
            weight = net.get_submodule(conv.name).weight.detach().abs()
            norms = norms + weight.sum(dim=(0, 2, 3) if conv.transposed else (1, 2, 3))
        ranking[name] = torch.argsort(norms, descending=True, stable=True)
    return ranking


def l1_norm_masks(search_path, teacher_path, out_path, widths):
    """Baseline B: the teacher's generator weights in a masked generator whose masks keep, per set, the
    ``widths[set]`` filters of largest L1 norm; the teacher's discriminator comes along (the fine-tune
    starts from it as DMAD's starts from the search's)."""
    teacher = load_generator(teacher_path)
    net = load_generator(search_path)
    missing, unexpected = net.load_state_dict(teacher.state_dict(), strict=False)
    if unexpected or any(not key.endswith(("mask_weight", "bound")) for key in missing):
        raise RuntimeError(f"the teacher's generator does not fit the search's: {unexpected[:3]} {missing[:3]}")
    ranking = l1_norm_ranking(teacher)
    _set_masks(net, {name: ranking[name][:widths[name]] for name in ranking})
    state = load_checkpoint(teacher_path)
    discriminators = {n: (state["nets"][n], state["configs"][n]) for n in MODELS[MODEL].discriminator_names}
    _write_mask_checkpoint(search_path, out_path, net, discriminators)


# ------------------------------------------------------------------------------------------ page

METRICS = ("L1", "PSNR", "SSIM")
HIGHER_BETTER = {"L1": False, "PSNR": True, "SSIM": True}


def split_name(name):
    """``"dmad_4x"`` -> ("dmad", 4); ``"teacher"`` -> ("teacher", 1)."""
    if name == "teacher":
        return "teacher", 1
    method, level = name.rsplit("_", 1)
    return method, int(level[:-1])


def summarise(results):
    """{model: {"mean": {...}, "spread": {...}, "per_seed": [...]}} over the seeds of ``results``
    ({seed: {model: record}}); ``spread`` = max - min over seeds (0 for one seed)."""
    seeds = sorted(results)
    summary = {}
    for name in results[seeds[0]]:
        records = [results[s][name] for s in seeds]
        keys = ("macs", "params", "latency_ms") + METRICS
        summary[name] = {
            "mean": {k: sum(r[k] for r in records) / len(records) for k in keys},
            "spread": {k: max(r[k] for r in records) - min(r[k] for r in records) for k in keys},
            "per_seed": {str(s): {k: results[s][name][k] for k in keys} for s in seeds},
            "widths": records[0]["widths"],
        }
    return summary


def reading(summary, seeds):
    """Per MACs level: which method has the lowest L1, by how much, DMAD against each other method, and
    the run-to-run spread. Returns (list of sentences, table rows)."""
    sentences, rows = [], []
    teacher = summary["teacher"]["mean"]
    for level in LEVELS:
        names = {m: f"{m}_{level}x" for m in METHODS if m != "teacher"}
        l1 = {m: summary[n]["mean"]["L1"] for m, n in names.items()}
        order = sorted(l1, key=l1.get)
        best, second = order[0], order[1]
        margin = 100 * (l1[second] - l1[best]) / l1[second]
        macs = summary[names["dmad"]]["mean"]["macs"]
        spread = max(summary[n]["spread"]["L1"] for n in names.values())
        text = (f"At 1/{level} of the teacher's MACs (DMAD: {teacher['macs'] / macs:.1f}x fewer), the lowest L1 is "
                f"{METHODS[best][0]}'s ({l1[best]:.4f}), {margin:.1f} % below the next, {METHODS[second][0]} "
                f"({l1[second]:.4f}).")
        if len(seeds) > 1:
            gap = l1[second] - l1[best]
            text += (f" The largest seed-to-seed difference of one model's L1 at this level is {spread:.4f}: the gap "
                     f"is {'larger' if gap > spread else 'not larger'} than the run-to-run spread.")
        else:
            text += " One seed: see the quick run (two seeds) for the run-to-run spread."
        sentences.append(text)
        dmad = l1["dmad"]
        for m in ("nodistill", "thin", "l1prune"):
            rows.append([f"1/{level}", METHODS[m][0], f"{l1[m]:.4f}", f"{dmad:.4f}",
                         f"{100 * (l1[m] - dmad) / l1[m]:+.1f} %",
                         f"{summary[names[m]]['mean']['PSNR'] - summary[names['dmad']]['mean']['PSNR']:+.2f}"])
    better = [n for n in summary if n != "teacher" and summary[n]["mean"]["L1"] < teacher["L1"]]
    if better:
        sentences.append(f"{len(better)} of the {len(summary) - 1} compressed generators have a lower L1 than the "
                         f"teacher ({teacher['L1']:.4f}): at this budget the teacher is not converged, so being close "
                         "to it is a weak bar, and the comparison between the methods at the same MACs is the "
                         "informative one.")
    return sentences, rows


INCONCLUSIVE = ("Inconclusive: this study cannot support a compression claim. It prints no floors (the input "
                "copied, a classical method), and on the photo task a 6-parameter per-channel colour map beats every "
                "network, the teacher included, so the numbers measure an early transient, not which small "
                "generator is better; only the DMAD search trains at --lr 0.002 (every other arm at 2e-4); the "
                "teacher is beaten by most of its students, so distillation from it cannot help; one seed, no "
                "confidence interval, and a test set of two photographs.")


def goal(summary):
    """The verdict on the goal (a DMAD generator with >= 4x fewer MACs, L1 within 10 % of the teacher's and
    lower than both baselines): always inconclusive for this study (see INCONCLUSIVE for why). Returns
    (None, sentence); the sentence lists the raw comparisons without drawing a conclusion from them."""
    teacher = summary["teacher"]["mean"]
    lines = []
    for level in LEVELS:
        d = summary[f"dmad_{level}x"]["mean"]
        ratio = teacher["macs"] / d["macs"]
        if ratio < 4:
            continue
        a, b = summary[f"thin_{level}x"]["mean"]["L1"], summary[f"l1prune_{level}x"]["mean"]["L1"]
        lines.append(f"At {ratio:.1f}x fewer MACs DMAD's L1 is {d['L1']:.4f} (teacher {teacher['L1']:.4f}, "
                     f"baseline A {a:.4f}, baseline B {b:.4f}).")
    return None, INCONCLUSIVE + " Raw numbers, not evidence: " + (" ".join(lines) or "no DMAD generator reached "
                                                                  "4x fewer MACs.")


def pareto_figure(summary, path, seeds, size):
    """MACs (log) vs PSNR, one series per method; error bars = the range over seeds."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4.8), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    for method, (label, colour, marker) in METHODS.items():
        names = ["teacher"] if method == "teacher" else [f"{method}_{level}x" for level in LEVELS]
        xs = [summary[n]["mean"]["macs"] / 1e6 for n in names]
        ys = [summary[n]["mean"]["PSNR"] for n in names]
        err = [summary[n]["spread"]["PSNR"] / 2 for n in names] if len(seeds) > 1 else None
        ax.errorbar(xs, ys, yerr=err, label=label, color=colour, marker=marker, markersize=9 if marker == "*" else 6,
                    linestyle="-" if len(xs) > 1 else "none", capsize=3)
    ax.set_xscale("log")
    ax.set_xlabel(f"MACs of the generator at {size}x{size} px (M, log scale)")
    ax.set_ylabel("PSNR on the test split (dB, higher is better)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title("Quality against cost" + (f" (mean of {len(seeds)} seeds, bars: range)" if len(seeds) > 1 else ""))
    fig.tight_layout()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fig.savefig(path)


def sample_grids(study, seed):
    """One grid per MACs level: input, ground truth, teacher and the four methods on SAMPLES test images."""
    opt = parse("test", study.common(seed) + ["--name", "samples", "--phase", study.test_phase])
    dataset = create_dataset(opt, phase=study.test_phase, train=False)
    count = min(SAMPLES, len(dataset))
    step = max(1, len(dataset) // count)
    items = [dataset[i * step] for i in range(count)]
    inputs = torch.stack([item["A"] for item in items])
    outputs = {}
    with torch.no_grad():
        for name in study.model_names():
            outputs[name] = load_generator(study.latest(seed, name))(inputs)
    paths = {}
    for i, item in enumerate(items):
        for label, image in [("input", item["A"]), ("truth", item["B"])] + [(n, outputs[n][i]) for n in outputs]:
            rel = f"images/sample{i}_{label}.png"
            save_image(tensor2im(image.unsqueeze(0)), os.path.join(study.out, rel))
            paths[(i, label)] = rel
    sections = []
    methods = [m for m in METHODS if m != "teacher"]
    for level in LEVELS:
        rows = [[paths[(i, "input")], paths[(i, "truth")], paths[(i, "teacher")]]
                + [paths[(i, f"{m}_{level}x")] for m in methods] for i in range(count)]
        sections.append({"title": f"Samples at 1/{level} of the teacher's MACs (seed {seed})",
                         "grid": {"header": ["input", "ground truth", "teacher"] + [METHODS[m][0] for m in methods],
                                  "rows": rows}})
    return sections


def _fmt(summary, name, key, digits, scale=1.0, seeds=(0,)):
    mean, spread = summary[name]["mean"][key] * scale, summary[name]["spread"][key] * scale
    return f"{mean:.{digits}f}" + (f" ± {spread / 2:.{digits}f}" if len(seeds) > 1 else "")


def table_rows(summary, names, seeds):
    """The models table: [model, method, MACs (M), MACs ratio, params (K), latency, L1, PSNR, SSIM] per model."""
    teacher = summary["teacher"]["mean"]
    rows = []
    for name in names:
        method, level = split_name(name)
        m = summary[name]["mean"]
        match = ""
        if method == "thin":
            match = f" ({100 * (m['macs'] / summary[f'dmad_{level}x']['mean']['macs'] - 1):+.1f} % vs DMAD)"
        rows.append([name, METHODS[method][0], f"{m['macs'] / 1e6:.2f}{match}", f"{teacher['macs'] / m['macs']:.2f}x",
                     f"{m['params'] / 1e3:.1f}", _fmt(summary, name, "latency_ms", 1, seeds=seeds),
                     _fmt(summary, name, "L1", 4, seeds=seeds), _fmt(summary, name, "PSNR", 2, seeds=seeds),
                     _fmt(summary, name, "SSIM", 3, seeds=seeds)])
    return rows


TABLE_HEADER = ["model", "method", "MACs (M)", "MACs: teacher / model", "params (K)", "CPU latency (ms)", "L1",
                "PSNR (dB)", "SSIM"]


def markdown_table(rows):
    lines = ["| " + " | ".join(TABLE_HEADER) + " |", "|" + "---|" * len(TABLE_HEADER)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def write_page(study):
    """results.json and index.html of the study; returns the page's path."""
    os.makedirs(os.path.join(study.out, "images"), exist_ok=True)
    seeds = list(study.seeds)
    summary = summarise(study.results)
    sentences, dmad_rows = reading(summary, seeds)
    reached, verdict = goal(summary)
    pareto_figure(summary, os.path.join(study.out, "images", "pareto.png"), seeds, study.size)
    stage_seconds = sum(t[2] for t in study.timings)
    reused = sum(1 for t in study.timings if t[3])
    loads = [t[4] for t in study.timings if t[4] is not None]
    mode = "quick" if study.quick else "full"
    data = {"task": study.task, "mode": mode, "seeds": seeds, "iterations_per_stage": study.stage_iterations,
            "iterations_baseline_A": study.thin_iterations, "batch_size": study.batch, "size": study.size,
            "ngf": study.ngf, "dataroot": study.dataroot,
            "wall_s": study.wall, "stage_s": stage_seconds, "reused_stages": reused,
            "stage_load_average": (sum(loads) / len(loads)) if loads else None,
            "load_average": {"start": study.load[0], "end": study.load[1]}, "threads": torch.get_num_threads(),
            "goal_reached": reached, "goal": verdict, "reading": sentences, "summary": summary,
            "thin_scale": {f"seed{s}_{lv}x": v for (s, lv), v in study.thin_scale.items()}}
    with open(os.path.join(study.out, "results.json"), "w") as handle:
        json.dump(data, handle, indent=2)

    rows = table_rows(summary, study.model_names(), seeds)
    study.table = markdown_table(rows)
    spread_text = (f"Values are means over seeds {', '.join(map(str, seeds))}, ± half their range."
                   if len(seeds) > 1 else f"One seed ({seeds[0]}).")
    load0, load1 = study.load
    setup = (f"Task: {study.spec['what']}. Model: pix2pix, U-Net generator and PatchGAN (ngf = ndf = {study.ngf}, "
             f"{study.size} px, hinge GAN loss, batch {study.batch}). Budget ({mode}): {study.stage_iterations} "
             f"iterations per training stage (teacher, each search, each fine-tune); baseline A trains from scratch for "
             f"{study.thin_iterations} iterations, as many as a DMAD generator sees (search + fine-tune). "
             f"DMAD searches with --lambda_update_coeff 1 at --lr {SEARCH_LR}, --mask_weight_decay "
             f"{', '.join(f'{SEARCH_DECAY[lv]} (1/{lv})' for lv in LEVELS if lv in SEARCH_DECAY)}, and stops "
             f"at 1/2, 1/4, 1/8 of the teacher's MACs; fine-tunes distil with --lambda_attention_distill 10 "
             f"--lambda_discriminator_distill 1e-4 at the default --lr. The search's learning rate is DMAD's own "
             f"setting (the masks must move within the budget) and trains the generator's weights at that rate too: "
             f"the no-distillation ablation isolates the distillation, not the search's learning rate, and on a "
             f"short budget the faster search can help DMAD's generators by itself. {spread_text}")
    machine = (f"The stages took {stage_seconds / 60:.1f} min in all (the sum of their wall times when they ran; "
               f"{reused} of them were reused from an earlier invocation of the same study, this invocation took "
               f"{study.wall / 60:.1f} min) on {os.cpu_count()} CPU cores, {torch.get_num_threads()} torch threads. "
               + (f"The 5-minute load average at the end of the stages was {min(loads):.1f} to {max(loads):.1f} "
                  f"(mean {sum(loads) / len(loads):.1f}). " if loads else "")
               + f"At this invocation's start and end it was {load0[0]:.1f} and {load1[0]:.1f}. A load above the core "
               "count means other work shared the CPU: wall times and latencies are inflated by it, latencies most "
               "(compare MACs for the cost).")
    sections = [
        {"title": "Set-up", "text": setup},
        {"title": "Machine", "text": machine},
        {"title": "Goal", "text": verdict},
        {"title": "Models", "text": "MACs and params at the training size by the project's counters (util/flops.py); "
                                    f"CPU latency: the lowest of three medians of 5 runs at {LATENCY_SIZE}x{LATENCY_SIZE} px, batch 1; "
                                    "L1 (lower is better), PSNR and SSIM (higher is better) on the test split, "
                                    "from test.py's metrics.json.",
         "table": {"header": TABLE_HEADER, "rows": rows}},
        {"title": "Pareto plot", "images": [("images/pareto.png", "MACs vs PSNR per method")]},
        {"title": "Reading", "text": " ".join(sentences)},
        {"title": "DMAD against each other method, per MACs level",
         "text": "L1 gain = how much lower DMAD's L1 is (positive: DMAD better); PSNR gain in dB.",
         "table": {"header": ["MACs level", "method", "its L1", "DMAD L1", "DMAD's L1 gain", "DMAD's PSNR gain (dB)"],
                   "rows": dmad_rows}},
    ]
    sections += sample_grids(study, seeds[0])
    timing_rows = [[f"seed {s}", name, f"{t:.1f}", "reused" if r else "now", "" if ld is None else f"{ld:.1f}"]
                   for s, name, t, r, ld in study.timings]
    sections.append({"title": "Stages", "text": "Wall time of every stage when it ran (s), and the 5-minute load "
                                                "average at its end.",
                     "table": {"header": ["seed", "stage", "seconds", "ran", "load"], "rows": timing_rows}})
    page = write_report(study.out, f"Compression study: {study.task} ({mode})", sections)
    log.info("report: %s", page)
    for sentence in [verdict] + sentences:
        log.info("%s", sentence)
    return page


# ------------------------------------------------------------------------------------------ entry

@cli_entry
def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", choices=sorted(TASKS), default="photo", help="default: photo")
    parser.add_argument("--quick", action="store_true", help="a short budget, two seeds (minutes)")
    parser.add_argument("--work", default=None, help="checkpoints and logs. default: experiments/study/<task>[_quick]")
    parser.add_argument("--out", default=None, help="the page and results.json. default: results/study/<task>")
    parser.add_argument("--iterations", type=int, default=None,
                        help=f"iterations per training stage. default: {BUDGETS['full']['iterations']}, "
                             f"{BUDGETS['quick']['iterations']} with --quick")
    real = parser.add_argument_group("another aligned dataset (e.g. on a GPU)")
    real.add_argument("--dataroot", default=None, help="train/ and test/ folders of A|B pairs, instead of --task's data")
    real.add_argument("--direction", choices=("AtoB", "BtoA"), default="AtoB", help="default: AtoB")
    real.add_argument("--size", type=int, default=SIZE, help=f"crop size in px. default: {SIZE}")
    real.add_argument("--ngf", type=int, default=NGF, help=f"teacher width (ngf = ndf). default: {NGF}")
    real.add_argument("--batch_size", type=int, default=BATCH, help=f"default: {BATCH}")
    real.add_argument("--gpu_ids", default="-1", help="as train.py's. default: -1 (CPU)")
    args = parser.parse_args(argv)
    if args.iterations is not None and args.iterations < 1:
        raise UserError("--iterations must be at least 1")
    if args.size < 32 or args.size & (args.size - 1):
        raise UserError(f"--size {args.size}: use a power of two of at least 32 (the U-Net depth follows it)")
    task = args.task if args.dataroot is None else os.path.basename(os.path.normpath(args.dataroot))
    work = args.work or os.path.join(ROOT, "experiments", "study", task + ("_quick" if args.quick else ""))
    out = args.out or os.path.join(ROOT, "results", "study", task)
    setup_logging()
    study = Study(args.task, args.quick, work, out, args.iterations, args.dataroot, args.direction, args.size,
                  args.ngf, args.batch_size, args.gpu_ids)
    page = study.run()
    print(study.table)
    print(f"report: {page}")


if __name__ == "__main__":
    main()
