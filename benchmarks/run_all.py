"""One benchmark table: training, search, pruning and deployment costs on one device.

    python benchmarks/run_all.py [--device cpu|cuda] [--threads 2] [--iters 3] [--output FILE.md]

Prints a markdown table and writes it to ``--output`` (default ``benchmarks/results_<device>.md``):

* seconds per training iteration and images per second (set_input + optimize_parameters, median of
  ``--iters`` after ``--warmup``, random images): mask CycleGAN ngf 64 at 64 px and at 256 px
  (batch 1), mask pix2pix ngf 64 / ndf 128 at 256 px (batch 4), plain CycleGAN at 256 px, and
  fine-tuning (a search-like pruned ngf-64 student with both distillations from an ngf-64 teacher);
  on a GPU each also with ``--amp`` and ``--amp --channels_last`` (``--variants all`` adds them on
  the CPU);
* the mask update (ms per update point of a 200-epoch CycleGAN schedule) and the pruning of one ngf-64
  ResNet-9 mask generator;
* inference latency (batch 1, 256 px, eval) of the full and the pruned generator in eager PyTorch
  and in onnxruntime (CPU execution provider, full graph optimisation), timed in ``--runs``
  alternating rounds (full, pruned, full, ...; see :func:`interleaved_latency`): the medians, the speed-up as the median of the
  per-round ratios, the MACs ratio, and the speed-up per MAC saved (target >= 0.8 in the faster
  runtime); at two compression levels per family (about a third and about half of the channels kept);
* peak memory of each row: resident set size of its process on the CPU,
  ``torch.cuda.max_memory_allocated`` on a GPU.

Every row runs in its own subprocess so that its peak memory is its own. Timings on a shared machine
are noisy: the header records the load average. Benchmarks never run inside the test suite.
"""
import argparse
import copy
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, REPO)
sys.path.insert(0, HERE)

from util.cli import before_imports  # noqa: E402

before_imports()  # the rows' subprocesses inherit OpenMP's idle policy
# torch and the networks are imported inside the functions that run in a row's subprocess, so that the
# parent process, which only starts the rows and prints the table, never loads them

from util.errors import ArgumentParser, UserError  # noqa: E402
from util.cli import cli_entry  # noqa: E402
from util.files import atomic_path, check_writable_file  # noqa: E402
from util.flops import format_count  # noqa: E402
from util.timing import cpu_name  # noqa: E402

# (key, label, options); sizes follow the reference settings
TRAIN_ROWS = [
    ("search64", "mask CycleGAN ngf 64, 64 px, bs 1",
     ["--model", "cyclegan", "--mask", "--crop_size", "64", "--load_size", "64", "--batch_size", "1"]),
    ("search256", "mask CycleGAN ngf 64, 256 px, bs 1",
     ["--model", "cyclegan", "--mask", "--crop_size", "256", "--load_size", "256", "--batch_size", "1"]),
    ("pix2pix256", "mask pix2pix ngf 64, 256 px, bs 4",
     ["--model", "pix2pix", "--mask", "--ndf", "128", "--gan_mode", "hinge", "--crop_size", "256", "--load_size",
      "256", "--batch_size", "4"]),
    ("plain256", "plain CycleGAN ngf 64, 256 px, bs 1",
     ["--model", "cyclegan", "--crop_size", "256", "--load_size", "256", "--batch_size", "1"]),
    ("finetune256", "fine-tune CycleGAN (pruned student, ngf-64 teacher), 256 px, bs 1",
     ["--model", "cyclegan", "--crop_size", "256", "--load_size", "256", "--batch_size", "1",
      "--lambda_attention_distill", "100", "--lambda_discriminator_distill", "1e-4"]),
]
VARIANTS = {"fp32": [], "amp": ["--amp"], "amp+channels_last": ["--amp", "--channels_last"]}


# ------------------------------------------------------------------------------ rows (child process)

def _sync(device):
    # here, not at the top: the parent process stays free of torch (each row's peak memory is its own)
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _peak_memory(device):
    """Peak bytes: CUDA allocator on a GPU, resident set size of this process on the CPU."""
    # here, not at the top: the parent process stays free of torch (each row's peak memory is its own)
    import resource

    import torch

    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device)
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def _train_row(key, variant, device, args):
    # here, not at the top: the parent process stays free of torch (each row's peak memory is its own)
    import torch

    import options  # in the row's subprocess only (see the top)
    from models import create_model  # in the row's subprocess only (see the top)

    label, extra = next((lab, opts) for k, lab, opts in TRAIN_ROWS if k == key)
    gpu = ["--gpu_ids", str(device.index or 0)] if device.type == "cuda" else ["--gpu_ids", "-1"]
    with tempfile.TemporaryDirectory() as tmp:
        argv = ["--dataroot", tmp, "--checkpoints_dir", tmp, "--display_id", "0", "--ngf", "64", *gpu, *extra,
                *VARIANTS[variant]]
        torch.manual_seed(0)
        if key == "finetune256":
            from bench_finetune import make_teacher
            from bench_prune import search_like
            from compress.distill import Distiller  # in the row's subprocess only (see the top)
            from pipeline.finetune import load_teacher  # in the row's subprocess only (see the top)
            from compress.pruning import prune_generator  # in the row's subprocess only (see the top)

            teacher = make_teacher(tmp)  # the weights do not depend on the image size
            student = prune_generator(search_like(64))[0].config()
            opt = options.parse("prune", argv + ["--pretrain_path", teacher])
            model = create_model(opt, device, gen_configs={"G_A": student, "G_B": dict(student)})
            model.add_loss_term(Distiller(opt, model, load_teacher(opt, device)).loss)
        else:
            opt = options.parse("train", argv)
            model = create_model(opt, device)
        search = None
        if opt.mask:
            from compress.mask_search import MaskSearch  # in the row's subprocess only (see the top)

            search = MaskSearch(opt, model, n_batches=1000)
            model.add_loss_term(search.loss_term)  # the mask losses, as train.py attaches them
        g = torch.Generator().manual_seed(0)
        size, batch = opt.crop_size, opt.batch_size
        nc = {"A": opt.input_nc, "B": opt.output_nc}

        def make_batch():
            out = {k: torch.rand(batch, c, size, size, generator=g) * 2 - 1 for k, c in nc.items()}
            out.update(A_paths=["a"] * batch, B_paths=["b"] * batch)
            return out

        model.train()
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # as training does (pipeline.trainer.Trainer.open)
            torch.cuda.reset_peak_memory_stats(device)
        times = []
        for i in range(args.warmup + args.iters):
            batch_data = make_batch()
            _sync(device)
            start = time.perf_counter()
            model.set_input(batch_data)
            model.optimize_parameters()
            _sync(device)
            if i >= args.warmup:
                times.append(time.perf_counter() - start)
        del search
    seconds = statistics.median(times)
    return {"kind": "train", "label": label, "variant": variant, "seconds": seconds, "images_per_s": batch / seconds,
            "peak": _peak_memory(device)}


def _mask_update_row(device, args):
    # here, not at the top: the parent process stays free of torch (each row's peak memory is its own)
    from bench_mask_update import build, time_schedule

    opt, model = build(64, 256)
    searching, settled = time_schedule(opt, model, n_batches=1000, seed=0)
    return {"kind": "op", "label": "mask update point (both ngf-64 ResNet-9, while searching)",
            "ms": statistics.median(searching), "peak": _peak_memory(device)}


def _prune_row(device, args):
    # here, not at the top: the parent process stays free of torch (each row's peak memory is its own)
    from bench_prune import search_like

    from compress.pruning import prune_generator  # in the row's subprocess only (see the top)

    net = search_like(64).to(device)
    prune_generator(net)
    times = []
    for _ in range(5):
        _sync(device)
        start = time.perf_counter()
        prune_generator(net)
        _sync(device)
        times.append(time.perf_counter() - start)
    return {"kind": "op", "label": "prune one ngf-64 ResNet-9 mask generator", "ms": statistics.median(times) * 1e3,
            "peak": _peak_memory(device)}


def _eager_runner(net, x, device):
    # here, not at the top: the parent process stays free of torch (each row's peak memory is its own)
    import torch

    net, x = net.to(device), x.to(device)

    def run():
        with torch.no_grad():
            net(x)
        _sync(device)
    return run


def _onnx_runner(net, x, threads, tmp, name):
    """A callable that runs ``net`` exported to ONNX in onnxruntime, or None without its CPU provider."""
    # here, not at the top: the parent process stays free of torch (each row's peak memory is its own)
    import onnxruntime

    from pipeline.export import export_onnx, onnx_session  # in the row's subprocess only (see the top)

    if "CPUExecutionProvider" not in onnxruntime.get_available_providers():
        return None
    path = os.path.join(tmp, f"{name}.onnx")
    export_onnx(copy.deepcopy(net).cpu(), path, size=x.shape[-1])  # a copy: the eager runner keeps its device
    session = onnx_session(path, threads=threads)
    feed = {"input": x.cpu().numpy()}
    return lambda: session.run(None, feed)


def interleaved_latency(full, pruned, runs, pause=0.2):
    """Median seconds of ``full()`` and ``pruned()`` and the median of their per-round ratio.

    The two are timed in alternating rounds (full, pruned, full, pruned, ...), so a change of the
    machine's speed during the measurement (other load, clock changes) affects both alike; the
    speed-up is the median over rounds of full / pruned, not a ratio of two medians taken minutes
    apart. Each timed call is the second of two back-to-back calls after a ``pause`` (seconds): the
    pause lets the worker threads of the other generator go idle (an onnxruntime session's threads
    spin for a while after a run and, on 2 cores, slow the other session: the pruned U-Net took 64 ms
    right after the full one, 23 ms after a 0.2 s pause), and the untimed first call brings the
    caches and threads back to the steady state of a generator that runs image after image (after a
    bare pause the eager pruned U-Net took 65-69 ms, back to back 41-50 ms).
    Returns ``(full_s, pruned_s, speed_up)``."""
    times = {"full": [], "pruned": []}
    for _ in range(runs):
        for name, run in (("full", full), ("pruned", pruned)):
            time.sleep(pause)
            run()
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    ratios = [f / p for f, p in zip(times["full"], times["pruned"])]
    return statistics.median(times["full"]), statistics.median(times["pruned"]), statistics.median(ratios)


def _resnet9(**masks_like):
    """(the full ngf-64 ResNet-9, a search-like mask ResNet-9 at bound 0)"""
    # here, not at the top: the parent process stays free of torch (each row's peak memory is its own)
    from bench_prune import search_like
    from models.families.resnet import ResnetGenerator  # in the row's subprocess only (see the top)

    return ResnetGenerator(ngf=64).eval(), search_like(64, **masks_like)


def _unet256(**masks_like):
    """(the full ngf-64 U-Net 256, a search-like mask U-Net 256 at bound 0)"""
    # here, not at the top: the parent process stays free of torch (each row's peak memory is its own)
    from models.families.unet import UnetGenerator  # in the row's subprocess only (see the top)

    return UnetGenerator(ngf=64, num_downs=8).eval(), unet_search_like(64, **masks_like)


# latency rows: (label, builder of the full and the mask generator, how the masks look). Two compression
# levels per family: about a third of each layer kept (the MACs ratio of the paper's compressed
# generators, 8-14x) and about half kept (near 4x).
LATENCY_ROWS = {
    "resnet9": ("ResNet-9 ngf 64, 35% kept, 3 blocks removed", _resnet9, dict(keep=0.35, stream_keep=0.3)),
    "resnet9_half": ("ResNet-9 ngf 64, 55% kept, 1 block removed", _resnet9,
                     dict(keep=0.55, stream_keep=0.5, removed=(2,))),
    "unet256": ("U-Net 256 ngf 64, 35% kept", _unet256, dict(keep=0.35)),
    "unet256_half": ("U-Net 256 ngf 64, 50% kept", _unet256, dict(keep=0.5)),
}


def _latency_row(row, device, args):
    # here, not at the top: the parent process stays free of torch (each row's peak memory is its own)
    import torch

    from compress.pruning import prune_generator  # in the row's subprocess only (see the top)
    from util.errors import UserError  # in the row's subprocess only (see the top)
    from pipeline.export import check_size  # in the row's subprocess only (see the top)
    from util.flops import count_macs_params  # in the row's subprocess only (see the top)

    label, build, masks_like = LATENCY_ROWS[row]
    full, masked = build(**masks_like)
    try:
        check_size(full, args.size)  # the exporter's size rule
    except UserError as err:
        return {"kind": "skipped", "label": label, "reason": str(err)}
    slim = prune_generator(masked)[0].eval()
    shape = (1, 3, args.size, args.size)
    macs_full, _ = count_macs_params(full, shape)
    macs_slim, _ = count_macs_params(slim, shape)
    x = torch.rand(*shape) * 2 - 1
    out = {"kind": "latency", "label": label, "macs_full": macs_full, "macs_pruned": macs_slim}
    with tempfile.TemporaryDirectory() as tmp:
        runners = {"eager": (_eager_runner(full, x, device), _eager_runner(slim, x, device)),
                   "onnx": (_onnx_runner(full, x, args.threads, tmp, "full"),
                            _onnx_runner(slim, x, args.threads, tmp, "pruned"))}
        for runtime, (run_full, run_slim) in runners.items():
            if run_full is None or run_slim is None:
                out[f"{runtime}_full"] = out[f"{runtime}_pruned"] = out[f"{runtime}_speedup"] = None
                continue
            timed = interleaved_latency(run_full, run_slim, args.runs)
            out[f"{runtime}_full"], out[f"{runtime}_pruned"], out[f"{runtime}_speedup"] = timed
    out["peak"] = _peak_memory(device)
    return out


def unet_search_like(ngf, seed=0, keep=0.35):
    """A mask U-Net-256 at bound 0 with about ``keep`` of each layer on (the pattern of bench_prune's
    ResNet: a search that ended near a third of the channels)."""
    # here, not at the top: the parent process stays free of torch (each row's peak memory is its own)
    import torch

    from models.layers import masks  # in the row's subprocess only (see the top)
    from models.families.unet import UnetGenerator  # in the row's subprocess only (see the top)

    g = torch.Generator().manual_seed(seed)
    net = UnetGenerator(ngf=ngf, num_downs=8, mask=True)
    with torch.no_grad():
        for m in masks(net).values():
            on = torch.rand(m.num_channels, generator=g) < keep
            m.mask_weight.copy_(torch.where(on, 0.5, -0.5))
            m.update(0)
    return net.eval()


def run_row(spec, args):
    # here, not at the top: the parent process stays free of torch (each row's peak memory is its own)
    import torch

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    kind, _, rest = spec.partition(":")
    if kind == "train":
        key, _, variant = rest.partition("/")
        return _train_row(key, variant, device, args)
    if kind == "mask_update":
        return _mask_update_row(device, args)
    if kind == "prune":
        return _prune_row(device, args)
    return _latency_row(rest, device, args)


# ------------------------------------------------------------------------------ table (parent process)

def row_specs(args):
    variants = ["fp32"] if args.device == "cpu" and args.variants == "fp32" else list(VARIANTS)
    specs = [f"train:{key}/{v}" for key, _, _ in TRAIN_ROWS for v in variants]
    return specs + ["mask_update:", "prune:"] + [f"latency:{row}" for row in LATENCY_ROWS]


def _child(spec, args):
    cmd = [sys.executable, os.path.abspath(__file__), "--row", spec, "--device", args.device, "--threads",
           str(args.threads), "--iters", str(args.iters), "--warmup", str(args.warmup), "--runs", str(args.runs),
           "--size", str(args.size)]
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {"kind": "failed", "label": spec, "error": tail[:200]}
    return json.loads(lines[-1])


def _mib(value):
    return f"{value / 2 ** 20:.0f}"


def _plural(count, noun):
    return f"{count} {noun}" + ("" if count == 1 else "s")


def _ms(value):
    return "n/a" if value is None else f"{value * 1e3:.1f}"


def format_table(rows, args, header):
    """The markdown page: the header, then each table that has rows, then the skipped and failed rows."""
    memory = "peak GPU memory (MiB)" if args.device == "cuda" else "peak RSS (MiB)"
    lines = [header]
    train = [r for r in rows if r["kind"] == "train"]
    if train:
        timed = _plural(args.iters, "iteration")
        lines += ["", f"Training: median of {timed} after {args.warmup} warm-up, random images.", "",
                  f"| training | precision | s / iteration | images / s | {memory} |", "|---|---|---:|---:|---:|"]
        lines += [f"| {r['label']} | {r['variant']} | {r['seconds']:.3f} | {r['images_per_s']:.2f} | {_mib(r['peak'])} |"
                  for r in train]
    ops = [r for r in rows if r["kind"] == "op"]
    if ops:
        lines += ["", f"| operation | ms | {memory} |", "|---|---:|---:|"]
        lines += [f"| {r['label']} | {r['ms']:.1f} | {_mib(r['peak'])} |" for r in ops]
    latency = [r for r in rows if r["kind"] == "latency"]
    if latency:
        threads, rounds = _plural(args.threads, "thread"), _plural(args.runs, "alternating round")
        lines += ["", f"Inference at {args.size} px, batch 1 ({args.device}; onnxruntime on the CPU with {threads}); "
                  f"{rounds} of full and pruned, medians; speed-up = median of the per-round ratios; speed-up "
                  "per MAC saved = speed-up / MACs ratio (target >= 0.8 in the faster runtime):",
                  "", "| generator | MACs full | MACs pruned | MACs ratio | runtime | full (ms) | pruned (ms) | "
                  "speed-up | speed-up per MAC saved |", "|---|---:|---:|---:|---|---:|---:|---:|---:|"]
    for r in latency:
        ratio = r["macs_full"] / r["macs_pruned"]
        for runtime in ("eager", "onnx"):
            full, slim, speed = r[f"{runtime}_full"], r[f"{runtime}_pruned"], r[f"{runtime}_speedup"]
            name = "eager PyTorch" if runtime == "eager" else "onnxruntime"
            macs = f"{format_count(r['macs_full'])} | {format_count(r['macs_pruned'])}"
            lines.append(f"| {r['label']} | {macs} | {ratio:.2f} | "
                         f"{name} | {_ms(full)} | {_ms(slim)} | "
                         f"{'n/a' if speed is None else f'{speed:.2f}'} | {'n/a' if speed is None else f'{speed / ratio:.2f}'} |")
    for kind, title, key in (("skipped", "Rows skipped", "reason"), ("failed", "Rows that failed", "error")):
        listed = [r for r in rows if r["kind"] == kind]
        if listed:
            lines += ["", f"{title}:"] + [f"- {r['label']}: {r[key]}" for r in listed]
    return "\n".join(lines)


def _count(minimum):
    def parse(text):
        value = int(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{text} is less than {minimum}")
        return value
    parse.__name__ = "integer"  # argparse names the type in its message
    return parse


def select_rows(specs, only):
    """The specs named by ``only``: comma-separated row kinds (``train``, ``latency``, ...), row specs
    (``train:search64/fp32``, ``latency:resnet9``) or row keys (``search64``, ``resnet9``, which take
    every precision variant of a training row). UserError for a name that matches no row."""
    chosen = []
    for name in only.split(","):
        kind = [s for s in specs if s.split(":")[0] == name]
        key = [s for s in specs if name in (s.rstrip(":"), s.partition(":")[2].partition("/")[0])]
        if not kind + key:
            kinds = ", ".join(dict.fromkeys(s.split(":")[0] for s in specs))
            keys = ", ".join(sorted({s.partition(":")[2].partition("/")[0] for s in specs} - {""}))
            raise UserError(f"--only {name} names no row: give row kinds ({kinds}) or rows ({keys})")
        chosen += [s for s in kind + key if s not in chosen]
    return [s for s in specs if s in chosen]



@cli_entry
def main():
    parser = ArgumentParser(prog="benchmarks/run_all.py", description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--threads", type=_count(1), default=2, help="intra-op CPU threads (torch and onnxruntime)")
    parser.add_argument("--iters", type=_count(1), default=3, help="timed training iterations per row")
    parser.add_argument("--warmup", type=_count(0), default=1)
    parser.add_argument("--runs", type=_count(1), default=7,
                        help="alternating rounds (full, pruned) per latency row and runtime")
    parser.add_argument("--size", type=_count(1), default=256, help="image side of the latency rows")
    parser.add_argument("--variants", default="fp32", choices=("fp32", "all"),
                        help="CPU: fp32 only, or also --amp and --amp --channels_last (always all on cuda)")
    parser.add_argument("--only", default=None,
                        help="comma-separated row kinds (train, mask_update, prune, latency) or rows (e.g. search64, "
                             "train:search64/fp32, resnet9) to run")
    parser.add_argument("--output", default=None, help="markdown file to write. default: benchmarks/results_<device>.md")
    parser.add_argument("--row", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.row is not None:
        print(json.dumps(run_row(args.row, args)))
        return
    # here, not at the top: the parent process stays free of torch (each row's peak memory is its own)
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda but CUDA is not available here: give --device cpu")
    specs = row_specs(args)
    if args.only:
        specs = select_rows(specs, args.only)
    output = args.output or os.path.join(HERE, f"results_{args.device}.md")
    check_writable_file(output, "--output")  # before the rows, not after
    rows = []
    for spec in specs:
        start = time.time()
        rows.append(_child(spec, args))
        outcome = {"skipped": "skipped", "failed": "failed"}.get(rows[-1]["kind"], "done")
        print(f"  {spec.rstrip(':')}: {outcome} in {time.time() - start:.0f} s", file=sys.stderr, flush=True)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    device = torch.cuda.get_device_name(0) if args.device == "cuda" else cpu_name("CPU")
    header = (f"# Benchmarks ({args.device}: {device})\n\n{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, torch "
              f"{torch.__version__}, {_plural(args.threads, 'thread')}, {_plural(os.cpu_count(), 'core')}, "
              f"load average {load:.1f} at the end.")
    table = format_table(rows, args, header)
    print(table)
    with atomic_path(output) as tmp, open(tmp, "w") as handle:
        handle.write(table + "\n")
    print(f"\nwritten to {output}", file=sys.stderr)


if __name__ == "__main__":
    main()
