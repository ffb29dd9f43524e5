"""Shared fixtures and helpers: the toy datasets, tiny training options, and running the entry points
in-process (fast) or as subprocesses (when the exit status and stderr matter)."""
import contextlib
import fcntl
import hashlib
import importlib.util
import logging
import os
import subprocess
import sys
import tempfile

import pytest
import torch

# One intra-op thread per test process: pytest-xdist already runs a process per core, and spinning
# OpenMP threads on a shared machine make tiny convolutions dozens of times slower.
torch.set_num_threads(1)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

TOY = os.path.join(REPO, "datasets", "toy")
UNALIGNED = os.path.join(TOY, "unaligned")
ALIGNED = os.path.join(TOY, "aligned")


# ---------------------------------------------------------------- toy data

@contextlib.contextmanager
def _file_lock(name):
    """An exclusive lock shared by the pytest-xdist workers (and concurrent test runs) of this checkout."""
    key = hashlib.sha1(REPO.encode()).hexdigest()[:12]
    path = os.path.join(tempfile.gettempdir(), f"dmad-{name}-{key}.lock")
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@pytest.fixture(scope="session")
def toy_root():
    """``datasets/toy`` after running ``datasets/make_toy_dataset.py`` (idempotent: files already
    right are left alone), under a lock so parallel workers never read a half-written image."""
    spec = importlib.util.spec_from_file_location("make_toy_dataset",
                                                  os.path.join(REPO, "datasets", "make_toy_dataset.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with _file_lock("toy"), open(os.devnull, "w") as null, contextlib.redirect_stdout(null):
        assert module.main(["--root", TOY]) == 0
    for split in ("trainA", "trainB", "testA", "testB"):
        assert os.listdir(os.path.join(UNALIGNED, split)), split
    for split in ("train", "val", "test"):
        assert os.listdir(os.path.join(ALIGNED, split)), split
    return TOY


# ---------------------------------------------------------------- options

def tiny_args(checkpoints_dir, name, model="cyclegan", dataroot=None, **extra):
    """argv of a tiny CPU run (32 px, ngf/ndf 8, 4 images, no workers, no visdom, no metric).

    ``extra`` adds options: ``n_epochs=2`` -> ``--n_epochs 2``; ``True`` gives a bare flag."""
    if dataroot is None:
        dataroot = UNALIGNED if model == "cyclegan" else ALIGNED
    argv = ["--dataroot", str(dataroot), "--model", model, "--name", name,
            "--checkpoints_dir", str(checkpoints_dir), "--crop_size", "32", "--load_size", "32",
            "--ngf", "8", "--ndf", "8", "--max_dataset_size", "4", "--num_threads", "0",
            "--display_id", "0", "--metric", "none", "--gpu_ids", "-1",
            "--n_epochs", "1", "--n_epochs_decay", "0"]
    for key, value in extra.items():
        argv.append(f"--{key}")
        if value is not True:
            argv.append(str(value))
    return argv


# ---------------------------------------------------------------- running the entry points

def _detach_logging():
    """Close the run-folder log handlers a main() installed, so the next in-process run (or a
    failing one) never writes into another run's logger.log."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_dmad", False):
            root.removeHandler(handler)
            handler.close()


_SCRIPTS = {}


def script_module(script):
    """The module of ``<script>.py`` in the repository root (loaded by path: the standard library
    has a package named ``test``)."""
    if script not in _SCRIPTS:
        spec = importlib.util.spec_from_file_location(f"dmad_entry_{script}", os.path.join(REPO, f"{script}.py"))
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        _SCRIPTS[script] = module
    return _SCRIPTS[script]


def run_main(script, argv):
    """Run ``<script>.main(argv)`` in this process; returns the exit status (0 when it returns)."""
    module = script_module(script)
    try:
        module.main(list(argv))
        return 0
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else 1
    finally:
        _detach_logging()


def run_script(script, argv, timeout=180):
    """``python <script>.py argv`` in the repository root; returns the CompletedProcess (text)."""
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1", OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, os.path.join(REPO, f"{script}.py"), *map(str, argv)], cwd=REPO,
                          capture_output=True, text=True, timeout=timeout, env=env)


def assert_user_error(proc):
    """Exit status 2 and exactly one non-empty stderr line starting with ``error:``, no traceback."""
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout, proc.stderr[-2000:]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error:") and len(lines[0]) > len("error: "), lines[0]
    return lines[0]


def hash_tree(folder):
    """{relative path: sha256} of every file under ``folder``."""
    digests = {}
    for base, _, files in os.walk(folder):
        for fname in files:
            path = os.path.join(base, fname)
            with open(path, "rb") as handle:
                digests[os.path.relpath(path, folder)] = hashlib.sha256(handle.read()).hexdigest()
    return digests


# ---------------------------------------------------------------- networks

def randomise(net, seed, bound=None):
    """Random masks (N(0, 0.2^2): about half the channels off), conv biases and BatchNorm
    parameters/statistics, so that every tensor a test copies or folds matters in eval mode; with
    ``bound`` every mask is set to it. Returns the net in eval mode."""
    from models.layers import masks

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)) and m.bias is not None:
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.copy_(1 + 0.3 * torch.randn(m.weight.shape, generator=g))
                m.bias.copy_(0.3 * torch.randn(m.bias.shape, generator=g))
                m.running_mean.copy_(0.2 * torch.randn(m.running_mean.shape, generator=g))
                m.running_var.copy_(0.5 + torch.rand(m.running_var.shape, generator=g))
        for m in masks(net).values():
            m.mask_weight.copy_(torch.randn(m.mask_weight.shape, generator=g) * 0.2)
            if bound is not None:
                m.update(bound)
    return net.eval()
