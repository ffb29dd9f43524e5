"""The whole DMAD pipeline on the bundled toy data (``make demo``), on the CPU.

Stages: teacher training -> mask search -> prune -> distillation fine-tune -> test, then an HTML report
at ``results/demo/index.html``: MACs/params before and after, CPU latency of the full and the pruned
generator, the kept channels per layer, and input / teacher / searched / fine-tuned images side by side.

    python scripts/demo.py [--preset demo|tiny] [--out results/demo] [--work experiments/demo]

Each run starts over: the stage folders an earlier run left under --work are removed first.
"""
import os

import importlib.util
import logging
import shutil
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from util.cli import before_imports  # noqa: E402

before_imports()  # before torch loads: OpenMP's idle policy, a quiet Ctrl-C

import torch  # noqa: E402
from tqdm import tqdm  # noqa: E402

from data import create_dataloader, create_dataset  # noqa: E402
from models import MODELS  # noqa: E402
from pipeline.checkpoint import load_generator  # noqa: E402
from options import parse  # noqa: E402
from pipeline.checkpoint import read_checkpoint  # noqa: E402
from util.errors import ArgumentParser, UserError  # noqa: E402
from util.cli import cli_entry  # noqa: E402
from util.files import FolderLock  # noqa: E402
from util.flops import format_count  # noqa: E402
from report.image import save_image, tensor2im  # noqa: E402
from util.logger import setup_logging  # noqa: E402
from report.page import cpu_latency_ms, write_report  # noqa: E402
from report.visualizer import mask_search_figure, plot_kept_channels  # noqa: E402

log = logging.getLogger("dmad")

# Sizes of each preset: the demo takes a few minutes on 2 cores; "tiny" is for the test suite. The
# search runs at a larger learning rate than the default: in a few hundred steps Adam moves a mask
# weight by about lr per step, too little at 2e-4 to leave its random start (N(0, 0.2^2)).
PRESETS = {
    "demo": {"crop": 64, "ngf": 16, "ndf": 16, "images": 64, "teacher_epochs": (3, 1), "search_epochs": (4, 2),
             "finetune_epochs": (2, 1), "decay": "0.002", "search_lr": "0.002", "samples": 6, "latency_size": 256},
    "tiny": {"crop": 32, "ngf": 8, "ndf": 8, "images": 4, "teacher_epochs": (1, 0), "search_epochs": (2, 1),
             "finetune_epochs": (1, 0), "decay": "0.01", "search_lr": "0.002", "samples": 2, "latency_size": 64},
}


def _entry(name):
    """The ``main`` of one of the repository's scripts (test.py clashes with the stdlib ``test``)."""
    spec = importlib.util.spec_from_file_location(f"dmad_{name}", os.path.join(ROOT, f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


def _common(p, work):
    """The options of every stage (data, device, run folders)."""
    return ["--dataroot", os.path.join(ROOT, "datasets", "toy", "unaligned"), "--model", "cyclegan",
            "--crop_size", str(p["crop"]), "--load_size", str(p["crop"]), "--max_dataset_size", str(p["images"]),
            "--gpu_ids", "-1", "--checkpoints_dir", work, "--metric", "none"]


def _training(p):
    """The options of the training stages only: given to test.py they would each draw a warning
    that they have no effect there."""
    return ["--ndf", str(p["ndf"]), "--display_id", "0", "--num_threads", "0",
            "--print_freq", str(max(p["images"] // 2, 1)), "--display_freq", str(p["images"])]


def _epochs(pair):
    return ["--n_epochs", str(pair[0]), "--n_epochs_decay", str(pair[1])]


# The folders the stages write under --work: the demo's own, so a new run may remove them.
STAGE_FOLDERS = ("teacher", "search", "student", "results")


def start_over(work):
    """Remove the stage folders an earlier demo run left under ``work`` (each run starts from scratch,
    so that ``make demo`` can be run again); anything else in ``work`` is left alone.

    Raises UserError when a stage folder is in use by a running train.py / prune.py."""
    found = [os.path.join(work, name) for name in STAGE_FOLDERS if os.path.lexists(os.path.join(work, name))]
    if not found:
        return
    folders = [path for path in found if os.path.isdir(path) and not os.path.islink(path)]
    locks = [FolderLock(path) for path in folders]
    try:
        for lock in locks:
            if not lock.acquire():
                raise UserError(f"{lock.folder} is in use by another run (a demo still running?): wait for it to "
                                "end, or give another --work")
        log.info("%s holds an earlier demo run: starting over (removing %s)", work,
                 ", ".join(os.path.basename(path) for path in found))
        for path in found:
            if path in folders:
                shutil.rmtree(path)
            else:
                os.remove(path)
    finally:
        for lock in locks:
            lock.release()


def run_pipeline(preset="demo", work="experiments/demo", out="results/demo"):
    """Run every stage (after removing an earlier run's stage folders under ``work``) and write the
    report; returns the report's path."""
    p = PRESETS[preset]
    work, out = os.path.abspath(work), os.path.abspath(out)
    start_over(work)
    common = _common(p, work)
    train = common + _training(p) + ["--ngf", str(p["ngf"])]  # prune.py reads ngf from the checkpoint
    teacher = os.path.join(work, "teacher", "checkpoints", "latest.pth")
    search = os.path.join(work, "search", "checkpoints", "latest.pth")
    pruned = os.path.join(work, "student", "checkpoints", "model_0.pth")
    student = os.path.join(work, "student", "checkpoints", "latest.pth")
    stages = [
        ("teacher training", "train", train + ["--name", "teacher"] + _epochs(p["teacher_epochs"])),
        ("mask search", "train", train + ["--name", "search", "--mask", "--mask_weight_decay", p["decay"],
                                           "--lambda_update_coeff", "1.0", "--block_coeff", "1.0",
                                           "--upconv_coeff", "100.0", "--upconv_bound", "--lr", p["search_lr"]]
         + _epochs(p["search_epochs"])),
        ("prune + distillation fine-tune", "prune",
         common + _training(p) + ["--name", "student", "--mask", "--load_path", search, "--finetune",
                   "--lambda_attention_distill", "100.0", "--lambda_discriminator_distill", "0.001",
                   "--pretrain_path", teacher] + _epochs(p["finetune_epochs"])),
        ("test", "test", common + ["--name", "student", "--load_path", student,
                                   "--results_dir", os.path.join(work, "results")]),
    ]
    bar = tqdm(stages, desc="demo", unit="stage", disable=None)
    for title, script, argv in bar:
        bar.set_postfix_str(title)
        log.info("==== %s ====", title)
        _entry(script)(argv)
    bar.close()
    return build_report(p, common, out, teacher, search, pruned, student)


def build_report(p, common, out, teacher, search, pruned, student):
    """The HTML report from the stages' checkpoints."""
    os.makedirs(os.path.join(out, "images"), exist_ok=True)
    state = read_checkpoint(pruned).state
    table = MODELS[state["model"]].directions("AtoB")  # the model's per-direction table
    sections = []
    rows = []
    for d in table:
        rep = state["prune_report"][d.generator]
        direction = f"{d.name[0]}->{d.name[-1]}"
        rows.append([direction, format_count(rep["macs_before"], 3), format_count(rep["macs_after"], 3),
                     f"{rep['macs_ratio']:.2f}x", format_count(rep["params_before"], 3),
                     format_count(rep["params_after"], 3), f"{rep['params_ratio']:.2f}x",
                     ", ".join(rep["removed"]) or "none"])
    sections.append({"title": "Compression", "text": f"Generators at {p['crop']}x{p['crop']} px, ngf {p['ngf']}; "
                     "MACs and params by the original's counting conventions (K = 1e3, M = 1e6, G = 1e9).",
                     "table": {"header": ["generator", "MACs before", "MACs after", "MACs ratio",
                                          "params before", "params after", "params ratio",
                                          "removed blocks"], "rows": rows}})

    size = p["latency_size"]
    lat_rows = []
    for d in table:
        direction = f"{d.name[0]}->{d.name[-1]}"
        full = load_generator(teacher, d.name)
        slim = load_generator(student, d.name)
        t_full = cpu_latency_ms(full, (1, 3, size, size))
        t_slim = cpu_latency_ms(slim, (1, 3, size, size))
        rep = state["prune_report"][d.generator]
        lat_rows.append([direction, f"{t_full:.1f}", f"{t_slim:.1f}", f"{t_full / t_slim:.2f}x",
                         f"{rep['macs_ratio']:.2f}x"])
    sections.append({"title": "CPU latency", "text": f"Median of 5 runs at {size}x{size} px, batch 1, "
                     f"{torch.get_num_threads()} threads.",
                     "table": {"header": ["generator", "full (ms)", "pruned (ms)", "speed-up", "MACs ratio"],
                               "rows": lat_rows}})

    images = []
    for d in table:
        name, direction = d.generator, d.name
        rep = state["prune_report"][name]
        layers = {layer["set"]: layer["width"] for layer in rep["layers"]}
        widths = {layer["set"]: layer["full"] for layer in rep["layers"]}
        rel = f"images/kept_{direction}.png"
        plot_kept_channels(layers, widths, os.path.join(out, rel), f"{name} ({direction}): kept channels per layer")
        images.append((rel, f"{name}: kept / full channels per layer"))
    search_state = read_checkpoint(search).state
    records = search_state.get("search", {}).get("records") or []
    if records:
        rel = "images/mask_search.png"
        mask_search_figure(records, os.path.join(out, rel))
        images.append((rel, "bound and kept channels over the search"))
    sections.append({"title": "Kept channels", "images": images})
    sections.append(_samples(p, common, out, teacher, search, student))
    return write_report(out, "DMAD demo on the toy data", sections)


def _samples(p, common, out, teacher, search, student):
    """Input / teacher / searched / fine-tuned outputs for a few test images of each direction."""
    opt = parse("test", common + ["--name", "report"])
    rows = []
    for direction, side in (("AtoB", "A"), ("BtoA", "B")):
        nets = [load_generator(path, direction) for path in (teacher, search, student)]
        dataset = create_dataset(opt, phase="test", train=False)
        loader = create_dataloader(opt, dataset, shuffle=False, batch_size=1, num_workers=0)
        with torch.no_grad():
            for i, batch in enumerate(loader):
                if i >= p["samples"]:
                    break
                row = []
                for label, image in zip(("input", "teacher", "searched", "finetuned"),
                                        [batch[side]] + [net(batch[side]) for net in nets]):
                    rel = f"images/{direction}_{i}_{label}.png"
                    save_image(tensor2im(image), os.path.join(out, rel))
                    row.append(rel)
                rows.append(row)
    return {"title": "Translations (test split)", "text": "Rows: A->B then B->A test images. The searched "
            "generator is the masked one at the end of the search; the fine-tuned one is the pruned "
            "generator after distillation.",
            "grid": {"header": ["input", "teacher", "searched (masked)", "pruned + fine-tuned"], "rows": rows}}


@cli_entry
def main(argv=None):
    parser = ArgumentParser(prog="demo.py", description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--preset", choices=sorted(PRESETS), default="demo")
    parser.add_argument("--work", default=os.path.join(ROOT, "experiments", "demo"))
    parser.add_argument("--out", default=os.path.join(ROOT, "results", "demo"))
    args = parser.parse_args(argv)
    setup_logging()
    page = run_pipeline(args.preset, args.work, args.out)
    print(f"report: {page}")


if __name__ == "__main__":
    main()
