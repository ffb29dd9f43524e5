"""What starting the mask search from the teacher buys: ``train.py --mask --init_path <teacher>`` against
``train.py --mask`` from random weights, at the same number of iterations and the same target MACs.

    python benchmarks/init_search.py [--iterations 250] [--teacher_iterations 1200] [--seeds 0 1]
                                     [--teacher_lr 0.002] [--search_lrs 0.002 0.0002] [--target 0.5]
                                     [--work experiments/init_search]

The task has ground truth: x4 super-resolution of 64 px tiles of the photographs scikit-image ships
(``skimage.data``, no download): A = the tile shrunk to 16 px and enlarged back to 64 px (bicubic), B
= the tile. Training tiles come from astronaut, rocket, motorcycle (both views), hubble_deep_field,
immunohistochemistry and retina, the test tiles from two other photographs, chelsea and coffee (the
photographs and their resizing are those of datasets/make_photo_dataset.py); the tiles are written
into ``--work``. The bicubic input itself is the floor a network has to beat.

One teacher (a pix2pix U-Net, ``--ngf 16``) is trained once (seed 0, ``--teacher_lr``). Then, for each seed and each
search learning rate, two searches with the same options and ``--AtoB_macs_threshold`` at
``--target`` times the teacher's MACs: one from random weights, one with ``--init_path`` the teacher.
Each search is pruned (``prune.py``, no fine-tune: the comparison is of the searches) and the pruned
generator is scored by ``test.py`` on the held-out tiles (L1 and PSNR against the ground truth). The
iteration at which each search reached the target (its early stop, method.md §4.3) is read off the
search as it runs. Every stage runs through the project's entry points, in this process.

Prints a markdown table (per seed, and the mean of each arm with half the range of its seeds; the
floor and the teacher), the command, the machine, the load average and the wall time. Two seeds are
indicative, not a significance test.
"""
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # idle OpenMP threads sleep on a shared CPU
import importlib.util  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import math  # noqa: E402
import shlex  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from compress import mask_search  # noqa: E402
from data import create_dataset  # noqa: E402
from data.transforms import to_tensor  # noqa: E402
from metrics.paired import PairedMetrics  # noqa: E402
from options import parse  # noqa: E402
from pipeline.checkpoint import load_generator  # noqa: E402
from util.cli import cli_entry  # noqa: E402
from util.errors import ArgumentParser, UserError  # noqa: E402
from util.flops import count_macs_params, format_count  # noqa: E402
from util.timing import cpu_name  # noqa: E402

log = logging.getLogger("dmad")

SIZE, NGF, BATCH = 64, 16, 4
SCALE = 4  # the super-resolution factor
N_TRAIN, N_TEST = 400, 48
# the search recipe of benchmarks/compression_study.py (pix2pix, method.md §3.5); its learning rate
# (0.002, so that the masks leave their random start in a short search) and training's (2e-4) are
# both measured, the same for both arms
SEARCH_FLAGS = ["--mask", "--mask_weight_decay", "1e-3", "--lambda_update_coeff", "1.0"]
ARMS = ("scratch", "init")
ARM_LABELS = {"scratch": "from random weights", "init": "from the teacher (--init_path)"}


# ------------------------------------------------------------------------------------------ running

_ENTRIES = {}


def entry(script):
    """The ``main`` of one of the repository's scripts, loaded by path (the standard library has a ``test``)."""
    if script not in _ENTRIES:
        spec = importlib.util.spec_from_file_location(f"dmad_bench_{script}", os.path.join(ROOT, f"{script}.py"))
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        _ENTRIES[script] = module.main
    return _ENTRIES[script]


def detach_logging():
    """Close the run-folder log handlers a stage installed, so the next stage never writes into them."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_dmad", False):
            root.removeHandler(handler)
            handler.close()


def run_stage(script, argv):
    try:
        entry(script)(argv)
    finally:
        detach_logging()


class StopRecorder:
    """Records, while a search runs, the iteration (batches from the start) at which each generator's
    early stop fired: wraps ``MaskSearch.after_iteration`` (which knows the iteration) and
    ``GeneratorSearch.early_stop`` (which fires the stop) for the duration of a ``with`` block."""

    def __enter__(self):
        self.iteration, self.stops = 0, {}
        self._after, self._stop = mask_search.MaskSearch.after_iteration, mask_search.GeneratorSearch.early_stop
        recorder, after, stop = self, self._after, self._stop

        def after_iteration(search, iteration, epoch, images_seen):
            recorder.iteration = iteration
            return after(search, iteration, epoch, images_seen)

        def early_stop(generator, image_size, vote):
            macs = stop(generator, image_size, vote)
            if macs is not None:
                recorder.stops[generator.name] = (recorder.iteration, macs)
            return macs

        mask_search.MaskSearch.after_iteration = after_iteration
        mask_search.GeneratorSearch.early_stop = early_stop
        return self

    def __exit__(self, *exc):
        mask_search.MaskSearch.after_iteration = self._after
        mask_search.GeneratorSearch.early_stop = self._stop


def schedule(iterations, dataset_size, batch):
    """Epoch options giving ``iterations`` batches of ``batch`` images (at least 2 epochs, half at the
    initial learning rate), each epoch at most the whole training set. Returns (argv, iterations)."""
    images = iterations * batch
    epochs = max(2, math.ceil(images / dataset_size))
    per_epoch = min(dataset_size, max(batch, round(images / epochs / batch) * batch))
    first = math.ceil(epochs / 2)
    return (["--n_epochs", str(first), "--n_epochs_decay", str(epochs - first), "--max_dataset_size", str(per_epoch)],
            epochs * math.ceil(per_epoch / batch))


def write_data(root):
    """The x4 super-resolution pairs (A = bicubic down and up, B = the tile) in ``root/{train,test}``;
    returns ``root``."""
    spec = importlib.util.spec_from_file_location("dmad_bench_photo", os.path.join(ROOT, "datasets",
                                                                                    "make_photo_dataset.py"))
    photos = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(photos)
    for split, names, count, code in (("train", photos.TRAIN_PHOTOS, N_TRAIN, 1), ("test", photos.HELD_OUT_PHOTOS,
                                                                                  N_TEST, 3)):
        os.makedirs(os.path.join(root, split))
        images = {name: photos.resize_short_side(photos.load_photo(name), 192) for name in names}
        for i in range(count):
            name = names[i % len(names)]
            photo = images[name]
            rng = np.random.default_rng([photos.SEED, code, i])
            x, y = int(rng.integers(0, photo.size[0] - SIZE + 1)), int(rng.integers(0, photo.size[1] - SIZE + 1))
            tile = photo.crop((x, y, x + SIZE, y + SIZE))
            small = tile.resize((SIZE // SCALE, SIZE // SCALE), Image.BICUBIC).resize((SIZE, SIZE), Image.BICUBIC)
            pair = Image.new("RGB", (2 * SIZE, SIZE))
            pair.paste(small, (0, 0))
            pair.paste(tile, (SIZE, 0))
            pair.save(os.path.join(root, split, f"{split}_{i:04d}_{name}.png"))
    return root


def floor(dataroot):
    """L1 and PSNR of the bicubic input itself against the ground truth, on the test tiles."""
    metrics = PairedMetrics()
    folder = os.path.join(dataroot, "test")
    for name in sorted(os.listdir(folder)):
        with Image.open(os.path.join(folder, name)) as pair:
            pair = pair.convert("RGB")
            a, b = pair.crop((0, 0, SIZE, SIZE)), pair.crop((SIZE, 0, 2 * SIZE, SIZE))
        metrics.update(to_tensor(a)[None], to_tensor(b)[None])
    return metrics.compute()


def common(work, seed):
    return ["--dataroot", os.path.join(work, "data"), "--model", "pix2pix",
            "--crop_size", str(SIZE), "--load_size", str(SIZE), "--ngf", str(NGF), "--ndf", str(NGF),
            "--batch_size", str(BATCH), "--gan_mode", "hinge", "--seed", str(seed), "--checkpoints_dir", work,
            "--display_id", "0", "--no_html", "--num_threads", "0", "--gpu_ids", "-1", "--metric", "none",
            "--print_freq", "100000", "--save_epoch_freq", "100000", "--overwrite"]


def score(work, seed, name, load_path):
    """test.py on the held-out crops: ``{"L1", "PSNR", "macs"}`` of the generator in ``load_path``."""
    results = os.path.join(work, "results")
    run_stage("test", common(work, seed)[:-1] + ["--name", name, "--load_path", load_path, "--results_dir", results,
                                                 "--phase", "test"])
    folder = os.path.join(results, name)
    found = sorted(os.path.join(folder, f, "metrics.json") for f in os.listdir(folder))
    with open(found[-1]) as handle:
        report = json.load(handle)
    return {"L1": report["L1"]["AtoB"], "PSNR": report["PSNR"]["AtoB"], "macs": report["macs"]["AtoB"]}


# ------------------------------------------------------------------------------------------ the table

def mean_spread(values, digits):
    """``"mean ± half-range"`` of two or more numbers (the spread of the seeds), or the one value, with
    ``digits`` decimals."""
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{sum(values) / len(values):.{digits}f} ± {(max(values) - min(values)) / 2:.{digits}f}"


def table(results, teacher, bicubic, iterations, target_macs):
    """The markdown table of ``results`` ({(arm, search lr): {seed: {"L1", "PSNR", "macs", "stop"}}};
    ``stop`` the iteration the target was reached at, or None), the ``teacher``'s row and the
    ``bicubic`` floor's ({"L1", "PSNR"[, "macs"]}), the search length and the target MACs."""
    lines = ["| model | search lr | seed | target reached at iteration (of %d) | MACs | L1 | PSNR (dB) |"
             % iterations, "|---|---|---|---|---|---|---|",
             f"| bicubic x{SCALE} input (no network) | | | | 0 | {bicubic['L1']:.4f} | {bicubic['PSNR']:.2f} |",
             f"| teacher (full U-Net) | | 0 | | {format_count(teacher['macs'])} | {teacher['L1']:.4f} | "
             f"{teacher['PSNR']:.2f} |"]
    for (arm, lr), rows in results.items():
        for seed, row in sorted(rows.items()):
            stop = row["stop"] if row["stop"] is not None else "not reached"
            lines.append(f"| search {ARM_LABELS[arm]}, pruned | {lr} | {seed} | {stop} | "
                         f"{format_count(row['macs'])} | {row['L1']:.4f} | {row['PSNR']:.2f} |")
    for (arm, lr), by_seed in results.items():
        rows = list(by_seed.values())
        stops = [r["stop"] for r in rows if r["stop"] is not None]
        stop = (mean_spread([float(s) for s in stops], 1) if len(stops) == len(rows)
                else f"{len(rows) - len(stops)} of {len(rows)} not reached")
        lines.append(f"| **search {ARM_LABELS[arm]}: mean ± half-range** | {lr} | {len(rows)} seeds | {stop} | "
                     f"{format_count(sum(r['macs'] for r in rows) / len(rows))} | "
                     f"{mean_spread([r['L1'] for r in rows], 4)} | {mean_spread([r['PSNR'] for r in rows], 2)} |")
    lines.append("")
    lines.append(f"Target: {format_count(target_macs)} MACs at {SIZE}x{SIZE} (--AtoB_macs_threshold). "
                 "2 seeds: indicative, not a significance test.")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------ main

def build_parser():
    parser = ArgumentParser(prog="benchmarks/init_search.py", description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=250, help="batches of each search. default: 250")
    parser.add_argument("--teacher_iterations", type=int, default=1200, help="batches of the teacher. default: 1200")
    parser.add_argument("--teacher_lr", type=float, default=0.002,
                        help="learning rate of the teacher (a short run: larger than training's 2e-4). default: 0.002")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="seeds of the searches. default: 0 1")
    parser.add_argument("--search_lrs", type=float, nargs="+", default=[0.002, 0.0002],
                        help="learning rates of the searches (each runs both arms). default: 0.002 0.0002")
    parser.add_argument("--target", type=float, default=0.5,
                        help="the target MACs, as a fraction of the teacher's. default: 0.5")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads. default: 2")
    parser.add_argument("--work", default=os.path.join(ROOT, "experiments", "init_search"),
                        help="folder of the runs (removed and written anew). default: experiments/init_search")
    return parser


def check(args):
    if args.iterations < 1 or args.teacher_iterations < 1:
        raise UserError("--iterations and --teacher_iterations must be at least 1")
    if not 0 < args.target < 1:
        raise UserError(f"--target must lie between 0 and 1 (a fraction of the teacher's MACs), got {args.target}")
    if args.threads < 1:
        raise UserError(f"--threads must be at least 1, got {args.threads}")
    if len(set(args.seeds)) != len(args.seeds):
        raise UserError("--seeds must differ from each other")
    if not all(0 < lr < 1 for lr in args.search_lrs + [args.teacher_lr]):
        raise UserError("--search_lrs and --teacher_lr must lie between 0 and 1")


def measure(args):
    check(args)
    torch.set_num_threads(args.threads)
    work = os.path.abspath(args.work)
    if os.path.isdir(work):
        shutil.rmtree(work)
    load_start, start = os.getloadavg(), time.perf_counter()
    bicubic = floor(write_data(os.path.join(work, "data")))
    n_train = len(create_dataset(parse("train", common(work, 0)), phase="train"))
    teacher_epochs, teacher_iterations = schedule(args.teacher_iterations, n_train, BATCH)
    search_epochs, search_iterations = schedule(args.iterations, n_train, BATCH)
    run_stage("train", common(work, 0) + ["--name", "teacher", "--lr", f"{args.teacher_lr:g}"] + teacher_epochs)
    teacher_path = os.path.join(work, "teacher", "checkpoints", "latest.pth")
    teacher_macs = count_macs_params(load_generator(teacher_path), (1, 3, SIZE, SIZE))[0]
    target = args.target * teacher_macs
    teacher = score(work, 0, "teacher", teacher_path)
    results = {(arm, lr): {} for lr in args.search_lrs for arm in ARMS}
    for seed in args.seeds:
        for arm, lr in results:
            name = f"{arm}_lr{lr:g}_seed{seed}"
            argv = common(work, seed) + ["--name", name, "--AtoB_macs_threshold", f"{target / 1e9:.9f}",
                                         "--lr", f"{lr:g}"] + SEARCH_FLAGS + search_epochs + \
                (["--init_path", teacher_path] if arm == "init" else [])
            with StopRecorder() as recorder:
                run_stage("train", argv)
            search = os.path.join(work, name, "checkpoints", "latest.pth")
            run_stage("prune", common(work, seed) + ["--name", f"{name}_pruned", "--mask", "--load_path", search])
            row = score(work, seed, f"{name}_pruned", os.path.join(work, f"{name}_pruned", "checkpoints",
                                                                   "model_0.pth"))
            row["stop"] = recorder.stops.get("G", (None,))[0]
            results[(arm, lr)][seed] = row
    wall = time.perf_counter() - start
    cpu = cpu_name()
    print(table({(arm, f"{lr:g}"): rows for (arm, lr), rows in results.items()}, teacher, bicubic,
                search_iterations, target))
    print()
    print(f"Command: python benchmarks/init_search.py {shlex.join(sys.argv[1:])}".rstrip())
    print(f"Machine: {cpu}, {os.cpu_count()} CPU cores, torch {torch.__version__}, {args.threads} threads; "
          f"load average (1, 5, 15 min) {', '.join(f'{x:.1f}' for x in load_start)} at the start, "
          f"{', '.join(f'{x:.1f}' for x in os.getloadavg())} at the end; wall time {wall / 60:.1f} min; "
          f"teacher {teacher_iterations} iterations at lr {args.teacher_lr:g}, each search {search_iterations}, "
          f"batch {BATCH}, "
          f"{SIZE} px, ngf {NGF}")
    return results



@cli_entry
def main(argv=None):
    return measure(build_parser().parse_args(argv))


if __name__ == "__main__":
    main()
